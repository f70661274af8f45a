package p2pstream

import (
	"errors"
	"fmt"
	"io"
	"math/rand/v2"

	"github.com/libp2p/go-libp2p/core/network"

	"github.com/moqp2p/moqp2p/internal/wire"
)

// Stream kinds, the first varint of every stream's header.
const (
	kindControl uint64 = 0
	kindBidi    uint64 = 1
	kindUni     uint64 = 2
)

// Control messages, each a type varint and its fields.
const (
	msgAccept uint64 = 1 // listener → dialer, once: the session exists
	msgClose  uint64 = 2 // either way, last: code varint, reason length varint, reason
)

// maxReason bounds a CLOSE reason, so a peer cannot make us buffer much.
const maxReason = 1024

// codeSessionGone is the libp2p reset code for the streams of a session that
// ended or never existed. It lies far above the moq-lite codes in use, so a
// reader can tell "the session is over" from a moq-lite reset and report the
// session's close reason instead.
const codeSessionGone network.StreamErrorCode = 0x6d6f7100 // "moq\0"

// errDecode marks malformed p2pstream framing (header or control message).
var errDecode = errors.New("p2pstream: malformed framing")

// newSessionID returns a random 62-bit session ID (a QUIC varint's range).
func newSessionID() uint64 { return rand.Uint64() & wire.MaxVarint }

// appendHeader appends the header an opener writes first on every stream.
func appendHeader(b []byte, kind, session uint64) []byte {
	return wire.AppendVarint(wire.AppendVarint(b, kind), session)
}

// readHeader reads a stream's header. io.EOF means the stream ended before
// its first byte; a truncated header wraps errDecode.
func readHeader(r io.ByteReader) (kind, session uint64, err error) {
	if kind, err = wire.ReadVarint(r); err != nil {
		return 0, 0, decodeErr(err, true)
	}
	if session, err = wire.ReadVarint(r); err != nil {
		return 0, 0, decodeErr(err, false)
	}
	return kind, session, nil
}

// appendClose appends a CLOSE message; an over-long reason is cut, not
// refused, because closing must not fail.
func appendClose(b []byte, code uint32, reason string) []byte {
	if len(reason) > maxReason {
		reason = reason[:maxReason]
	}
	b = wire.AppendVarint(b, msgClose)
	b = wire.AppendVarint(b, uint64(code))
	b = wire.AppendVarint(b, uint64(len(reason)))
	return append(b, reason...)
}

// readCloseBody reads CLOSE's fields after its type.
func readCloseBody(r io.ByteReader) (code uint32, reason string, err error) {
	c, err := wire.ReadVarint(r)
	if err != nil {
		return 0, "", decodeErr(err, false)
	}
	if c > 0xffffffff {
		return 0, "", fmt.Errorf("%w: close code %d exceeds 32 bits", errDecode, c)
	}
	n, err := wire.ReadVarint(r)
	if err != nil {
		return 0, "", decodeErr(err, false)
	}
	if n > maxReason {
		return 0, "", fmt.Errorf("%w: close reason of %d bytes", errDecode, n)
	}
	buf := make([]byte, n)
	for i := range buf {
		if buf[i], err = r.ReadByte(); err != nil {
			return 0, "", decodeErr(err, false)
		}
	}
	return uint32(c), string(buf), nil
}

// decodeErr classifies a read error inside our framing: running out of bytes
// is malformed framing, except at a message boundary (atStart), where io.EOF
// is a clean end; anything else (a reset, a dead connection) passes through.
// Only a bare io.EOF is an end of stream: yamux reports a dead connection
// with an error that wraps io.EOF too.
func decodeErr(err error, atStart bool) error {
	switch {
	case errors.Is(err, network.ErrReset):
		return err
	case atStart && err == io.EOF:
		return io.EOF
	case err == io.EOF || errors.Is(err, io.ErrUnexpectedEOF):
		return fmt.Errorf("%w: %w", errDecode, err)
	}
	return err
}

// byteReader reads one byte at a time, so that reading a stream's header
// never consumes the application data behind it.
type byteReader struct {
	r io.Reader
	b [1]byte
}

func (br *byteReader) ReadByte() (byte, error) {
	if _, err := io.ReadFull(br.r, br.b[:]); err != nil {
		return 0, err
	}
	return br.b[0], nil
}
