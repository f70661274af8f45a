package server

import (
	"errors"
	"net"
	"os"
	"testing"
	"time"

	"github.com/moqp2p/moqp2p/internal/testutil"
)

// Audit probe: TCP clients that send part of an HTTP request and stall
// are held by the Server's HTTP side for as long as they stay (no
// ReadHeaderTimeout, no limit per IP before the WebSocket upgrade).
func TestAuditServerHTTPSlowloris(t *testing.T) {
	n := newNode(t)
	srv := serve(t, n, nil)
	before := testutil.Goroutines("net/http.(*conn).serve", false)
	const conns = 300
	var cs []net.Conn
	defer func() {
		for _, c := range cs {
			_ = c.Close()
		}
	}()
	for range conns {
		c, err := net.Dial("tcp", srv.TCPAddr().String())
		if err != nil {
			t.Fatal(err)
		}
		cs = append(cs, c)
		if _, err := c.Write([]byte("GET /anything HTTP/1.1\r\nHost: x\r\n")); err != nil {
			t.Fatal(err)
		}
	}
	time.Sleep(15 * time.Second)
	open := 0
	for _, c := range cs {
		_ = c.SetReadDeadline(time.Now().Add(10 * time.Millisecond))
		var b [1]byte
		_, err := c.Read(b[:])
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() || errors.Is(err, os.ErrDeadlineExceeded) {
			open++
		}
	}
	held := testutil.Goroutines("net/http.(*conn).serve", false) - before
	t.Logf("after 15 s: %d of %d stalled connections still open, %d http conn goroutines", open, conns, held)
	if open > conns/2 {
		t.Fatalf("%d stalled half-request connections held for 15 s", open)
	}
}
