package main

import (
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/moqp2p/moqp2p/broadcast"
	"github.com/moqp2p/moqp2p/internal/testutil"
)

// Audit probe: the relay's GET /fetch copies the whole latest group into
// one buffer per request before writing it; clients that do not read hold
// that copy each, with no bound on concurrent requests.
func TestAuditRelayFetchCopiesPerRequest(t *testing.T) {
	const groupSize, clients = 4 << 20, 20
	b := broadcast.New(broadcast.Config{})
	tp, _ := b.CreateTrack(broadcast.Track{Name: "video"})
	frames := make([][]byte, 16)
	for i := range frames {
		frames[i] = make([]byte, groupSize/len(frames))
	}
	if err := tp.WriteGroup(0, frames...); err != nil {
		t.Fatal(err)
	}
	bc := b.Consume()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fetchLatest(r.Context(), bc, "video", w)
	}))
	defer srv.Close()
	heap0 := testutil.HeapAlloc()
	var cs []net.Conn
	for range clients {
		c, err := net.Dial("tcp", srv.Listener.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		cs = append(cs, c)
		// A small receive buffer, never read: the handler's Write blocks.
		_ = c.(*net.TCPConn).SetReadBuffer(4 << 10)
		fmt.Fprintf(c, "GET /fetch/x/video HTTP/1.1\r\nHost: x\r\n\r\n")
	}
	time.Sleep(7 * time.Second) // past fetchLatest's own 5 s deadline
	grew := testutil.HeapAlloc() - heap0
	for _, c := range cs {
		_ = c.Close()
	}
	t.Logf("%d stalled /fetch clients of one %d MiB group: heap +%d MiB", clients, groupSize>>20, grew>>20)
	if grew > 2*groupSize {
		t.Fatalf("heap +%d MiB for %d requests of one %d MiB group (a copy each)", grew>>20, clients, groupSize>>20)
	}
}
