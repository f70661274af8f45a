package websocket

import (
	"fmt"

	"github.com/moqp2p/moqp2p/internal/wire"
)

// frameKind is what a frame does, independent of the framing that carries it.
type frameKind uint8

const (
	kindStream          frameKind = iota + 1 // data on a stream, maybe with FIN
	kindResetStream                          // the sender abandons a stream
	kindStopSending                          // the receiver asks the sender to stop
	kindClose                                // the connection ends
	kindTransportParams                      // qmux: the peer's initial limits
	kindMaxData                              // qmux: connection credit
	kindMaxStreamData                        // qmux: stream credit
	kindMaxStreams                           // qmux: stream-count credit
	kindBlocked                              // qmux: *_BLOCKED, informational only
	kindDatagram                             // qmux: unreliable data, unsupported here
	kindPadding                              // qmux: PADDING or PING, nothing to do
	kindQxPing                               // qmux-01+: QX_PING request or response
)

func (k frameKind) String() string {
	switch k {
	case kindStream:
		return "STREAM"
	case kindResetStream:
		return "RESET_STREAM"
	case kindStopSending:
		return "STOP_SENDING"
	case kindClose:
		return "CLOSE"
	case kindTransportParams:
		return "TRANSPORT_PARAMETERS"
	case kindMaxData:
		return "MAX_DATA"
	case kindMaxStreamData:
		return "MAX_STREAM_DATA"
	case kindMaxStreams:
		return "MAX_STREAMS"
	case kindBlocked:
		return "BLOCKED"
	case kindDatagram:
		return "DATAGRAM"
	case kindPadding:
		return "PADDING"
	case kindQxPing:
		return "QX_PING"
	}
	return fmt.Sprintf("frameKind(%d)", uint8(k))
}

// frame is one frame of either framing. Only the fields of its kind are
// meaningful; data aliases the decoded message.
type frame struct {
	kind frameKind
	id   uint64 // stream ID (STREAM, RESET, STOP, MAX_STREAM_DATA, STREAM_DATA_BLOCKED)

	// STREAM
	data      []byte
	fin       bool
	hasOffset bool   // qmux: the OFF bit was set
	offset    uint64 // qmux: the offset of data, when hasOffset

	code      uint64 // RESET, STOP, close: the error code
	finalSize uint64 // qmux RESET: bytes sent before the reset

	// close
	reason    string
	transport bool   // qmux CONNECTION_CLOSE 0x1c (a transport error) rather than 0x1d
	frameType uint64 // qmux close: the frame type that caused it

	max    uint64 // MAX_DATA, MAX_STREAM_DATA, MAX_STREAMS; the limit of a *_BLOCKED
	uni    bool   // MAX_STREAMS, STREAMS_BLOCKED: unidirectional
	params transportParams

	seq      uint64 // QX_PING: the sequence number
	response bool   // QX_PING: a response rather than a request
}

// transportParams are the qmux-00 transport parameters we understand (QUIC
// IDs 0x04-0x09). Zero means absent, as JS leaves zero values out.
type transportParams struct {
	maxData          uint64 // 0x04 initial_max_data
	maxStreamDataBL  uint64 // 0x05 initial_max_stream_data_bidi_local
	maxStreamDataBR  uint64 // 0x06 initial_max_stream_data_bidi_remote
	maxStreamDataUni uint64 // 0x07 initial_max_stream_data_uni
	maxStreamsBidi   uint64 // 0x08 initial_max_streams_bidi
	maxStreamsUni    uint64 // 0x09 initial_max_streams_uni
	maxRecordSize    uint64 // qmux-01 max_record_size (0 = not sent: 16382)
}

// maxStreamCount is QUIC's cap on stream counts: stream IDs must fit 62 bits.
const maxStreamCount = 1 << 60

// maxStreamPayload is the largest STREAM payload we put in one message:
// @moq/qmux closes the socket ("frame too large") above 16384-24 bytes.
const maxStreamPayload = 16384 - 24

// maxReasonLen bounds the close reasons we send, keeping the close frame
// far below any peer's message limit.
const maxReasonLen = 1024

// decoder reads fields from one message. The first error sticks, so a
// sequence of reads is checked once at the end.
type decoder struct {
	b    []byte
	err  error
	kind *frameKind // the frame being decoded, for error messages
}

func (d *decoder) fail(err error) {
	if d.err == nil {
		d.err = err
	}
	d.b = nil
}

func (d *decoder) varint(what string) uint64 {
	if d.err != nil {
		return 0
	}
	v, n, err := wire.ParseVarint(d.b)
	if err != nil {
		d.fail(fmt.Errorf("%w: %s", ErrTruncated, d.field(what)))
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) bytes(n uint64, what string) []byte {
	if d.err != nil {
		return nil
	}
	if n > uint64(len(d.b)) {
		d.fail(fmt.Errorf("%w: %s: %d bytes declared, %d left", ErrTruncated, d.field(what), n, len(d.b)))
		return nil
	}
	p := d.b[:n:n]
	d.b = d.b[n:]
	return p
}

// field names a field in errors: "RESET_STREAM error code".
func (d *decoder) field(what string) string {
	if d.kind == nil || *d.kind == 0 {
		return what
	}
	return d.kind.String() + " " + what
}

// rest takes everything left in the message.
func (d *decoder) rest() []byte {
	if d.err != nil {
		return nil
	}
	p := d.b
	d.b = nil
	return p
}

// appendVarint appends v, failing for values QUIC varints cannot carry.
func appendVarint(b []byte, v uint64, what string) ([]byte, error) {
	if v > wire.MaxVarint {
		return b, fmt.Errorf("%w: %s %d exceeds 2^62-1", ErrInvalidFrame, what, v)
	}
	return wire.AppendVarint(b, v), nil
}

// encoder appends fields; the first error sticks.
type encoder struct {
	b   []byte
	err error
}

func (e *encoder) varint(v uint64, what string) {
	if e.err == nil {
		e.b, e.err = appendVarint(e.b, v, what)
	}
}

func (e *encoder) raw(p []byte) {
	if e.err == nil {
		e.b = append(e.b, p...)
	}
}
