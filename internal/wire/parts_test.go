package wire

import (
	"bufio"
	"bytes"
	"encoding/hex"
	"io"
	"reflect"
	"strings"
	"testing"
)

// A part is one item of a stream as pinned by a vector: a stream type, a
// length-prefixed message, a typed subscribe response, a SETUP message or a
// frame. Each part encodes itself, decodes itself from bytes, and reads
// itself from a stream, returning what it decoded for comparison.
type part interface {
	enc(b []byte, v Version) ([]byte, error)
	dec(b []byte, v Version) (got any, n int, err error)
	read(r Reader, v Version) (got any, err error)
	want() any
}

type bidiPart StreamType

func (p bidiPart) enc(b []byte, _ Version) ([]byte, error) {
	return AppendStreamType(b, StreamType(p)), nil
}

func (p bidiPart) dec(b []byte, v Version) (any, int, error) {
	x, n, err := ParseVarint(b)
	if err != nil {
		return nil, 0, err
	}
	if t := StreamType(x); !t.AllowedIn(v) {
		return t, n, ErrUnsupported
	}
	return StreamType(x), n, nil
}

func (p bidiPart) read(r Reader, v Version) (any, error) { return ReadStreamType(r, v) }
func (p bidiPart) want() any                             { return StreamType(p) }

type uniPart UniStreamType

func (p uniPart) enc(b []byte, _ Version) ([]byte, error) {
	return AppendUniStreamType(b, UniStreamType(p)), nil
}

func (p uniPart) dec(b []byte, v Version) (any, int, error) {
	x, n, err := ParseVarint(b)
	return UniStreamType(x), n, err
}

func (p uniPart) read(r Reader, v Version) (any, error) { return ReadUniStreamType(r, v) }
func (p uniPart) want() any                             { return UniStreamType(p) }

// msgPart is a plain length || body message.
type msgPart struct{ m Message }

func (p msgPart) enc(b []byte, v Version) ([]byte, error) { return AppendMessage(b, v, p.m) }

func (p msgPart) dec(b []byte, v Version) (any, int, error) {
	m := newLike(p.m)
	n, err := DecodeMessage(b, v, m)
	return m, n, err
}

func (p msgPart) read(r Reader, v Version) (any, error) {
	m := newLike(p.m)
	return m, ReadMessage(r, v, m, DefaultMaxMessage)
}

func (p msgPart) want() any { return p.m }

// newLike returns a fresh zero message of the same type as m.
func newLike(m Message) Message {
	return reflect.New(reflect.TypeOf(m).Elem()).Interface().(Message)
}

// respPart is a subscribe response (typed on lite-03+).
type respPart struct{ m Message }

func (p respPart) enc(b []byte, v Version) ([]byte, error) {
	return AppendSubscribeResponse(b, v, p.m)
}

func (p respPart) dec(b []byte, v Version) (any, int, error) { return DecodeSubscribeResponse(b, v) }

func (p respPart) read(r Reader, v Version) (any, error) {
	return ReadSubscribeResponse(r, v, DefaultMaxMessage)
}

func (p respPart) want() any { return p.m }

type clientSetupPart struct{ m *ClientSetup }

func (p clientSetupPart) enc(b []byte, _ Version) ([]byte, error) { return AppendClientSetup(b, p.m) }

func (p clientSetupPart) dec(b []byte, _ Version) (any, int, error) {
	var m ClientSetup
	n, err := DecodeClientSetup(b, &m)
	return &m, n, err
}

func (p clientSetupPart) read(r Reader, _ Version) (any, error) {
	var m ClientSetup
	return &m, ReadClientSetup(r, &m)
}

func (p clientSetupPart) want() any { return p.m }

type serverSetupPart struct{ m *ServerSetup }

func (p serverSetupPart) enc(b []byte, _ Version) ([]byte, error) { return AppendServerSetup(b, p.m) }

func (p serverSetupPart) dec(b []byte, _ Version) (any, int, error) {
	var m ServerSetup
	n, err := DecodeServerSetup(b, &m)
	return &m, n, err
}

func (p serverSetupPart) read(r Reader, _ Version) (any, error) {
	var m ServerSetup
	return &m, ReadServerSetup(r, &m)
}

func (p serverSetupPart) want() any { return p.m }

// framePart is a frame: size varint + payload, read the way a session
// would: ReadVarint, then the payload into its own buffer.
type framePart []byte

func (p framePart) enc(b []byte, _ Version) ([]byte, error) {
	return append(AppendFrameHeader(b, uint64(len(p))), p...), nil
}

