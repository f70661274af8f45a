package transport

// WebTransport carries application error codes inside the HTTP/3 error space,
// skipping the reserved codepoints (0x1f*N + 0x21). moq-dev's Rust stack applies
// this mapping to stream resets even on raw QUIC, so every QUIC-based adapter
// here uses it for stream codes (docs/transports.md#error-code-mapping).
const (
	wtFirst uint64 = 0x52e4a40fa8db
	wtLast  uint64 = 0x52e5ac983162
)

// ToWebTransportCode maps a moq-lite code into the HTTP/3 error space.
func ToWebTransportCode(code uint32) uint64 {
	c := uint64(code)
	return wtFirst + c + c/0x1e
}

// FromWebTransportCode maps a wire code back. A code outside the WebTransport
// range is returned as is when it fits 32 bits (peers that send raw codes,
// such as gomoqt); ok is false for a reserved codepoint or a code that fits
// nowhere.
func FromWebTransportCode(wire uint64) (code uint32, ok bool) {
	if wire < wtFirst || wire > wtLast {
		if wire > 0xffffffff {
			return 0, false
		}
		return uint32(wire), true
	}
	shifted := wire - wtFirst
	if (shifted+1)%0x1f == 0 { // reserved codepoint
		return 0, false
	}
	return uint32(shifted - shifted/0x1f), true
}
