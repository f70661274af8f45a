//go:build linux

package server

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/quic-go/quic-go"
	"golang.org/x/sys/unix"

	"github.com/moqp2p/moqp2p/broadcast"
	"github.com/moqp2p/moqp2p/internal/goodput"
	"github.com/moqp2p/moqp2p/internal/netns"
	"github.com/moqp2p/moqp2p/moq"
	"github.com/moqp2p/moqp2p/transport/rawquic"
	"github.com/moqp2p/moqp2p/transport/websocket"
)

// Row F1 over WebSocket: a Server's ws:// listener in one network namespace,
// a subscribing node's WebSocket client in another, the router between
// them dropping 10 % of the IP packets each way and delaying each by
// 50 ms; raw is plain quic-go between the same namespaces over the same
// router, alternating in the same run. A TCP proxy cannot lose bytes, so
// the loss is the router's, on the packets TCP actually sends (segmented,
// as on the wire). Needs root.
//
// The WebSocket's sockets run BBR by default, which does not back off on
// random loss: the assertion is the 0.9× of the QUIC transports. With a
// loss-based congestion control (Cubic, tcpCCEnv), TCP keeps about half
// of quic-go's goodput here (BENCHMARKS.md, Faults): a lost retransmission
// is often noticed only by a retransmission timeout, which restarts slow
// start, and each lost segment holds back every byte behind it, of every
// group, until its retransmission arrives; the assertion is then a lower
// bound measured with margin (wsFloor). So it is too where the kernel
// does not offer BBR.
func TestGoodputUnderLossWebSocket(t *testing.T) {
	l := goodput.Link()
	link, err := netns.Routed(t, netns.Impairment{Delay: l.Delay, Loss: l.Loss})
	switch {
	case err != nil:
		netns.Unavailable(t, "no network namespaces for the impaired link (as root, it runs): %v", err)
		return
	case link == nil:
		return // the child ran it
	}
	ctx := context.Background()
	inNS := func(ns string, f func()) {
		t.Helper()
		if err := link.In(ns, f); err != nil {
			t.Fatal(err)
		}
	}

	// ours: the server's WebSocket listener in A, the client in B
	pub := newNode(t)
	// The WebSocket's dead-peer detection is on, at its default bound, on
	// both ends: the sending server's pings queue behind its own backlog in
	// the kernel's send buffer, which drains at a few hundred kbit/s here,
	// so their pongs come late; the subscriber's TCP acknowledgements keep
	// it alive (8.5 s into a 15 s stream it was given up before they did).
	// The Server's WebSocket sockets run BBR unless the kernel does not
	// offer it (websocket.Config.CongestionControl); tcpCCEnv picks
	// another, e.g. cubic to measure a loss-based TCP.
	cc := os.Getenv(tcpCCEnv)
	srv := &Server{Moq: pub, Logger: testLogger(), WebSocket: websocket.Config{CongestionControl: cc}}
	want := cmp.Or(cc, websocket.DefaultCongestionControl)
	var tcp *recordingListener
	inNS(link.A, func() {
		if !congestionOffered(want) {
			want = "" // the system's
		}
		var l net.Listener
		if l, err = net.Listen("tcp4", link.AddrA+":0"); err == nil {
			tcp = &recordingListener{Listener: l}
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(nil, tcp) }()
	t.Cleanup(func() {
		_ = srv.Close()
		if err := <-done; !errors.Is(err, ErrServerClosed) {
			t.Errorf("Serve returned %v", err)
		}
	})
	hc := &http.Client{Transport: &http.Transport{
		DialContext: func(ctx context.Context, network, addr string) (c net.Conn, err error) {
			var d net.Dialer
			if err := link.In(link.B, func() { c, err = d.DialContext(ctx, "tcp4", addr) }); err != nil {
				return nil, err
			}
			return c, err
		},
	}}
	t.Cleanup(hc.CloseIdleConnections)
	sub := newNode(t)
	url := "ws://" + tcp.Addr().String() + "/"
	run := 0
	ran := "" // the congestion control of the server's last socket
	ours := func(d time.Duration) (int64, error) {
		run++
		name := fmt.Sprintf("f1-%d", run)
		m := publish(t, pub, name)
		// A fresh session's setup (upgrade, SETUP, announcement) crosses
		// the lossy link before any media: CI once saw one given up by the
		// subscriber's dead-peer detection there (not reproduced in 20 runs
		// since). One such setup is retried, on a new connection; a second
		// fails the test. Once the stream runs, a lost session fails it.
		var s *moq.Session
		var tc *broadcast.TrackConsumer
		for attempt := 1; ; attempt++ {
			c, err := websocket.Dial(ctx, url, &websocket.Config{Logger: testLogger(), HTTPClient: hc})
			if err != nil {
				return 0, err
			}
			if s, err = sub.Open(ctx, c); err == nil {
				if tc, err = s.Subscribe(testCtx(t), name, "video"); err != nil {
					s.Close(0, "")
				}
			}
			if err == nil {
				break
			}
			if attempt == 2 {
				return 0, err
			}
			t.Logf("%s: the session was lost while it was set up; once more: %v", name, err)
		}
		defer s.Close(0, "")
		defer tc.Close()
		start := time.Now()
		ended := make(chan time.Duration, 1)
		stop := context.AfterFunc(s.Context(), func() { ended <- time.Since(start) })
		defer stop()
		n := goodput.Stream(ctx, d, m.track, tc)
		ran = tcp.lastCongestion()
		if want != "" && ran != want {
			return n, fmt.Errorf("the server's socket ran %q, want %q", ran, want)
		}
		select {
		case at := <-ended:
			return n, fmt.Errorf("the session ended %v into the stream: %v", at.Round(time.Millisecond), s.Err())
		default:
		}
		return n, nil
	}

	// raw: a quic-go listener in A, a fresh client socket in B each time
	stls, err := goodput.RawServerTLS()
	if err != nil {
		t.Fatal(err)
	}
	var ln *quic.Listener
	inNS(link.A, func() {
		var pc net.PacketConn
		if pc, err = net.ListenPacket("udp4", link.AddrA+":0"); err != nil {
			return
		}
		tr := &quic.Transport{Conn: pc}
		t.Cleanup(func() { _ = tr.Close(); _ = pc.Close() })
		ln, err = tr.Listen(stls, rawquic.Config())
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ln.Close() })
	raw := func(d time.Duration) (int64, error) {
		var pc net.PacketConn
		inNS(link.B, func() { pc, err = net.ListenPacket("udp4", link.AddrB+":0") })
		if err != nil {
			return 0, err
		}
		tr := &quic.Transport{Conn: pc}
		defer pc.Close()
		defer tr.Close()
		cc, err := tr.Dial(ctx, ln.Addr(), goodput.RawClientTLS(), rawquic.Config())
		if err != nil {
			return 0, err
		}
		defer cc.CloseWithError(0, "")
		sc, err := ln.Accept(ctx)
		if err != nil {
			return 0, err
		}
		defer sc.CloseWithError(0, "")
		return goodput.RawConns(ctx, d, cc, sc), nil
	}

	floor := wsFloor
	if want == "bbr" {
		floor = goodput.Floor
	}
	ratio := goodput.Compare(t, floor, ours, raw)
	passed, dropped := link.Counts()
	t.Logf("WebSocket (TCP congestion control %s) kept %.2f× raw quic-go (floor %.2f×); the router dropped %d of %d packets (%.1f %%)",
		ran, ratio, floor, dropped, passed+dropped, 100*float64(dropped)/float64(max(passed+dropped, 1)))
}

// tcpCCEnv names the congestion control of the server's TCP side (the
// sender's) when set; unset, the Server's default, BBR, which does not back
// off on random loss: then the test asks for goodput.Floor. With a
// loss-based one (cubic, Linux's stock default, like quic-go's) it asks
// for wsFloor.
const tcpCCEnv = "MOQP2P_F1_TCP_CC"

// wsFloor is WebSocket's lower bound against raw quic-go under F1's loss
// with Cubic on both sides: 10 s rounds measured 0.35–0.55× (5 s halves
// down to 0.20×), 60 s 0.49×; under it, Compare's second round decides on
// both rounds' bytes.
const wsFloor = 0.2

// congestionOffered reports whether this process can set name on a TCP
// socket (a privileged one loads the algorithm's module if it must).
func congestionOffered(name string) bool {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM, 0)
	if err != nil {
		return false
	}
	defer unix.Close(fd)
	return unix.SetsockoptString(fd, unix.IPPROTO_TCP, unix.TCP_CONGESTION, name) == nil
}

// recordingListener keeps the last connection it accepted, to read the
// congestion control the Server set on it.
type recordingListener struct {
	net.Listener
	mu   sync.Mutex
	last *net.TCPConn
}

func (l *recordingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if tc, ok := c.(*net.TCPConn); ok {
		l.mu.Lock()
		l.last = tc
		l.mu.Unlock()
	}
	return c, err
}

// lastCongestion is the congestion control of the last connection
// accepted, or "" if unknown.
func (l *recordingListener) lastCongestion() string {
	l.mu.Lock()
	tc := l.last
	l.mu.Unlock()
	if tc == nil {
		return ""
	}
	raw, err := tc.SyscallConn()
	if err != nil {
		return ""
	}
	var name string
	_ = raw.Control(func(fd uintptr) {
		name, _ = unix.GetsockoptString(int(fd), unix.IPPROTO_TCP, unix.TCP_CONGESTION)
	})
	return name
}
