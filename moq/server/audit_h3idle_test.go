package server

import (
	"crypto/tls"
	"runtime"
	"testing"
	"time"

	"github.com/quic-go/quic-go"

	"github.com/moqp2p/moqp2p/internal/testutil"
)

// Audit probe: QUIC clients that negotiate h3 and then never send a
// request (only keep-alive PINGs) are held by the Server for as long as
// they stay: no bound per source IP and no request deadline before the
// WebTransport CONNECT.
func TestAuditServerIdleH3Conns(t *testing.T) {
	n := newNode(t)
	srv := serve(t, n, nil)
	const conns = 200
	g0 := runtime.NumGoroutine()
	heap0 := testutil.HeapAlloc()
	tc := &tls.Config{InsecureSkipVerify: true, NextProtos: []string{"h3"}}
	qc := &quic.Config{KeepAlivePeriod: 500 * time.Millisecond, MaxIdleTimeout: 30 * time.Second}
	var cs []*quic.Conn
	defer func() {
		for _, c := range cs {
			_ = c.CloseWithError(0, "")
		}
	}()
	for range conns {
		c, err := quic.DialAddr(testCtx(t), srv.UDPAddr().String(), tc, qc)
		if err != nil {
			t.Fatal(err)
		}
		cs = append(cs, c)
	}
	time.Sleep(12 * time.Second)
	alive := 0
	for _, c := range cs {
		if c.Context().Err() == nil {
			alive++
		}
	}
	// Both ends are in this process: the figures include the clients'.
	t.Logf("after 12 s: %d of %d request-less h3 connections alive; goroutines +%d, heap +%d KiB (both ends)",
		alive, conns, runtime.NumGoroutine()-g0, (testutil.HeapAlloc()-heap0)>>10)
	if alive > conns/2 {
		t.Fatalf("%d idle h3 connections held 12 s", alive)
	}
}
