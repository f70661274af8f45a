package websocket

import (
	"bytes"
	"context"
	"errors"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/moqp2p/moqp2p/transport"
)

// expectViolation waits for the server connection to end and checks its
// cause; unless the WebSocket layer itself refused the message, the raw
// client must also get our close frame (code 15) and close status 1002.
func expectViolation(t *testing.T, rc *rawClient, fr Framing, s *Conn, want error, wantCloseFrame bool) {
	t.Helper()
	cause := waitDone(t, s)
	if !errors.Is(cause, want) || !errors.Is(cause, ErrProtocol) {
		t.Fatalf("cause %v, want %v", cause, want)
	}
	t.Logf("cause: %v", cause)
	if !wantCloseFrame {
		return
	}
	ctx := testCtx(t)
	sawClose := false
	for {
		msg, err := rc.recv(ctx)
		if err != nil {
			if st := websocket.CloseStatus(err); st != websocket.StatusProtocolError {
				t.Fatalf("websocket ended with %v, want status 1002", err)
			}
			break
		}
		f, err := decodeOne(fr, msg)
		if err == nil && f.kind == kindClose {
			if f.code != uint64(codeProtocol) || f.reason == "" {
				t.Fatalf("close frame %+v", f)
			}
			sawClose = true
		}
	}
	if !sawClose {
		t.Fatal("no close frame before the WebSocket closed")
	}
}

func TestBadInput(t *testing.T) {
	type step struct {
		msg string // hex message to send
	}
	for _, c := range []struct {
		name    string
		framing Framing
		cfg     Config
		server  func(t *testing.T, s *Conn) // runs before the steps
		steps   []step
		want    error
	}{
		{name: "legacy unknown frame type", framing: FramingLegacy, steps: []step{{msg: "0a 02 01 61"}}, want: ErrUnknownFrame},
		{name: "legacy empty message", framing: FramingLegacy, steps: []step{{msg: ""}}, want: ErrTruncated},
		{name: "legacy truncated reset", framing: FramingLegacy, steps: []step{{msg: "04 02"}}, want: ErrTruncated},
		{name: "legacy stream of the server never opened", framing: FramingLegacy, steps: []step{{msg: "08 01 61"}}, want: ErrStreamState},
		{name: "legacy STREAM on the server's uni stream", framing: FramingLegacy, steps: []step{{msg: "08 03 61"}}, want: ErrStreamState},
		{name: "legacy data after FIN", framing: FramingLegacy, steps: []step{{msg: "09 02 61"}, {msg: "08 02 62"}}, want: ErrFinalSize},
		{name: "legacy stream index jump", framing: FramingLegacy, cfg: Config{MaxIncomingUniStreams: 10},
			steps: []step{{msg: "08 4032 61"}}, want: ErrStreamLimit}, // id 50 = uni index 12
		{name: "legacy STOP_SENDING on the client's uni stream", framing: FramingLegacy, steps: []step{{msg: "08 02 61"}, {msg: "05 02 00"}}, want: ErrStreamState},
		{name: "qmux unknown frame type", framing: FramingQmux, steps: []step{{msg: "02"}}, want: ErrUnknownFrame},
		{name: "qmux unknown frame after a good one", framing: FramingQmux, steps: []step{{msg: "0a 02 01 61 4040"}}, want: ErrUnknownFrame},
		{name: "qmux stream flow control", framing: FramingQmux, cfg: Config{StreamWindow: 4096},
			steps: []step{{msg: "0a 02 5000" + string(bytes.Repeat([]byte("61"), 0x1000))}, {msg: "0a 02 01 61"}}, want: ErrFlowControl},
		{name: "qmux connection flow control", framing: FramingQmux, cfg: Config{StreamWindow: 4096, ConnWindow: 6000},
			steps: []step{{msg: "0a 02 5000" + string(bytes.Repeat([]byte("61"), 0x1000))}, {msg: "0a 06 5000" + string(bytes.Repeat([]byte("61"), 0x1000))}}, want: ErrFlowControl},
		{name: "qmux stream limit", framing: FramingQmux, cfg: Config{MaxIncomingUniStreams: 2},
			steps: []step{{msg: "0a 02 01 61"}, {msg: "0a 06 01 61"}, {msg: "0a 0a 01 61"}}, want: ErrStreamLimit},
		{name: "qmux offset gap", framing: FramingQmux, steps: []step{{msg: "0e 02 05 01 61"}}, want: ErrOffset},
		{name: "qmux offset wrong after continuations without OFF", framing: FramingQmux, steps: []step{{msg: "0a 02 01 61"}, {msg: "0a 02 01 62"}, {msg: "0e 02 05 01 63"}}, want: ErrOffset},
		{name: "qmux offset repeat", framing: FramingQmux, steps: []step{{msg: "0e 02 00 01 61"}, {msg: "0e 02 00 01 61"}}, want: ErrOffset},
		{name: "qmux data after FIN", framing: FramingQmux, steps: []step{{msg: "0b 02 01 61"}, {msg: "0e 02 01 01 62"}}, want: ErrFinalSize},
		{name: "qmux reset final size below data", framing: FramingQmux, steps: []step{{msg: "0a 02 03 616263"}, {msg: "04 02 00 02"}}, want: ErrFinalSize},
		{name: "qmux second transport parameters", framing: FramingQmux, steps: []step{{msg: v1JSParams}, {msg: v1JSParams}}, want: ErrProtocol},
		{name: "qmux bad transport parameters", framing: FramingQmux, steps: []step{{msg: "ff5153300d0a0d0a 04 04 02 05 00"}}, want: ErrInvalidFrame},
		{name: "qmux MAX_STREAM_DATA for the client's uni stream", framing: FramingQmux, steps: []step{{msg: "0a 02 01 61"}, {msg: "11 02 4400"}}, want: ErrStreamState},
		{name: "qmux STREAM into our own uni stream", framing: FramingQmux,
			server: func(t *testing.T, s *Conn) {
				st, err := s.OpenUniStream(testCtx(t))
				if err != nil {
					t.Fatal(err)
				}
				mustWrite(t, st, []byte("ours"))
			},
			steps: []step{{msg: v1JSParams}, {msg: "0a 03 01 61"}}, want: ErrStreamState},
		{name: "qmux RESET of the server's bidi stream never opened", framing: FramingQmux, steps: []step{{msg: "04 05 00 00"}}, want: ErrStreamState},
	} {
		t.Run(c.name, func(t *testing.T) {
			cfg := c.cfg
			ts := newTestServer(t, &cfg)
			rc := dialRaw(t, ts.url(), string(c.framing))
			s := ts.next(t)
			if c.server != nil {
				if c.framing == FramingQmux && c.steps[0].msg == v1JSParams {
					rc.send(unhex(t, v1JSParams))
					c.steps = c.steps[1:]
				}
				c.server(t, s)
			}
			for _, st := range c.steps {
				rc.send(unhex(t, st.msg))
			}
			expectViolation(t, rc, c.framing, s, c.want, true)
		})
	}
}

