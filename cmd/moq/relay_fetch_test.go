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

// fetchServer serves f's GET /fetch of track "video" of b.
func fetchServer(t *testing.T, f *fetcher, b *broadcast.Producer) *httptest.Server {
	bc := b.Consume()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f.latest(r, bc, "video", w)
	}))
	t.Cleanup(srv.Close)
	return srv
}

// waitSlots waits up to 3 s for n fetches to be running.
func waitSlots(t *testing.T, f *fetcher, n int) {
	t.Helper()
	for deadline := time.Now().Add(3 * time.Second); f.runs() != n; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%d fetches running after 3 s, want %d", f.runs(), n)
		}
	}
}

// Clients that request a big group and read nothing share the cache's
// frames (no copy each), and the write deadline ends their fetches.
func TestRelayFetchStalledClients(t *testing.T) {
	const groupSize, clients = 16 << 20, 8
	b := broadcast.New(broadcast.Config{})
	tp, _ := b.CreateTrack(broadcast.Track{Name: "video"})
	frames := make([][]byte, 16)
	for i := range frames {
		frames[i] = make([]byte, groupSize/len(frames))
	}
	if err := tp.WriteGroup(0, frames...); err != nil {
		t.Fatal(err)
	}
	f := newFetcher()
	f.writeTimeout = time.Second
	f.perIP = clients
	srv := fetchServer(t, f, b)
	heap0 := testutil.HeapAlloc()
	for range clients {
		c, err := net.Dial("tcp", srv.Listener.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = c.Close() })
		// A small receive buffer, never read: the handler's Write blocks.
		_ = c.(*net.TCPConn).SetReadBuffer(4 << 10)
		fmt.Fprintf(c, "GET /fetch/x/video HTTP/1.1\r\nHost: x\r\n\r\n")
	}
	waitSlots(t, f, clients)
	time.Sleep(300 * time.Millisecond)
	if grew := testutil.HeapAlloc() - heap0; grew > groupSize/2 {
		t.Fatalf("heap +%d MiB for %d stalled fetches of one %d MiB group", grew>>20, clients, groupSize>>20)
	}
	waitSlots(t, f, 0) // the write deadline (1 s) ended them
}

// Fetches over the cap are refused with 503 at once.
func TestRelayFetchCap(t *testing.T) {
	b := broadcast.New(broadcast.Config{})
	_, _ = b.CreateTrack(broadcast.Track{Name: "video"}) // no group: fetches wait
	f := newFetcher()
	f.wait = 2 * time.Second
	f.max = 2
	f.perIP = 3 // all from 127.0.0.1
	srv := fetchServer(t, f, b)
	codes := make(chan int, 2)
	for range 2 {
		go func() {
			resp, err := http.Get(srv.URL + "/fetch/x/video")
			if err != nil {
				codes <- 0
				return
			}
			_ = resp.Body.Close()
			codes <- resp.StatusCode
		}()
	}
	waitSlots(t, f, 2)
	start := time.Now()
	resp, err := http.Get(srv.URL + "/fetch/x/video")
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable || time.Since(start) > time.Second {
		t.Fatalf("fetch over the cap: %s after %v, want 503 at once", resp.Status, time.Since(start))
	}
	for range 2 {
		if c := <-codes; c != http.StatusGatewayTimeout {
			t.Fatalf("waiting fetch: status %d, want 504", c)
		}
	}
	waitSlots(t, f, 0)
}

// One address runs at most perIP fetches (429 beyond), so that it cannot
// take every slot; an IPv6 client's /64 counts as one address.
func TestRelayFetchPerIP(t *testing.T) {
	f := newFetcher()
	f.perIP = 2
	f.max = 4
	var dones []func()
	for _, remote := range []string{"192.0.2.1:1", "192.0.2.1:2", "[2001:db8::1]:1", "[2001:db8::2]:1"} {
		done, status := f.take(remote)
		if done == nil {
			t.Fatalf("%s refused (%d)", remote, status)
		}
		dones = append(dones, done)
	}
	for _, remote := range []string{"192.0.2.1:3", "[2001:db8::3]:1"} {
		if _, status := f.take(remote); status != http.StatusTooManyRequests {
			t.Fatalf("third fetch of %s's address: status %d, want 429", remote, status)
		}
	}
	if _, status := f.take("198.51.100.1:1"); status != http.StatusServiceUnavailable {
		t.Fatalf("fetch over the cap: status %d, want 503", status)
	}
	for _, done := range dones {
		done()
	}
	if f.runs() != 0 || len(f.byIP) != 0 {
		t.Fatalf("%d fetches, %d addresses left", f.runs(), len(f.byIP))
	}
}
