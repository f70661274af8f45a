//go:build linux

package websocket

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/moqp2p/moqp2p/internal/keepalive"
	"github.com/moqp2p/moqp2p/internal/netns"
	"github.com/moqp2p/moqp2p/internal/testutil"
)

// A peer that only receives, behind a lossy and delayed link, while we
// send far more than the link carries: our pings queue behind our own
// backlog in the kernel's send buffer. Here the peer answers no ping at
// all (a raw TCP reader past the upgrade), so only its TCP
// acknowledgements say it is alive; the connection outlasts the bound
// several times over. Then the link is cut (every packet dropped, in the
// router, not by a proxy that would acknowledge for the peer): the peer
// acknowledges nothing and is given up within the bound, backlog or not.
// Needs root.
func TestAckingPeerIsAlive(t *testing.T) {
	const (
		delay = 50 * time.Millisecond
		loss  = 0.1
		bound = time.Second
	)
	link, err := netns.Routed(t, netns.Impairment{Delay: delay, Loss: loss})
	switch {
	case err != nil:
		netns.Unavailable(t, "no network namespaces for the impaired link (as root, it runs): %v", err)
		return
	case link == nil:
		return // the child ran it
	}
	var ln net.Listener
	if ierr := link.In(link.A, func() { ln, err = net.Listen("tcp4", link.AddrA+":0") }); ierr != nil {
		t.Fatal(ierr)
	}
	if err != nil {
		t.Fatal(err)
	}
	accepted := make(chan *Conn, 1)
	hs := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := Accept(w, r, &Config{Framings: []Framing{FramingLegacy}, DeadPeerTimeout: bound, Logger: testutil.Logger()})
		if err != nil {
			t.Errorf("accept: %v", err)
			return
		}
		accepted <- c
	})}
	served := make(chan struct{})
	go func() { defer close(served); _ = hs.Serve(ln) }()
	defer func() { _ = hs.Close(); <-served }()

	// The peer: a WebSocket handshake by hand, then read and discard
	// everything, never writing (no pong).
	var pc net.Conn
	if ierr := link.In(link.B, func() { pc, err = net.Dial("tcp4", ln.Addr().String()) }); ierr != nil {
		t.Fatal(ierr)
	}
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	fmt.Fprintf(pc, "GET /moq HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"+
		"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: %s\r\n\r\n",
		ln.Addr(), FramingLegacy)
	br := bufio.NewReader(pc)
	resp, err := http.ReadResponse(br, nil)
	if err != nil || resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("upgrade: %v %v", resp, err)
	}
	read := make(chan int64, 1)
	go func() { n, _ := io.Copy(io.Discard, br); read <- n }()

	var s *Conn
	select {
	case s = <-accepted:
	case <-testCtx(t).Done():
		t.Fatal("no connection accepted")
	}
	defer s.CloseWithError(0, "")
	if s.tcp == nil || peerAcks(s.tcp) == nil {
		t.Fatal("the accepted Conn cannot read its TCP connection's state")
	}
	sent := make(chan error, 1)
	go func() {
		st, err := s.OpenUniStream(testCtx(t))
		if err != nil {
			sent <- err
			return
		}
		buf := make([]byte, 16<<10)
		for {
			if _, err := st.Write(buf); err != nil {
				sent <- err
				return
			}
		}
	}()

	live := 5 * bound
	select {
	case <-s.Context().Done():
		t.Fatalf("a peer acknowledging our data given up after less than %v: %v (sent %d bytes)", live, context.Cause(s.Context()), s.Stats().BytesSent)
	case <-time.After(live):
	}
	st := s.Stats()
	t.Logf("alive after %v: %d bytes sent, %d received; the link dropped %d of its packets", live, st.BytesSent, st.BytesReceived, func() uint64 { _, d := link.Counts(); return d }())
	if st.BytesReceived != 0 {
		t.Fatalf("the peer sent %d bytes, want none", st.BytesReceived)
	}

	link.SetImpairment(netns.Impairment{Delay: delay, Loss: 1})
	cut := time.Now()
	err = waitDone(t, s)
	d := time.Since(cut)
	if !errors.Is(err, ErrConnLost) || !errors.Is(err, keepalive.ErrTimeout) {
		t.Fatalf("cause %v, want ErrConnLost and the keep-alive timeout", err)
	}
	if d > bound+time.Second {
		t.Errorf("the partitioned peer was given up after %v, bound %v", d, bound)
	}
	t.Logf("the partitioned peer was given up after %v (bound %v)", d, bound)
	_ = pc.Close()
	<-read
	if err := <-sent; err == nil {
		t.Error("the sender's write returned no error")
	}
}

// Both ends find the TCP connection under the WebSocket, through TLS too:
// Accept from the hijacked connection, Dial from the HTTP client's.
func TestTCPConnFound(t *testing.T) {
	for _, tlsOn := range []bool{false, true} {
		t.Run(fmt.Sprintf("tls=%v", tlsOn), func(t *testing.T) {
			conns := make(chan *Conn, 1)
			ts := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				c, err := Accept(w, r, &Config{Logger: testutil.Logger()})
				if err != nil {
					t.Errorf("accept: %v", err)
					return
				}
				conns <- c
			}))
			url := "ws://"
			if tlsOn {
				ts.StartTLS()
				url = "wss://"
			} else {
				ts.Start()
			}
			defer ts.Close()
			client, err := Dial(testCtx(t), url+ts.Listener.Addr().String()+"/moq", &Config{HTTPClient: ts.Client(), Logger: testutil.Logger()})
			if err != nil {
				t.Fatal(err)
			}
			defer client.CloseWithError(0, "")
			server := <-conns
			defer server.CloseWithError(0, "")
			for name, c := range map[string]*Conn{"client": client, "server": server} {
				if c.tcp == nil || peerAcks(c.tcp) == nil {
					t.Errorf("%s: no TCP state under the WebSocket", name)
				}
			}
		})
	}
}
