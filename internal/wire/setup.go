package wire

import (
	"encoding/binary"
	"fmt"
	"math"
)

// The compat SETUP exchange runs when the negotiated protocol is ALPNCompat
// or empty (see NeedsSetup). The client opens the first bidi stream and
// writes CLIENT_SETUP; the server answers on the same stream with
// SERVER_SETUP. Unlike every other message these use IETF draft-14 framing:
// one raw type byte (0x20 / 0x21, which doubles as the stream type), a u16
// big-endian length, then the body. The stream then stays open as the
// session stream for the whole session (Rust ends the session when it
// closes) and carries only SessionUpdate messages.

// ClientSetup offers versions, in the client's order of preference.
type ClientSetup struct {
	Versions []Version
	Params   Params
}

// ServerSetup selects one of the client's versions. Rust sends no
// parameters when it selects a lite version; clients ignore them then.
type ServerSetup struct {
	Version Version
	Params  Params
}

// setupMessage is a message with compat SETUP framing.
type setupMessage interface {
	messageName() string
	setupType() byte
	appendBody(b []byte) ([]byte, error)
	decodeBody(b []byte) error
}

func (*ClientSetup) messageName() string { return "client setup" }
func (*ClientSetup) setupType() byte     { return byte(StreamClientCompat) }

func (m *ClientSetup) appendBody(b []byte) ([]byte, error) {
	e := encoder{b: b}
	e.varint(uint64(len(m.Versions)))
	for _, v := range m.Versions {
		e.varint(uint64(v))
	}
	m.Params.appendTo(&e)
	return e.b, e.err
}

func (m *ClientSetup) decodeBody(b []byte) error {
	d := decoder{b: b}
	*m = ClientSetup{}
	if n := d.count(1, 0, "versions"); n > 0 {
		m.Versions = make([]Version, n)
		for i := range m.Versions {
			m.Versions[i] = Version(d.varint())
		}
	}
	m.Params.decodeFrom(&d)
	return d.done()
}

func (*ServerSetup) messageName() string { return "server setup" }
func (*ServerSetup) setupType() byte     { return byte(StreamServerCompat) }

func (m *ServerSetup) appendBody(b []byte) ([]byte, error) {
	e := encoder{b: b}
	e.varint(uint64(m.Version))
	m.Params.appendTo(&e)
	return e.b, e.err
}

func (m *ServerSetup) decodeBody(b []byte) error {
	d := decoder{b: b}
	*m = ServerSetup{Version: Version(d.varint())}
	m.Params.decodeFrom(&d)
	return d.done()
}

// AppendClientSetup appends CLIENT_SETUP, starting with the 0x20 byte that
// also serves as the stream type.
func AppendClientSetup(b []byte, m *ClientSetup) ([]byte, error) { return appendSetup(b, m) }

// AppendServerSetup appends SERVER_SETUP, starting with its 0x21 byte.
func AppendServerSetup(b []byte, m *ServerSetup) ([]byte, error) { return appendSetup(b, m) }

// DecodeClientSetup decodes CLIENT_SETUP, including its 0x20 byte, from the
// start of b and returns the bytes used.
func DecodeClientSetup(b []byte, m *ClientSetup) (int, error) { return decodeSetup(b, m) }

// DecodeServerSetup decodes SERVER_SETUP, including its 0x21 byte, from the
// start of b and returns the bytes used.
func DecodeServerSetup(b []byte, m *ServerSetup) (int, error) { return decodeSetup(b, m) }

// ReadClientSetup reads CLIENT_SETUP, including the 0x20 byte, so call it
// on the first bidi stream before reading any stream type. It returns
// io.EOF, unwrapped, if the stream ends before the first byte; a first byte
// other than 0x20 wraps ErrInvalid.
func ReadClientSetup(r Reader, m *ClientSetup) error { return readSetup(r, m) }

// ReadServerSetup reads SERVER_SETUP, including its 0x21 byte, with the
// same conventions as ReadClientSetup.
func ReadServerSetup(r Reader, m *ServerSetup) error { return readSetup(r, m) }

func appendSetup(b []byte, m setupMessage) ([]byte, error) {
	start := len(b)
	out, err := m.appendBody(append(b, m.setupType(), 0, 0))
	if err != nil {
		return b[:start], wrap(m.messageName(), err)
	}
	size := len(out) - start - 3
	if size > math.MaxUint16 {
		return b[:start], wrap(m.messageName(), fmt.Errorf("%d bytes: %w", size, ErrTooLarge))
	}
	binary.BigEndian.PutUint16(out[start+1:], uint16(size))
	return out, nil
}

func checkSetupType(m setupMessage, got byte) error {
	if got != m.setupType() {
		return wrap(m.messageName(), fmt.Errorf("type 0x%02x, want 0x%02x: %w", got, m.setupType(), ErrInvalid))
	}
	return nil
}

func decodeSetup(b []byte, m setupMessage) (int, error) {
	if len(b) < 3 {
		if len(b) > 0 {
			if err := checkSetupType(m, b[0]); err != nil {
				return 0, err
			}
		}
		return 0, wrap(m.messageName(), ErrShort)
	}
	if err := checkSetupType(m, b[0]); err != nil {
		return 0, err
	}
	end := 3 + int(binary.BigEndian.Uint16(b[1:]))
	if end > len(b) {
		return 0, wrap(m.messageName(), ErrShort)
	}
	if err := m.decodeBody(b[3:end]); err != nil {
		return 0, wrap(m.messageName(), err)
	}
	return end, nil
}

func readSetup(r Reader, m setupMessage) error {
	t, err := r.ReadByte()
	if err != nil {
		return err // io.EOF unwrapped; transport errors as they are
	}
	if err := checkSetupType(m, t); err != nil {
		return err
	}
	var hdr [2]byte
	for i := range hdr {
		if hdr[i], err = r.ReadByte(); err != nil {
			return wrap(m.messageName(), readErr(err))
		}
	}
	n := int(binary.BigEndian.Uint16(hdr[:]))
	return readBody(r, n, m.messageName(), func(body []byte) error {
		return wrap(m.messageName(), m.decodeBody(body))
	})
}

// SessionUpdate (lite-01/02) is the only message on the session stream after
// SETUP: the sender's bitrate estimate, 0 = unknown. Neither Rust nor JS
// sends it; both read the session stream until it ends.
type SessionUpdate struct {
	Bitrate uint64
}

func (*SessionUpdate) messageName() string      { return "session update" }
func (*SessionUpdate) supported(v Version) bool { return v.setupNegotiated() }

func (m *SessionUpdate) appendBody(b []byte, _ Version) ([]byte, error) {
	e := encoder{b: b}
	e.varint(m.Bitrate)
	return e.b, e.err
}

func (m *SessionUpdate) decodeBody(b []byte, _ Version) error {
	d := decoder{b: b}
	*m = SessionUpdate{Bitrate: d.varint()}
	return d.done()
}

// Compile-time checks that the messages implement their interfaces.
var (
	_ setupMessage = (*ClientSetup)(nil)
	_ setupMessage = (*ServerSetup)(nil)
	_ Message      = (*SessionUpdate)(nil)
)