// TestOversizeMessage: a message over MaxMessageSize ends the connection
// (coder/websocket answers with status 1009).
func TestOversizeMessage(t *testing.T) {
	for _, fr := range []Framing{FramingLegacy, FramingQmux} {
		t.Run(string(fr), func(t *testing.T) {
			ts := newTestServer(t, &Config{MaxMessageSize: 16 << 10})
			rc := dialRaw(t, ts.url(), string(fr))
			s := ts.next(t)
			msg := append([]byte{0x08, 0x02}, make([]byte, 16<<10)...)
			_ = rc.ws.Write(testCtx(t), websocket.MessageBinary, msg)
			expectViolation(t, rc, fr, s, ErrMessageTooBig, false)
			if err := rc.drain(testCtx(t)); websocket.CloseStatus(err) != websocket.StatusMessageTooBig {
				t.Fatalf("client saw %v, want status 1009", err)
			}
		})
	}
}

// TestIgnoredInput: text messages (both framings) and qmux PADDING,
// DATAGRAM and *_BLOCKED frames change nothing; the stream after them
// arrives.
func TestIgnoredInput(t *testing.T) {
	for _, c := range []struct {
		framing Framing
		msgs    []string
	}{
		{FramingLegacy, []string{"08 02 6869", "09 02"}},
		{FramingQmux, []string{"00", "01", "30 6869", "31 02 6869", "14 00", "15 02 00", "16 00", "17 00", "0a 02 02 6869", "0b 02 00"}},
	} {
		t.Run(string(c.framing), func(t *testing.T) {
			ts := newTestServer(t, nil)
			rc := dialRaw(t, ts.url(), string(c.framing))
			s := ts.next(t)
			if err := rc.ws.Write(testCtx(t), websocket.MessageText, []byte("hello?")); err != nil {
				t.Fatal(err)
			}
			for _, m := range c.msgs {
				rc.send(unhex(t, m))
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

// TestPeerCloseFrames: the peer's close frames in both framings, and a
// qmux transport error (0x1c), end the connection with a remote ConnError.
func TestPeerCloseFrames(t *testing.T) {
	for _, c := range []struct {
		framing Framing
		msg     string
		want    transport.ConnError
	}{
		{FramingLegacy, "1d 00 646f6e65", transport.ConnError{Code: 0, Reason: "done", Remote: true}},
		{FramingLegacy, "1d 4040 6e6f", transport.ConnError{Code: 64, Reason: "no", Remote: true}},
		{FramingQmux, "1d 00 00 04 646f6e65", transport.ConnError{Code: 0, Reason: "done", Remote: true}},
		{FramingQmux, "1d 0c 02 6e6f", transport.ConnError{Code: 12, Reason: "no", Remote: true}},
		{FramingQmux, "1d d000000000000001 00 00", transport.ConnError{Code: codeProtocol, Remote: true}},
		{FramingQmux, "1c 03 10 00", transport.ConnError{Code: codeTransport, Reason: "transport error 0x3 (frame 0x10): ", Remote: true}},
	} {
		t.Run(string(c.framing)+" "+c.msg, func(t *testing.T) {
			ts := newTestServer(t, nil)
			rc := dialRaw(t, ts.url(), string(c.framing))
			s := ts.next(t)
			rc.send(unhex(t, c.msg))
			var ce *transport.ConnError
			if err := waitDone(t, s); !errors.As(err, &ce) || *ce != c.want {
				t.Fatalf("cause %v, want %v", err, &c.want)
			}
			// We close the WebSocket normally in answer.
			ctx := testCtx(t)
			start := time.Now()
			if err := rc.drain(ctx); websocket.CloseStatus(err) != websocket.StatusNormalClosure {
				t.Fatalf("client saw %v after %v", err, time.Since(start))
			}
		})
	}
}
