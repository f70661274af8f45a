package wire

import (
	"errors"
	"fmt"
	"io"
	"slices"
)

// Message is a length-prefixed moq-lite message. It is implemented only by
// this package's message types (pointers to them), each of which knows its
// body layout for every version.
type Message interface {
	// messageName names the message in errors.
	messageName() string
	// supported reports whether the message exists in v.
	supported(v Version) bool
	// appendBody appends the body for v. Fields that v does not carry are
	// ignored.
	appendBody(b []byte, v Version) ([]byte, error)
	// decodeBody decodes exactly b (else ErrLong) for v, overwriting every
	// field (fields that v does not carry become zero).
	//
	// Both take and return plain values rather than a *encoder/*decoder:
	// a pointer passed through an interface method escapes, which would
	// cost an allocation per message.
	decodeBody(b []byte, v Version) error
}

// Supported reports whether message m exists in version v, e.g.
// Supported(v, &AnnounceInit{}) tells whether the publisher starts an
// announce stream with ANNOUNCE_INIT, and Supported(v, &SessionUpdate{})
// whether the compat session stream carries messages. Encoding or decoding
// an unsupported message fails with ErrUnsupported.
func Supported(v Version, m Message) bool { return m.supported(v) }

// Reader is what the stream readers need; *bufio.Reader satisfies it. When r
// also has Peek and Discard (as *bufio.Reader does), message bodies that fit
// in its buffer are decoded in place without an intermediate allocation.
type Reader interface {
	io.Reader
	io.ByteReader
}

// DefaultMaxMessage is a reasonable maxLen for control messages. It does not
// apply to frame payloads, which are not messages of this package.
const DefaultMaxMessage = 64 << 10

// AppendMessage appends m, encoded for v, as length || body. On error b is
// returned unchanged and the error wraps ErrUnsupported (m does not exist in
// v) or ErrInvalid (a field cannot be encoded).
func AppendMessage(b []byte, v Version, m Message) ([]byte, error) {
	if !m.supported(v) {
		return b, wrap(m.messageName(), fmt.Errorf("%v: %w", v, ErrUnsupported))
	}
	start := len(b)
	// Reserve one byte for the length, the common case; widen afterwards if
	// the body turns out to need a longer varint.
	out, err := m.appendBody(append(b, 0), v)
	if err != nil {
		return b[:start], wrap(m.messageName(), err)
	}
	return putLength(out, start, uint64(len(out)-start-1)), nil
}

// putLength writes size as a varint at b[start], where one byte was
// reserved, moving the body right if the varint is longer.
func putLength(b []byte, start int, size uint64) []byte {
	k := VarintLen(size)
	if k > 1 {
		b = append(b, make([]byte, k-1)...)
		copy(b[start+k:], b[start+1:len(b)-(k-1)])
	}
	AppendVarint(b[:start], size)
	return b
}

// DecodeMessage decodes one length || body message for v from the start of
// b into m and returns the number of bytes used. The error wraps ErrShort if
// b holds less than the declared length, ErrLong if the body has bytes left
// over, ErrInvalid for a bad field and ErrUnsupported if m does not exist in
// v.
func DecodeMessage(b []byte, v Version, m Message) (n int, err error) {
	if !m.supported(v) {
		return 0, wrap(m.messageName(), fmt.Errorf("%v: %w", v, ErrUnsupported))
	}
	size, k, err := ParseVarint(b)
	if err != nil {
		return 0, wrap(m.messageName(), ErrShort)
	}
	if size > uint64(len(b)-k) {
		return 0, wrap(m.messageName(), ErrShort)
	}
	end := k + int(size)
	if err := m.decodeBody(b[k:end], v); err != nil {
		return 0, wrap(m.messageName(), err)
	}
	return end, nil
}

// ReadMessage reads one length || body message for v from r into m. It
// returns io.EOF, unwrapped, if r ends before the first byte, so a clean end
// of stream between messages is distinguishable from truncation (ErrShort).
// A declared length above maxLen fails with ErrTooLarge before anything is
// allocated or read; the body is then left unread.
func ReadMessage(r Reader, v Version, m Message, maxLen int) error {
	if !m.supported(v) {
		return wrap(m.messageName(), fmt.Errorf("%v: %w", v, ErrUnsupported))
	}
	size, err := ReadVarint(r)
	if err != nil {
		if err == io.EOF { // bare only: a wrapped EOF (yamux's dead connection) is no clean end
			return io.EOF
		}
		return wrap(m.messageName(), err)
	}
	if size > uint64(max(maxLen, 0)) {
		return wrap(m.messageName(), fmt.Errorf("length %d over %d: %w", size, maxLen, ErrTooLarge))
	}
	return readBody(r, int(size), m.messageName(), func(body []byte) error {
		return wrap(m.messageName(), m.decodeBody(body, v))
	})
}

// peeker is the zero-copy part of *bufio.Reader.
type peeker interface {
	Peek(n int) ([]byte, error)
	Discard(n int) (int, error)
	Size() int
}

// readBody reads exactly n bytes and hands them to decode. The slice is only
// valid during the call. n has already been checked against the limit.
func readBody(r Reader, n int, what string, decode func([]byte) error) error {
	if n == 0 {
		return decode(nil)
	}
	if p, ok := r.(peeker); ok && n <= p.Size() {
		body, err := p.Peek(n)
		if err != nil {
			return wrap(what, readErr(err))
		}
		derr := decode(body)
		if _, err := p.Discard(n); err != nil {
			return wrap(what, err)
		}
		return derr
	}
	// No peeker, or larger than its buffer: copy. n is bounded by maxLen,
	// but it is the peer's claim: the copy grows with the bytes that
	// arrive, so a message that stalls part way holds at most about twice
	// what was received of it.
	body := make([]byte, 0, min(n, bodyChunk))
	for len(body) < n {
		if len(body) == cap(body) {
			body = slices.Grow(body, min(len(body), n-len(body)))
		}
		m, err := io.ReadFull(r, body[len(body):min(cap(body), n)])
		body = body[:len(body)+m]
		if err != nil {
			return wrap(what, readErr(err))
		}
	}
	return decode(body)
}

// bodyChunk is the first allocation for a message body that is copied.
const bodyChunk = 4 << 10

// readErr maps end of stream inside a message to ErrShort and passes other
// (transport) errors through.
func readErr(err error) error {
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return ErrShort
	}
	return err
}
