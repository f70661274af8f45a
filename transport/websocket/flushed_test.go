package websocket

import (
	"bytes"
	"context"
	"errors"
	"testing"

	"github.com/moqp2p/moqp2p/transport"
)

func flushedOf(t *testing.T, st transport.SendStream) <-chan struct{} {
	t.Helper()
	f, ok := st.(interface{ Flushed() <-chan struct{} })
	if !ok {
		t.Fatalf("%T has no Flushed", st)
	}
	return f.Flushed()
}

func isClosed(ch <-chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

// TestFlushed: a stream's Flushed channel closes once its FIN is written,
// not while the FIN waits behind data the peer's credit holds back; a
// reset or the connection's end settles it as well. Ping returns once the
// peer answered, and fails once the connection is gone.
func TestFlushed(t *testing.T) {
	ctx := testCtx(t)
	const window = 4 << 10
	scfg := &Config{Framings: []Framing{FramingQmux}, StreamWindow: window}
	ccfg := &Config{Framings: []Framing{FramingQmux}}
	c, s := dialPair(t, scfg, ccfg)

	// Twice the server's stream credit: the FIN cannot go until it reads.
	st, err := c.OpenUniStream(ctx)
	if err != nil {
		t.Fatal(err)
	}
	data := bytes.Repeat([]byte{7}, 2*window)
	mustWrite(t, st, data)
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	flushed := flushedOf(t, st)
	rs, err := s.AcceptUniStream(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// The server has granted no more than window bytes until it reads, so
	// the FIN (after 2*window bytes) is still queued.
	buf := make([]byte, 1)
	if _, err := rs.Read(buf); err != nil {
		t.Fatal(err)
	}
	if isClosed(flushed) {
		t.Fatal("Flushed closed while the FIN was held back by flow control")
	}
	if got := mustReadAll(t, rs); len(got) != len(data)-1 {
		t.Fatalf("read %d bytes, want %d", len(got), len(data)-1)
	}
	select {
	case <-flushed:
	case <-ctx.Done():
		t.Fatal("Flushed not closed after the peer read the FIN")
	}

	// A reset settles it at once.
	st2, err := c.OpenUniStream(ctx)
	if err != nil {
		t.Fatal(err)
	}
	mustWrite(t, st2, data)
	fl2 := flushedOf(t, st2)
	st2.CancelWrite(5)
	if !isClosed(fl2) {
		t.Fatal("Flushed not closed by CancelWrite")
	}

	if err := c.Ping(ctx); err != nil {
		t.Fatalf("Ping: %v", err)
	}
	pinger, ok := st.(interface{ Ping(context.Context) error })
	if !ok {
		t.Fatal("stream has no Ping")
	}
	if err := pinger.Ping(ctx); err != nil {
		t.Fatalf("stream Ping: %v", err)
	}

	// The connection's end settles a stream whose FIN is still queued.
	st3, err := c.OpenUniStream(ctx)
	if err != nil {
		t.Fatal(err)
	}
	mustWrite(t, st3, data)
	_ = st3.Close()
	fl3 := flushedOf(t, st3)
	if _, err := s.AcceptUniStream(ctx); err != nil {
		t.Fatal(err)
	}
	if isClosed(fl3) {
		t.Fatal("Flushed closed while the FIN was held back by flow control")
	}
	_ = c.CloseWithError(0, "done")
	select {
	case <-fl3:
	case <-ctx.Done():
		t.Fatal("Flushed not closed by the connection's end")
	}
	if err := c.Ping(ctx); err == nil || errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Ping after close: %v, want the connection's end", err)
	}
}
