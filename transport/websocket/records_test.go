package websocket

import (
	"context"
	"errors"
	"testing"

	"github.com/moqp2p/moqp2p/internal/wire"
)

// qmux-01 and later: a message is a record of any number of frames, an
// empty one is allowed, QX_PING requests are answered with the same
// sequence number, and the peer's max_record_size must not be below 16382.
func TestRecordFraming(t *testing.T) {
	for _, sp := range []string{"qmux-01", "qmux-02", "qmux-02.moq-lite-05", "moq-lite-05"} {
		t.Run(sp, func(t *testing.T) {
			ts := newTestServer(t, nil)
			rc := dialRaw(t, ts.url(), sp)
			s := ts.next(t)
			if !s.records() || s.Subprotocol() != sp {
				t.Fatalf("framing %s, subprotocol %q", s.Framing(), s.Subprotocol())
			}
			if f, err := rc.recvQmux(testCtx(t)); err != nil || f.kind != kindTransportParams {
				t.Fatalf("first frame %v %v, want our transport parameters", f.kind, err)
			}
			// Our parameters, a ping and two STREAM frames in one record.
			rec := unhex(t, v1JSParams+" 00 00") // PADDING after them
			rec = wire.AppendVarint(rec, qxPingRequest)
			rec = wire.AppendVarint(rec, 7)
			rec = append(rec, unhex(t, "0a 02 02 6869 0f 02 02 00")...) // "hi", then FIN at offset 2
			rc.send(rec)
			rc.send(nil) // an empty record
			f, err := rc.recvQmux(testCtx(t))
			if err != nil || f.kind != kindQxPing || !f.response || f.seq != 7 {
				t.Fatalf("got %+v %v, want QX_PING response 7", f, err)
			}
			rs, err := s.AcceptUniStream(testCtx(t))
			if err != nil {
				t.Fatal(err)
			}
			if got := mustReadAll(t, rs); string(got) != "hi" {
				t.Fatalf("got %q", got)
			}
			if s.Context().Err() != nil {
				t.Fatalf("connection ended: %v", context.Cause(s.Context()))
			}
		})
	}
}

func TestRecordBadInput(t *testing.T) {
	small := wire.AppendVarint(nil, qxTransportParams)
	body := wire.AppendVarint(nil, tpMaxRecordSize)
	body = wire.AppendVarint(body, 2)
	body = wire.AppendVarint(body, 1000)
	small = append(wire.AppendVarint(small, uint64(len(body))), body...)
	ping := wire.AppendVarint(nil, qxPingRequest)
	ping = wire.AppendVarint(ping, 1)
	for _, c := range []struct {
		name string
		sp   string
		msg  []byte
		want error
	}{
		{"max_record_size below 16382", "qmux-01", small, ErrProtocol},
		{"QX_PING on qmux-00", "qmux-00", ping, ErrUnknownFrame},
		{"empty message on qmux-00", "qmux-00", nil, ErrTruncated},
	} {
		t.Run(c.name, func(t *testing.T) {
			ts := newTestServer(t, nil)
			rc := dialRaw(t, ts.url(), c.sp)
			s := ts.next(t)
			rc.send(c.msg)
			cause := waitDone(t, s)
			if !errors.Is(cause, c.want) || !errors.Is(cause, ErrProtocol) {
				t.Fatalf("cause %v, want %v", cause, c.want)
			}
		})
	}
}

// Dial speaks a bare app protocol a server selects (QMux over WebSocket).
func TestDialBareAppProtocol(t *testing.T) {
	ts := newTestServer(t, &Config{Framings: []Framing{FramingQmux01}})
	// A server that only knows the bare form would answer "moq-lite-05"
	// to our offers only if we offered it; check parsing of the answer.
	o, ok := bareApp("moq-lite-05", allFramings, DefaultProtocols)
	if !ok || o.framing != FramingQmux01 || o.app != "moq-lite-05" {
		t.Fatalf("bare answer read as %+v %v", o, ok)
	}
	c, err := Dial(testCtx(t), ts.url(), &Config{Framings: []Framing{FramingQmux01}, Protocols: []string{"moq-lite-05"}})
	if err != nil {
		t.Fatal(err)
	}
	s := ts.next(t)
	if c.Framing() != FramingQmux01 || c.Protocol() != "moq-lite-05" || s.Protocol() != "moq-lite-05" {
		t.Fatalf("negotiated %s %q / %q", c.Framing(), c.Protocol(), s.Protocol())
	}
	_ = c.CloseWithError(0, "")
}

// A flood of QX_PING requests costs one pending response: requests in one
// record are answered once, with the latest sequence.
func TestRecordPingFlood(t *testing.T) {
	ts := newTestServer(t, nil)
	rc := dialRaw(t, ts.url(), "qmux-02.moq-lite-05")
	s := ts.next(t)
	if f, err := rc.recvQmux(testCtx(t)); err != nil || f.kind != kindTransportParams {
		t.Fatalf("first frame %v %v", f.kind, err)
	}
	rec := unhex(t, v1JSParams)
	for i := range 1000 {
		rec = wire.AppendVarint(rec, qxPingRequest)
		rec = wire.AppendVarint(rec, uint64(i))
	}
	rc.send(rec)
	f, err := rc.recvQmux(testCtx(t))
	if err != nil || f.kind != kindQxPing || !f.response || f.seq != 999 {
		t.Fatalf("got %+v %v, want one QX_PING response, 999", f, err)
	}
	s.mu.Lock()
	due := s.pongDue
	s.mu.Unlock()
	if due {
		t.Fatal("a response still pending after the one sent")
	}
}
