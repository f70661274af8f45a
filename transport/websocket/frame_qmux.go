package websocket

import (
	"errors"
	"fmt"

	"github.com/moqp2p/moqp2p/internal/wire"
)

// qmux-00 framing (draft-ietf-quic-qmux-00 as @moq/qmux 0.0.6 speaks it):
// QUIC frame encodings with a varint type.
const (
	qxPadding            = 0x00
	qxPing               = 0x01
	qxResetStream        = 0x04 // id, code, final size
	qxStopSending        = 0x05 // id, code
	qxStream             = 0x08 // 0x08-0x0f: id, [offset], [length], data
	qxStreamOff          = 0x04
	qxStreamLen          = 0x02
	qxStreamFin          = 0x01
	qxMaxData            = 0x10
	qxMaxStreamData      = 0x11
	qxMaxStreamsBidi     = 0x12
	qxMaxStreamsUni      = 0x13
	qxDataBlocked        = 0x14
	qxStreamDataBlocked  = 0x15
	qxStreamsBlockedBidi = 0x16
	qxStreamsBlockedUni  = 0x17
	qxConnectionClose    = 0x1c // code, frame type, reason length, reason
	qxApplicationClose   = 0x1d // as 0x1c in @moq/qmux; QUIC has no frame type here
	qxDatagram           = 0x30 // data...
	qxDatagramLen        = 0x31 // length, data
	// qxTransportParams is QX_TRANSPORT_PARAMETERS: length, then
	// {id, length, value} records.
	qxTransportParams = 0x3f5153300d0a0d0a
	// qmux-01's QX_PING request and response: a sequence number each.
	qxPingRequest  = 0x348c67529ef8c7bd
	qxPingResponse = 0x348c67529ef8c7be
)

// QUIC transport parameter IDs carried in QX_TRANSPORT_PARAMETERS.
const (
	tpMaxData          = 0x04
	tpMaxStreamDataBL  = 0x05
	tpMaxStreamDataBR  = 0x06
	tpMaxStreamDataUni = 0x07
	tpMaxStreamsBidi   = 0x08
	tpMaxStreamsUni    = 0x09
	// tpMaxRecordSize is qmux-01's max_record_size: the largest message
	// (record) the sender takes; 16382 when absent, and never below.
	tpMaxRecordSize = 0x0571c59429cd0845
)

// minRecordSize is qmux-01's default and smallest max_record_size. Our
// largest message (a STREAM frame of maxStreamPayload bytes with an
// 8-byte ID and offset) fits it.
const minRecordSize = 16382

// decodeQmux decodes the frame at the start of b and returns how many bytes
// it used. @moq/qmux sends one frame per message, but QUIC frames
// delimit themselves, so a message holding several is read in a loop.
func decodeQmux(b []byte) (frame, int, error) {
	var f frame
	d := decoder{b: b, kind: &f.kind}
	typ := d.varint("frame type")
	if d.err != nil {
		return frame{}, 0, d.err
	}
	switch {
	case typ == qxPadding || typ == qxPing:
		f.kind = kindPadding
	case typ >= qxStream && typ <= qxStream|0x07:
		f.kind = kindStream
		f.fin = typ&qxStreamFin != 0
		f.id = d.varint("stream id")
		if typ&qxStreamOff != 0 {
			f.hasOffset = true
			f.offset = d.varint("offset")
		}
		if typ&qxStreamLen != 0 {
			f.data = d.bytes(d.varint("length"), "stream data")
		} else {
			f.data = d.rest()
		}
		if d.err == nil && f.offset+uint64(len(f.data)) > wire.MaxVarint {
			return frame{}, 0, fmt.Errorf("%w: stream data ends past 2^62", ErrInvalidFrame)
		}
	case typ == qxResetStream:
		f.kind = kindResetStream
		f.id = d.varint("stream id")
		f.code = d.varint("error code")
		f.finalSize = d.varint("final size")
	case typ == qxStopSending:
		f.kind = kindStopSending
		f.id = d.varint("stream id")
		f.code = d.varint("error code")
	case typ == qxMaxData || typ == qxDataBlocked:
		f.kind = kindMaxData
		if typ == qxDataBlocked {
			f.kind = kindBlocked
		}
		f.max = d.varint("maximum")
	case typ == qxMaxStreamData || typ == qxStreamDataBlocked:
		f.kind = kindMaxStreamData
		if typ == qxStreamDataBlocked {
			f.kind = kindBlocked
		}
		f.id = d.varint("stream id")
		f.max = d.varint("maximum")
	case typ >= qxMaxStreamsBidi && typ <= qxMaxStreamsUni, typ >= qxStreamsBlockedBidi && typ <= qxStreamsBlockedUni:
		f.kind = kindMaxStreams
		if typ >= qxStreamsBlockedBidi {
			f.kind = kindBlocked
		}
		f.uni = typ&1 != 0
		f.max = d.varint("maximum streams")
		if f.max > maxStreamCount {
			return frame{}, 0, fmt.Errorf("%w: stream count %d exceeds 2^60", ErrInvalidFrame, f.max)
		}
	case typ == qxConnectionClose || typ == qxApplicationClose:
		return decodeQmuxClose(b, typ, d)
	case typ == qxDatagram:
		f.kind = kindDatagram
		f.data = d.rest()
	case typ == qxDatagramLen:
		f.kind = kindDatagram
		f.data = d.bytes(d.varint("length"), "datagram")
	case typ == qxPingRequest || typ == qxPingResponse:
		f.kind = kindQxPing
		f.response = typ == qxPingResponse
		f.seq = d.varint("sequence")
	case typ == qxTransportParams:
		f.kind = kindTransportParams
		body := d.bytes(d.varint("length"), "transport parameters")
		if d.err == nil {
			p, err := decodeParams(body)
			if err != nil {
				return frame{}, 0, err
			}
			f.params = p
		}
	default:
		return frame{}, 0, fmt.Errorf("%w: 0x%x (qmux framing)", ErrUnknownFrame, typ)
	}
	if d.err != nil {
		return frame{}, 0, d.err
	}
	return f, len(b) - len(d.b), nil
}

