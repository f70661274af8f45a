package websocket

import (
	"errors"
	"testing"
)

// seedFuzz adds every captured vector of the framing plus our encoder's output
// for a spread of frames.
func seedFuzz(f *testing.F, fr Framing) {
	for _, v := range vectors() {
		if v.framing == fr {
			f.Add(unhex(f, v.hex))
		}
	}
	for _, fm := range []frame{
		{kind: kindStream, id: 2, data: []byte("hello"), fin: true},
		{kind: kindStream, id: 1<<40 + 3, data: make([]byte, 300)},
		{kind: kindStream, id: 6, hasOffset: true, offset: 16360, data: []byte("continued"), fin: true}, // as we send continuations
		{kind: kindResetStream, id: 5, code: 1 << 33, finalSize: 70000},
		{kind: kindStopSending, id: 9, code: 64},
		{kind: kindClose, code: 12, reason: "bye"},
		{kind: kindTransportParams, params: transportParams{maxData: 1, maxStreamsUni: 1 << 60}},
		{kind: kindMaxData, max: 1 << 61},
		{kind: kindMaxStreamData, id: 4, max: 77},
		{kind: kindMaxStreams, uni: true, max: 1 << 60},
		{kind: kindDatagram, data: []byte{1, 2, 3}},
	} {
		if b, err := encodeOne(fr, &fm); err == nil {
			f.Add(b)
		}
	}
}

// checkDecodeErr: a decoder fails only with one of its sentinels.
func checkDecodeErr(t *testing.T, err error) {
	if !errors.Is(err, ErrTruncated) && !errors.Is(err, ErrUnknownFrame) && !errors.Is(err, ErrInvalidFrame) {
		t.Fatalf("error without a sentinel: %v", err)
	}
}

// FuzzDecodeLegacy: decoding never panics, fails only with a sentinel, and
// what decodes re-encodes to the same bytes (legacy has one encoding).
func FuzzDecodeLegacy(f *testing.F) {
	seedFuzz(f, FramingLegacy)
	f.Fuzz(func(t *testing.T, msg []byte) {
		fm, err := decodeLegacy(msg)
		if err != nil {
			checkDecodeErr(t, err)
			return
		}
		enc, err := appendLegacy(nil, &fm)
		if err != nil {
			t.Fatalf("re-encode %+v: %v", fm, err)
		}
		again, err := decodeLegacy(enc)
		if err != nil || !framesEqual(fm, again) {
			t.Fatalf("round trip of %x: %+v -> %x -> %+v, %v", msg, fm, enc, again, err)
		}
	})
}

// FuzzDecodeQmux: decoding a message frame by frame never panics, always
// makes progress, fails only with a sentinel, and every frame we can
// encode survives a round trip.
func FuzzDecodeQmux(f *testing.F) {
	seedFuzz(f, FramingQmux)
	// qmux-01's QX_PING and max_record_size.
	f.Add([]byte{0xf4, 0x8c, 0x67, 0x52, 0x9e, 0xf8, 0xc7, 0xbd, 0x07})
	f.Add([]byte{0xff, 0x51, 0x53, 0x30, 0x0d, 0x0a, 0x0d, 0x0a, 0x0b, 0xc5, 0x71, 0xc5, 0x94, 0x29, 0xcd, 0x08, 0x45, 0x02, 0x7f, 0xfe})
	f.Fuzz(func(t *testing.T, msg []byte) {
		for len(msg) > 0 {
			fm, n, err := decodeQmux(msg)
			if err != nil {
				checkDecodeErr(t, err)
				return
			}
			if n <= 0 || n > len(msg) {
				t.Fatalf("decoded %d of %d bytes", n, len(msg))
			}
			msg = msg[n:]
			if fm.kind == kindBlocked {
				continue // receive-only
			}
			enc, err := appendQmux(nil, &fm)
			if err != nil {
				t.Fatalf("re-encode %+v: %v", fm, err)
			}
			again, m, err := decodeQmux(enc)
			if err != nil || m != len(enc) || !framesEqual(fm, again) {
				t.Fatalf("round trip: %+v -> %x -> %+v, %v", fm, enc, again, err)
			}
		}
	})
}
