package websocket

import (
	"bytes"
	"io"
	"testing"
)

// TestJSShapedExchange replays what @moq/lite 0.2.2 sends
// (docs/wire.md#js-captures) from a raw client and checks the server's
// bytes on the wire: our transport parameters come first (qmux-00), the
// CLIENT_SETUP arriving in three frames reads as one byte stream, and
// SERVER_SETUP goes out in the captured shape (V3).
func TestJSShapedExchange(t *testing.T) {
	for _, c := range []struct {
		framing   Framing
		setup     []string // V2
		wantReply string   // V3
	}{
		{FramingQmux, []string{"0a 00 01 20", "0a 00 02 002c", "0a 00 2c" + setupBody}, "0a 00 0c" + serverSetup},
		{FramingLegacy, []string{"08 00 20", "08 00 002c", "08 00" + setupBody}, "08 00" + serverSetup},
	} {
		t.Run(string(c.framing), func(t *testing.T) {
			ts := newTestServer(t, nil)
			rc := dialRaw(t, ts.url(), "qmux-00", "webtransport") // @moq/lite's default offer
			if rc.ws.Subprotocol() != "qmux-00" {
				// The default server prefers qmux-00; the legacy case
				// offers it alone.
				t.Fatalf("selected %q", rc.ws.Subprotocol())
			}
			_ = rc.ws.CloseNow()
			ts.next(t)
			rc = dialRaw(t, ts.url(), string(c.framing))
			s := ts.next(t)
			ctx := testCtx(t)
			if c.framing == FramingQmux {
				f, err := rc.recvQmux(ctx)
				if err != nil || f.kind != kindTransportParams || f.params != s.ourParams() {
					t.Fatalf("first message %+v, %v", f, err)
				}
				rc.send(unhex(t, v1JSParams))
			}
			for _, m := range c.setup {
				rc.send(unhex(t, m))
			}
			st, err := s.AcceptStream(ctx)
			if err != nil {
				t.Fatal(err)
			}
			want := unhex(t, "20 002c"+setupBody)
			got := make([]byte, len(want))
			if _, err := io.ReadFull(st, got); err != nil || !bytes.Equal(got, want) {
				t.Fatalf("CLIENT_SETUP %x, %v", got, err)
			}
			mustWrite(t, st, unhex(t, serverSetup))
			msg, err := rc.recv(ctx)
			if err != nil || !bytes.Equal(msg, unhex(t, c.wantReply)) {
				t.Fatalf("SERVER_SETUP message %x, %v; want %s", msg, err, c.wantReply)
			}
			// FIN goes out as its own frame when it comes after the data
			// was sent, as JS sends it (V9); on qmux-00 with the offset it
			// ends at (12, the SERVER_SETUP's length), as QUIC does, where
			// JS sends none ("0b 00 00").
			_ = st.Close()
			msg, err = rc.recv(ctx)
			wantFin := map[Framing]string{FramingQmux: "0f 00 0c 00", FramingLegacy: "09 00"}[c.framing]
			if err != nil || !bytes.Equal(msg, unhex(t, wantFin)) {
				t.Fatalf("FIN message %x, %v", msg, err)
			}
		})
	}
}

// TestResetCarriesFinalSize: CancelWrite sends RESET_STREAM with the
// moq-lite code unmapped and, on qmux-00, the bytes sent as final size;
// CancelRead sends STOP_SENDING.
func TestResetCarriesFinalSize(t *testing.T) {
	for _, c := range []struct {
		framing   Framing
		wantReset string
		wantStop  string
	}{
		{FramingQmux, "04 03 4040 05", "05 02 0c"},
		{FramingLegacy, "04 03 4040", "05 02 0c"},
	} {
		t.Run(string(c.framing), func(t *testing.T) {
			ts := newTestServer(t, nil)
			rc := dialRaw(t, ts.url(), string(c.framing))
			s := ts.next(t)
			ctx := testCtx(t)
			if c.framing == FramingQmux {
				if _, err := rc.recv(ctx); err != nil { // our parameters
					t.Fatal(err)
				}
				rc.send(unhex(t, v1JSParams))
			}
			st, err := s.OpenUniStream(ctx)
			if err != nil {
				t.Fatal(err)
			}
			mustWrite(t, st, []byte("hello"))
			if _, err := rc.recv(ctx); err != nil { // the data
				t.Fatal(err)
			}
			st.CancelWrite(64)
			if msg, err := rc.recv(ctx); err != nil || !bytes.Equal(msg, unhex(t, c.wantReset)) {
				t.Fatalf("reset %x, %v; want %s", msg, err, c.wantReset)
			}
			// And STOP_SENDING for a client stream the server stops reading.
			rc.sendFrame(c.framing, frame{kind: kindStream, id: 2, data: []byte("x")})
			rs, err := s.AcceptUniStream(ctx)
			if err != nil {
				t.Fatal(err)
			}
			rs.CancelRead(12)
			if msg, err := rc.recv(ctx); err != nil || !bytes.Equal(msg, unhex(t, c.wantStop)) {
				t.Fatalf("stop %x, %v; want %s", msg, err, c.wantStop)
			}
		})
	}
}
