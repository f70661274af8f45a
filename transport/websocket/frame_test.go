package websocket

import (
	"bytes"
	"encoding/hex"
	"errors"
	"strings"
	"testing"
)

// unhex decodes hex with spaces and "|" ignored.
func unhex(t testing.TB, s string) []byte {
	t.Helper()
	s = strings.NewReplacer(" ", "", "|", "", "\n", "", "\t", "").Replace(s)
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatalf("bad hex %q: %v", s, err)
	}
	return b
}

// The @moq/lite 0.2.2 captures V1-V11 (docs/wire.md#js-captures; and
// docs/transports.md#qmux-00), as whole WebSocket messages. "derived" ones
// wrap captured stream bytes in a framing they were not captured in.
const (
	v1JSParams     = "ff5153300d0a0d0a 20 04 04 80100000 05 04 80040000 06 04 80040000 07 04 80040000 08 02 4064 09 02 4064"
	v1ServerParams = "ff5153300d0a0d0a 24 04 08 c000000040000000 05 04 81000000 06 04 81000000 07 04 81000000 08 02 43e8 09 02 43e8"
	setupBody      = "03c0000000ff0dad02c0000000ff0dad01c0000000ff00000e02028000a455070b6d6f712d6c6974652d6a73"
	serverSetup    = "21 0009 c0000000ff0dad02 00"
)

type vector struct {
	name    string
	framing Framing
	hex     string
	want    frame
	jsShape bool // our encoder must produce exactly these bytes
}

func vectors() []vector {
	st := func(id uint64, data string, fin bool) frame {
		b, _ := hex.DecodeString(strings.ReplaceAll(data, " ", ""))
		return frame{kind: kindStream, id: id, data: b, fin: fin}
	}
	return []vector{
		{"V1 JS params", FramingQmux, v1JSParams, frame{kind: kindTransportParams, params: transportParams{
			maxData: 1 << 20, maxStreamDataBL: 1 << 18, maxStreamDataBR: 1 << 18, maxStreamDataUni: 1 << 18,
			maxStreamsBidi: 100, maxStreamsUni: 100}}, true},
		{"V1 server params", FramingQmux, v1ServerParams, frame{kind: kindTransportParams, params: transportParams{
			maxData: 1 << 30, maxStreamDataBL: 1 << 24, maxStreamDataBR: 1 << 24, maxStreamDataUni: 1 << 24,
			maxStreamsBidi: 1000, maxStreamsUni: 1000}}, true},
		{"V2 legacy 1", FramingLegacy, "08 00 20", st(0, "20", false), true},
		{"V2 legacy 2", FramingLegacy, "08 00 002c", st(0, "002c", false), true},
		{"V2 legacy 3", FramingLegacy, "08 00" + setupBody, st(0, setupBody, false), true},
		{"V2 qmux 1", FramingQmux, "0a 00 01 20", st(0, "20", false), true},
		{"V2 qmux 2", FramingQmux, "0a 00 02 002c", st(0, "002c", false), true},
		{"V2 qmux 3", FramingQmux, "0a 00 2c" + setupBody, st(0, setupBody, false), true},
		{"V3 legacy", FramingLegacy, "08 00" + serverSetup, st(0, serverSetup, false), true},
		{"V3 qmux", FramingQmux, "0a 00 0c" + serverSetup, st(0, serverSetup, false), true},
		{"V4 legacy", FramingLegacy, "08 00 04", st(0, "04", false), true},
		{"V4 qmux", FramingQmux, "0a 00 01 04", st(0, "04", false), true},
		{"V5 legacy (derived)", FramingLegacy, "08 04 0000", st(4, "0000", false), true},
		{"V5 qmux (derived)", FramingQmux, "0a 04 02 0000", st(4, "0000", false), true},
		{"V6 legacy (derived)", FramingLegacy, "08 04 0b01 08 676f2f6263617374 00", st(4, "0b0108676f2f626361737400", false), true},
		{"V7 qmux (derived)", FramingQmux, "0a 08 14 00 08 676f2f6263617374 04 64617461 00 00 00 00 00",
			st(8, "0008676f2f62636173740464617461 0000000000", false), true},
		{"V9 legacy group", FramingLegacy, "08 03 00 02 00 00 08 676f2d67302d6630 08 676f2d67302d6631",
			st(3, "0002000008676f2d67302d663008676f2d67302d6631", false), true},
		{"V9 legacy FIN", FramingLegacy, "09 02", st(2, "", true), true},
		{"V9 qmux FIN", FramingQmux, "0b 02 00", st(2, "", true), true},
		{"V10 legacy FIN", FramingLegacy, "09 08", st(8, "", true), true},
		{"V10 legacy STOP_SENDING", FramingLegacy, "05 08 00", frame{kind: kindStopSending, id: 8}, true},
		{"V10 legacy close", FramingLegacy, "1d 00 646f6e65", frame{kind: kindClose, reason: "done"}, true},
		{"V10 qmux close", FramingQmux, "1d 00 00 04 646f6e65", frame{kind: kindClose, reason: "done"}, true},
		{"V11 MAX_DATA", FramingQmux, "10 80183105", frame{kind: kindMaxData, max: 0x183105}, true},
		{"V11 MAX_STREAMS_UNI", FramingQmux, "13 4086", frame{kind: kindMaxStreams, uni: true, max: 134}, true},
		// Not from captures: shapes the decoder must also accept.
		{"legacy RESET", FramingLegacy, "04 06 05", frame{kind: kindResetStream, id: 6, code: 5}, true},
		{"legacy FIN with data", FramingLegacy, "09 02 6869", st(2, "6869", true), true},
		{"qmux RESET", FramingQmux, "04 06 05 4064", frame{kind: kindResetStream, id: 6, code: 5, finalSize: 100}, true},
		{"qmux STOP", FramingQmux, "05 07 0c", frame{kind: kindStopSending, id: 7, code: 12}, true},
		{"qmux MAX_STREAM_DATA", FramingQmux, "11 04 4400", frame{kind: kindMaxStreamData, id: 4, max: 0x400}, true},
		{"qmux MAX_STREAMS_BIDI", FramingQmux, "12 4064", frame{kind: kindMaxStreams, max: 100}, true},
		{"qmux transport close", FramingQmux, "1c 03 08 02 6869", frame{kind: kindClose, transport: true, code: 3, frameType: 8, reason: "hi"}, true},
		{"qmux STREAM with offset", FramingQmux, "0e 04 05 02 6869", frame{kind: kindStream, id: 4, hasOffset: true, offset: 5, data: []byte("hi")}, true},
		{"qmux STREAM no length", FramingQmux, "08 04 6869", st(4, "6869", false), false},
		{"qmux STREAM FIN no length", FramingQmux, "09 04", st(4, "", true), false},
		{"qmux QUIC-style 0x1d", FramingQmux, "1d 00 04 646f6e65", frame{kind: kindClose, reason: "done"}, false},
		{"qmux DATA_BLOCKED", FramingQmux, "14 4400", frame{kind: kindBlocked, max: 0x400}, false},
		{"qmux STREAM_DATA_BLOCKED", FramingQmux, "15 02 4400", frame{kind: kindBlocked, id: 2, max: 0x400}, false},
		{"qmux STREAMS_BLOCKED_UNI", FramingQmux, "17 4064", frame{kind: kindBlocked, uni: true, max: 100}, false},
		{"qmux DATAGRAM", FramingQmux, "30 6869", frame{kind: kindDatagram, data: []byte("hi")}, false},
		{"qmux DATAGRAM with length", FramingQmux, "31 02 6869", frame{kind: kindDatagram, data: []byte("hi")}, true},
		{"qmux params with unknown id", FramingQmux, "ff5153300d0a0d0a 07 01 02 aabb 04 01 05", frame{kind: kindTransportParams, params: transportParams{maxData: 5}}, false},
		{"qmux PADDING", FramingQmux, "00", frame{kind: kindPadding}, true},
	}
}

