package wire

import (
	"errors"
	"io"
)

// MaxVarint is the largest value a QUIC varint can carry (2^62-1).
const MaxVarint = 1<<62 - 1

// VarintLen returns the minimal encoded length of v (1, 2, 4 or 8), or 0 if
// v exceeds MaxVarint and cannot be encoded.
func VarintLen(v uint64) int {
	switch {
	case v < 1<<6:
		return 1
	case v < 1<<14:
		return 2
	case v < 1<<30:
		return 4
	case v <= MaxVarint:
		return 8
	default:
		return 0
	}
}

// AppendVarint appends the minimal QUIC varint encoding of v to b.
//
// v must not exceed MaxVarint; check with VarintLen when the value is not
// known to be in range. An out-of-range v is a programming error: rather than
// panic or emit a corrupt value, AppendVarint then returns b unchanged. The
// message encoders of this package validate and return ErrInvalid instead.
func AppendVarint(b []byte, v uint64) []byte {
	switch {
	case v < 1<<6:
		return append(b, byte(v))
	case v < 1<<14:
		return append(b, 0x40|byte(v>>8), byte(v))
	case v < 1<<30:
		return append(b, 0x80|byte(v>>24), byte(v>>16), byte(v>>8), byte(v))
	case v <= MaxVarint:
		return append(b, 0xc0|byte(v>>56), byte(v>>48), byte(v>>40), byte(v>>32),
			byte(v>>24), byte(v>>16), byte(v>>8), byte(v))
	default:
		return b
	}
}

// ParseVarint decodes a QUIC varint from the start of b and returns the value
// and the number of bytes used. Non-minimal encodings are accepted, as the
// Rust and JS peers accept them. If b ends inside the varint (including an
// empty b) the error wraps ErrShort.
func ParseVarint(b []byte) (v uint64, n int, err error) {
	if len(b) == 0 {
		return 0, 0, errVarintShort
	}
	n = 1 << (b[0] >> 6)
	if len(b) < n {
		return 0, 0, errVarintShort
	}
	v = uint64(b[0] & 0x3f)
	for _, c := range b[1:n] {
		v = v<<8 | uint64(c)
	}
	return v, n, nil
}

var errVarintShort = wrap("varint", ErrShort)

// ReadVarint reads one QUIC varint from r. It returns io.EOF, unwrapped, only
// when r is at EOF before the first byte, so a caller can tell a clean end of
// stream at a message or frame boundary from a truncated varint (ErrShort).
// Other read errors are returned as they are.
func ReadVarint(r io.ByteReader) (uint64, error) {
	c, err := r.ReadByte()
	if err != nil {
		return 0, err
	}
	n := 1 << (c >> 6)
	v := uint64(c & 0x3f)
	for i := 1; i < n; i++ {
		c, err = r.ReadByte()
		if err != nil {
			if errors.Is(err, io.EOF) {
				return 0, errVarintShort
			}
			return 0, err
		}
		v = v<<8 | uint64(c)
	}
	return v, nil
}
