package websocket

import "fmt"

// Legacy `webtransport` framing (@moq/web-transport-ws): a one-byte type,
// no lengths, no offsets, no flow control. Each frame fills its WebSocket
// message, so STREAM data and close reasons run to the end of it.
const (
	legacyResetStream = 0x04 // id, code
	legacyStopSending = 0x05 // id, code
	legacyStream      = 0x08 // id, data...
	legacyStreamFin   = 0x09 // id, data... (last)
	legacyClose       = 0x1d // code, reason...
)

// decodeLegacy decodes the one frame that fills msg.
func decodeLegacy(msg []byte) (frame, error) {
	if len(msg) == 0 {
		return frame{}, fmt.Errorf("%w: empty message", ErrTruncated)
	}
	var f frame
	switch msg[0] {
	case legacyStream, legacyStreamFin:
		f.kind = kindStream
	case legacyResetStream:
		f.kind = kindResetStream
	case legacyStopSending:
		f.kind = kindStopSending
	case legacyClose:
		f.kind = kindClose
	default:
		return frame{}, fmt.Errorf("%w: 0x%02x (legacy framing)", ErrUnknownFrame, msg[0])
	}
	d := decoder{b: msg[1:], kind: &f.kind}
	switch f.kind {
	case kindStream:
		f.fin = msg[0] == legacyStreamFin
		f.id = d.varint("stream id")
		f.data = d.rest()
	case kindResetStream, kindStopSending:
		f.id = d.varint("stream id")
		f.code = d.varint("error code")
	case kindClose:
		f.code = d.varint("error code")
		f.reason = string(d.rest())
	}
	if d.err != nil {
		return frame{}, d.err
	}
	if len(d.b) > 0 { // only RESET and STOP end before the message does
		return frame{}, fmt.Errorf("%w: %d bytes after %v", ErrInvalidFrame, len(d.b), f.kind)
	}
	return f, nil
}

// appendLegacy appends f in the legacy framing. Only the frames the
// framing has can be encoded.
func appendLegacy(b []byte, f *frame) ([]byte, error) {
	e := encoder{b: b}
	switch f.kind {
	case kindStream:
		t := byte(legacyStream)
		if f.fin {
			t = legacyStreamFin
		}
		e.raw([]byte{t})
		e.varint(f.id, "stream id")
		e.raw(f.data)
	case kindResetStream, kindStopSending:
		t := byte(legacyResetStream)
		if f.kind == kindStopSending {
			t = legacyStopSending
		}
		e.raw([]byte{t})
		e.varint(f.id, "stream id")
		e.varint(f.code, "error code")
	case kindClose:
		e.raw([]byte{legacyClose})
		e.varint(f.code, "error code")
		e.raw([]byte(f.reason))
	default:
		return b, fmt.Errorf("%w: %v has no legacy encoding", ErrInvalidFrame, f.kind)
	}
	if e.err != nil {
		return b, e.err
	}
	return e.b, nil
}