func decodeOne(fr Framing, msg []byte) (frame, error) {
	if fr == FramingLegacy {
		return decodeLegacy(msg)
	}
	f, n, err := decodeQmux(msg)
	if err == nil && n != len(msg) {
		err = errors.New("frame does not fill the message")
	}
	return f, err
}

func encodeOne(fr Framing, f *frame) ([]byte, error) {
	if fr == FramingLegacy {
		return appendLegacy(nil, f)
	}
	return appendQmux(nil, f)
}

func framesEqual(a, b frame) bool {
	return a.kind == b.kind && a.id == b.id && bytes.Equal(a.data, b.data) && a.fin == b.fin &&
		a.hasOffset == b.hasOffset && a.offset == b.offset && a.code == b.code && a.finalSize == b.finalSize &&
		a.reason == b.reason && a.transport == b.transport && a.frameType == b.frameType &&
		a.max == b.max && a.uni == b.uni && a.params == b.params
}

func TestFrameVectors(t *testing.T) {
	for _, v := range vectors() {
		t.Run(v.name, func(t *testing.T) {
			msg := unhex(t, v.hex)
			got, err := decodeOne(v.framing, msg)
			if err != nil {
				t.Fatalf("decode %x: %v", msg, err)
			}
			if !framesEqual(got, v.want) {
				t.Fatalf("decode %x:\n got %+v\nwant %+v", msg, got, v.want)
			}
			if !v.jsShape {
				return
			}
			enc, err := encodeOne(v.framing, &v.want)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(enc, msg) {
				t.Fatalf("encode:\n got %x\nwant %x", enc, msg)
			}
		})
	}
}

