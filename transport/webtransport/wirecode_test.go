package webtransport

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"strings"
	"sync"
	"testing"

	"github.com/quic-go/quic-go"
	"github.com/quic-go/quic-go/qlog"
	"github.com/quic-go/quic-go/qlogwriter"

	"github.com/moqp2p/moqp2p/transport"
)

// qlogBuffer collects a connection's qlog; done is closed once the trace
// has been written out completely (the connection is gone).
type qlogBuffer struct {
	mu   sync.Mutex
	buf  bytes.Buffer
	done chan struct{}
}

func (b *qlogBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *qlogBuffer) Close() error { close(b.done); return nil }

// The codes on the wire are the moq-lite codes mapped into the HTTP/3 space
// exactly as transport.ToWebTransportCode (and moq-dev's Rust) maps them:
// webtransport-go does the mapping, so the adapter must not map again.
func TestWireCodesAreWebTransportMapped(t *testing.T) {
	f := newServer(t, Config{})
	trace := &qlogBuffer{done: make(chan struct{})}
	qc := QUICConfig()
	qc.Tracer = func(_ context.Context, isClient bool, id quic.ConnectionID) qlogwriter.Trace {
		fs := qlogwriter.NewConnectionFileSeq(trace, isClient, id, []string{qlog.EventSchema})
		go fs.Run()
		return fs
	}
	d := f.dialer(t)
	d.QUICConfig = qc
	client, err := d.Dial(testCtx(t), f.url("/codes"))
	if err != nil {
		t.Fatal(err)
	}
	server, _ := f.accept(t)
	ctx := testCtx(t)

	const resetCode, stopCode = 64 + 31, 13
	s, err := client.OpenUniStream(ctx)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = s.Write([]byte("x"))
	s.CancelWrite(resetCode)
	bs, err := client.OpenStream(ctx)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = bs.Write([]byte("x"))
	bs.CancelRead(stopCode)
	rs, err := server.AcceptUniStream(ctx)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.ReadAll(rs)
	if _, err := server.AcceptStream(ctx); err != nil {
		t.Fatal(err)
	}
	_ = client.CloseWithError(0, "")
	select {
	case <-trace.done:
	case <-ctx.Done():
		t.Fatal("client connection never finished its trace")
	}
	trace.mu.Lock()
	log := trace.buf.String()
	trace.mu.Unlock()
	// webtransport-go resets with RESET_STREAM_AT, keeping the stream
	// header reliable.
	for _, want := range []struct {
		frame string
		code  uint32
	}{{"reset_stream_at", resetCode}, {"stop_sending", stopCode}} {
		frame := fmt.Sprintf(`"frame_type":%q,"stream_id":`, want.frame)
		code := fmt.Sprintf(`,"error_code":%d`, transport.ToWebTransportCode(want.code))
		if !strings.Contains(log, frame) || !strings.Contains(log, code) {
			t.Errorf("moq-lite code %d: no %s frame with %s in the client's qlog", want.code, want.frame, code)
		}
	}
}