// decodeQmuxClose reads a close frame, d being positioned after its type.
// @moq/qmux writes a frame-type field in 0x1d too; a peer following QUIC
// leaves it out, so a 0x1d that does not parse the JS way is tried the
// QUIC way before it is called malformed.
func decodeQmuxClose(b []byte, typ uint64, d decoder) (frame, int, error) {
	f := frame{kind: kindClose, transport: typ == qxConnectionClose}
	d.kind = &f.kind
	start := d
	f.code = d.varint("error code")
	f.frameType = d.varint("frame type")
	f.reason = string(d.bytes(d.varint("reason length"), "reason"))
	if d.err != nil && typ == qxApplicationClose && errors.Is(d.err, ErrTruncated) {
		d = start
		f.code = d.varint("error code")
		f.frameType = 0
		f.reason = string(d.bytes(d.varint("reason length"), "reason"))
	}
	if d.err != nil {
		return frame{}, 0, d.err
	}
	return f, len(b) - len(d.b), nil
}

func decodeParams(b []byte) (transportParams, error) {
	var p transportParams
	var seen uint8 // bit i set: parameter 0x04+i was present
	kind := kindTransportParams
	d := decoder{b: b, kind: &kind}
	for len(d.b) > 0 && d.err == nil {
		id := d.varint("parameter id")
		val := d.bytes(d.varint("parameter length"), "parameter value")
		if d.err == nil && id == tpMaxRecordSize {
			v, n, err := wire.ParseVarint(val)
			if err != nil || n != len(val) || p.maxRecordSize != 0 || v == 0 {
				return p, fmt.Errorf("%w: max_record_size: repeated, zero or not one varint", ErrInvalidFrame)
			}
			p.maxRecordSize = v
			continue
		}
		if d.err != nil || id < tpMaxData || id > tpMaxStreamsUni {
			continue // unknown parameters are skipped, as QUIC requires
		}
		bit := uint8(1) << (id - tpMaxData)
		if seen&bit != 0 {
			return p, fmt.Errorf("%w: transport parameter 0x%x twice", ErrInvalidFrame, id)
		}
		seen |= bit
		v, n, err := wire.ParseVarint(val)
		if err != nil || n != len(val) {
			return p, fmt.Errorf("%w: transport parameter 0x%x: value is not one varint", ErrInvalidFrame, id)
		}
		switch id {
		case tpMaxData:
			p.maxData = v
		case tpMaxStreamDataBL:
			p.maxStreamDataBL = v
		case tpMaxStreamDataBR:
			p.maxStreamDataBR = v
		case tpMaxStreamDataUni:
			p.maxStreamDataUni = v
		case tpMaxStreamsBidi, tpMaxStreamsUni:
			if v > maxStreamCount {
				return p, fmt.Errorf("%w: transport parameter 0x%x: stream count %d exceeds 2^60", ErrInvalidFrame, id, v)
			}
			if id == tpMaxStreamsBidi {
				p.maxStreamsBidi = v
			} else {
				p.maxStreamsUni = v
			}
		}
	}
	if d.err != nil {
		return p, d.err
	}
	return p, nil
}