// TestQmuxSeveralFramesPerMessage: QUIC frames delimit themselves, so a
// message may carry more than one.
func TestQmuxSeveralFramesPerMessage(t *testing.T) {
	msg := unhex(t, "0a 02 01 68 0b 02 01 69 10 4400")
	var got []frame
	for len(msg) > 0 {
		f, n, err := decodeQmux(msg)
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, f)
		msg = msg[n:]
	}
	if len(got) != 3 || string(got[0].data) != "h" || !got[1].fin || got[2].kind != kindMaxData || got[2].max != 0x400 {
		t.Fatalf("got %+v", got)
	}
}

func TestFrameDecodeErrors(t *testing.T) {
	for _, c := range []struct {
		name    string
		framing Framing
		hex     string
		want    error
	}{
		{"legacy empty", FramingLegacy, "", ErrTruncated},
		{"legacy unknown type", FramingLegacy, "0a 00 01 20", ErrUnknownFrame},
		{"legacy unknown type 0x1c", FramingLegacy, "1c 00", ErrUnknownFrame},
		{"legacy stream id cut", FramingLegacy, "08 40", ErrTruncated},
		{"legacy reset without code", FramingLegacy, "04 02", ErrTruncated},
		{"legacy reset trailing", FramingLegacy, "04 02 00 00", ErrInvalidFrame},
		{"legacy stop trailing", FramingLegacy, "05 02 00 ff", ErrInvalidFrame},
		{"qmux empty", FramingQmux, "", ErrTruncated},
		{"qmux unknown type", FramingQmux, "02", ErrUnknownFrame},
		{"qmux unknown 2-byte type", FramingQmux, "4040", ErrUnknownFrame},
		{"qmux length past end", FramingQmux, "0a 00 05 20", ErrTruncated},
		{"qmux offset cut", FramingQmux, "0e 00", ErrTruncated},
		{"qmux offset past 2^62", FramingQmux, "0c 00 ffffffffffffffff 20", ErrInvalidFrame},
		{"qmux reset without final size", FramingQmux, "04 02 00", ErrTruncated},
		{"qmux max streams past 2^60", FramingQmux, "13 d000000000000001", ErrInvalidFrame},
		{"qmux close reason past end", FramingQmux, "1c 00 00 09 6869", ErrTruncated},
		{"qmux params length past end", FramingQmux, "ff5153300d0a0d0a 09 04 01 05", ErrTruncated},
		{"qmux params duplicate", FramingQmux, "ff5153300d0a0d0a 06 04 01 05 04 01 06", ErrInvalidFrame},
		{"qmux params value not one varint", FramingQmux, "ff5153300d0a0d0a 04 04 02 05 00", ErrInvalidFrame},
		{"qmux params stream count past 2^60", FramingQmux, "ff5153300d0a0d0a 0a 09 08 d000000000000001", ErrInvalidFrame},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := decodeOne(c.framing, unhex(t, c.hex))
			if !errors.Is(err, c.want) {
				t.Fatalf("got %v, want %v", err, c.want)
			}
		})
	}
}

func TestFrameEncodeErrors(t *testing.T) {
	if _, err := appendLegacy(nil, &frame{kind: kindMaxData, max: 1}); !errors.Is(err, ErrInvalidFrame) {
		t.Errorf("legacy MAX_DATA: %v", err)
	}
	if _, err := appendQmux(nil, &frame{kind: kindStream, id: 1 << 62}); !errors.Is(err, ErrInvalidFrame) {
		t.Errorf("stream id 2^62: %v", err)
	}
	if _, err := appendQmux(nil, &frame{kind: kindMaxStreams, max: 1<<60 + 1}); !errors.Is(err, ErrInvalidFrame) {
		t.Errorf("MAX_STREAMS 2^60+1: %v", err)
	}
	if _, err := appendQmux(nil, &frame{kind: kindBlocked}); !errors.Is(err, ErrInvalidFrame) {
		t.Errorf("BLOCKED: %v", err)
	}
}

// TestOurParamsEncoding: the parameters we send with the defaults.
func TestOurParamsEncoding(t *testing.T) {
	c := &Conn{cfg: (&Config{}).withDefaults()}
	p := c.ourParams()
	msg, err := appendQmux(nil, &frame{kind: kindTransportParams, params: p})
	if err != nil {
		t.Fatal(err)
	}
	want := unhex(t, "ff5153300d0a0d0a 20 04 04 81000000 05 04 80100000 06 04 80100000 07 04 80100000 08 02 43e8 09 02 43e8")
	if !bytes.Equal(msg, want) {
		t.Fatalf("got %x\nwant %x", msg, want)
	}
}