func (p framePart) dec(b []byte, _ Version) (any, int, error) {
	size, n, err := ParseVarint(b)
	if err != nil {
		return nil, 0, err
	}
	if size > uint64(len(b)-n) {
		return nil, 0, ErrShort
	}
	return framePart(b[n : n+int(size)]), n + int(size), nil
}

func (p framePart) read(r Reader, _ Version) (any, error) {
	size, err := ReadVarint(r)
	if err != nil {
		return nil, err
	}
	buf := make([]byte, size)
	_, err = io.ReadFull(r, buf)
	return framePart(buf), err
}

func (p framePart) want() any { return p }

// unhex parses a vector: hex with optional spaces and '|' separators, and
// "quoted" ASCII runs as used in docs/wire.md#vectors.
func unhex(t testing.TB, s string) []byte {
	t.Helper()
	var out []byte
	for i := 0; i < len(s); {
		switch c := s[i]; {
		case c == ' ' || c == '|':
			i++
		case c == '"':
			j := strings.IndexByte(s[i+1:], '"')
			if j < 0 {
				t.Fatalf("unterminated quote in %q", s)
			}
			out = append(out, s[i+1:i+1+j]...)
			i += j + 2
		default:
			if i+1 >= len(s) {
				t.Fatalf("odd hex in %q", s)
			}
			b, err := hex.DecodeString(s[i : i+2])
			if err != nil {
				t.Fatalf("bad hex %q in %q", s[i:i+2], s)
			}
			out = append(out, b...)
			i += 2
		}
	}
	return out
}

// onlyReader hides Peek/Discard so ReadMessage takes its copying path.
type onlyReader struct{ r *bufio.Reader }

func (o onlyReader) Read(p []byte) (int, error) { return o.r.Read(p) }
func (o onlyReader) ReadByte() (byte, error)    { return o.r.ReadByte() }

// readers returns the ways a test reads a stream: through a bufio.Reader
// (zero-copy Peek path), through one with a tiny buffer (copy fallback for
// bodies over 16 bytes), and through a plain Reader.
func readers(b []byte) map[string]Reader {
	return map[string]Reader{
		"bufio":   bufio.NewReader(bytes.NewReader(b)),
		"bufio16": bufio.NewReaderSize(bytes.NewReader(b), 16),
		"plain":   onlyReader{bufio.NewReader(bytes.NewReader(b))},
	}
}

// tsFramePart is a lite-05 frame: zigzag timestamp delta against prev,
// size varint, payload.
type tsFramePart struct {
	prev, ts uint64
	payload  string
}

type tsFrame struct {
	ts      uint64
	payload string
}

func (p tsFramePart) enc(b []byte, _ Version) ([]byte, error) {
	b, err := AppendTimestamp(b, p.prev, p.ts)
	if err != nil {
		return b, err
	}
	return append(AppendFrameHeader(b, uint64(len(p.payload))), p.payload...), nil
}

func (p tsFramePart) dec(b []byte, v Version) (any, int, error) {
	ts, k, err := ParseTimestamp(b, p.prev)
	if err != nil {
		return nil, 0, err
	}
	f, n, err := framePart(nil).dec(b[k:], v)
	if err != nil {
		return nil, 0, err
	}
	return tsFrame{ts, string(f.(framePart))}, k + n, nil
}

func (p tsFramePart) read(r Reader, v Version) (any, error) {
	ts, err := ReadTimestamp(r, p.prev)
	if err != nil {
		return nil, err
	}
	f, err := framePart(nil).read(r, v)
	if err != nil {
		return nil, err
	}
	return tsFrame{ts, string(f.(framePart))}, nil
}

func (p tsFramePart) want() any { return tsFrame{p.ts, p.payload} }

// datagramPart is a lite-05 DATAGRAM: the whole of one QUIC datagram, whose
// payload runs to its end, so it is the only part of its vector.
type datagramPart Datagram

func (p datagramPart) enc(b []byte, v Version) ([]byte, error) {
	d := Datagram(p)
	return AppendDatagram(b, v, &d)
}

func (p datagramPart) dec(b []byte, v Version) (any, int, error) {
	var d Datagram
	if err := DecodeDatagram(b, v, &d); err != nil {
		return nil, 0, err
	}
	return d, len(b), nil
}

func (p datagramPart) read(r Reader, v Version) (any, error) {
	var b []byte
	for {
		c, err := r.ReadByte()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, err
		}
		b = append(b, c)
	}
	got, _, err := p.dec(b, v)
	return got, err
}

func (p datagramPart) want() any { return Datagram(p) }