// appendQmux appends f in the qmux-00 framing. STREAM frames go out as
// 0x0a/0x0b (LEN, no OFF unless hasOffset), close frames in the @moq/qmux
// shape, as @moq/qmux sends them.
func appendQmux(b []byte, f *frame) ([]byte, error) {
	e := encoder{b: b}
	switch f.kind {
	case kindPadding:
		e.varint(qxPadding, "")
	case kindStream:
		t := uint64(qxStream | qxStreamLen)
		if f.fin {
			t |= qxStreamFin
		}
		if f.hasOffset {
			t |= qxStreamOff
		}
		e.varint(t, "frame type")
		e.varint(f.id, "stream id")
		if f.hasOffset {
			e.varint(f.offset, "offset")
		}
		e.varint(uint64(len(f.data)), "length")
		e.raw(f.data)
	case kindResetStream:
		e.varint(qxResetStream, "")
		e.varint(f.id, "stream id")
		e.varint(f.code, "error code")
		e.varint(f.finalSize, "final size")
	case kindStopSending:
		e.varint(qxStopSending, "")
		e.varint(f.id, "stream id")
		e.varint(f.code, "error code")
	case kindClose:
		t := uint64(qxApplicationClose)
		if f.transport {
			t = qxConnectionClose
		}
		e.varint(t, "")
		e.varint(f.code, "error code")
		e.varint(f.frameType, "frame type")
		e.varint(uint64(len(f.reason)), "reason length")
		e.raw([]byte(f.reason))
	case kindTransportParams:
		e.varint(qxTransportParams, "")
		body := appendParams(nil, &f.params)
		e.varint(uint64(len(body)), "length")
		e.raw(body)
	case kindMaxData:
		e.varint(qxMaxData, "")
		e.varint(f.max, "maximum")
	case kindMaxStreamData:
		e.varint(qxMaxStreamData, "")
		e.varint(f.id, "stream id")
		e.varint(f.max, "maximum")
	case kindMaxStreams:
		if f.max > maxStreamCount {
			return b, fmt.Errorf("%w: stream count %d exceeds 2^60", ErrInvalidFrame, f.max)
		}
		t := uint64(qxMaxStreamsBidi)
		if f.uni {
			t = qxMaxStreamsUni
		}
		e.varint(t, "")
		e.varint(f.max, "maximum streams")
	case kindQxPing:
		t := uint64(qxPingRequest)
		if f.response {
			t = qxPingResponse
		}
		e.varint(t, "")
		e.varint(f.seq, "sequence")
	case kindDatagram:
		e.varint(qxDatagramLen, "")
		e.varint(uint64(len(f.data)), "length")
		e.raw(f.data)
	default:
		// *_BLOCKED are only ever received: credit waits need no announcement.
		return b, fmt.Errorf("%w: %v has no qmux-00 encoding", ErrInvalidFrame, f.kind)
	}
	if e.err != nil {
		return b, e.err
	}
	return e.b, nil
}

// appendParams appends the parameter records, leaving zero values out as
// @moq/qmux does. Values are varints, so every one fits its record.
func appendParams(b []byte, p *transportParams) []byte {
	for _, r := range []struct {
		id uint64
		v  uint64
	}{
		{tpMaxData, p.maxData},
		{tpMaxStreamDataBL, p.maxStreamDataBL},
		{tpMaxStreamDataBR, p.maxStreamDataBR},
		{tpMaxStreamDataUni, p.maxStreamDataUni},
		{tpMaxStreamsBidi, p.maxStreamsBidi},
		{tpMaxStreamsUni, p.maxStreamsUni},
		{tpMaxRecordSize, p.maxRecordSize},
	} {
		if r.v == 0 || r.v > wire.MaxVarint {
			continue
		}
		b = wire.AppendVarint(b, r.id)
		b = wire.AppendVarint(b, uint64(wire.VarintLen(r.v)))
		b = wire.AppendVarint(b, r.v)
	}
	return b
}
