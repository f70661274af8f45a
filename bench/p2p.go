package main

import (
	"context"
	"crypto/tls"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"
	manet "github.com/multiformats/go-multiaddr/net"

	"github.com/moqp2p/moqp2p/moq"
	"github.com/moqp2p/moqp2p/session"
	"github.com/moqp2p/moqp2p/transport"
	"github.com/moqp2p/moqp2p/transport/p2pquic"
	"github.com/moqp2p/moqp2p/transport/rawquic"
)

// node is a libp2p QUIC host running moqp2p, as applications build it
// (moq.NewHost, p2pquic). p2pquic needs the host to listen on 0.0.0.0;
// the host advertises, and so is dialed on, loopback only.
type node struct {
	*moq.Moq
	h host.Host
}

func loopbackOnly(addrs []ma.Multiaddr) []ma.Multiaddr {
	var out []ma.Multiaddr
	for _, a := range addrs {
		if manet.IsIPLoopback(a) {
			out = append(out, a)
		}
	}
	return out
}

// newHost is a libp2p QUIC host with p2pquic, as moq.NewHost sets it up
// (on /ip4/0.0.0.0/udp/0/quic-v1).
func newHost() (host.Host, *p2pquic.Transport, error) {
	q := p2pquic.New(p2pquic.Config{Logger: quietLogger()})
	h, err := moq.NewHost(moq.HostConfig{QUIC: q, AddrsFactory: loopbackOnly})
	return h, q, err
}

func newNode() (*node, error) { return newNodeWith() }

func (n *node) close() {
	_ = n.Shutdown(context.Background())
	_ = n.h.Close()
}

func (n *node) info() peer.AddrInfo { return peer.AddrInfo{ID: n.h.ID(), Addrs: n.h.Addrs()} }

// heapInUse is the live heap after two collections.
func heapInUse() int64 {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return int64(m.HeapAlloc)
}

// heapProfile writes an in-use heap profile to the profile directory, if
// one was given.
func heapProfile(name string) {
	if profDir == "" {
		return
	}
	runtime.GC()
	if f, err := os.Create(filepath.Join(profDir, name)); err == nil {
		_ = pprof.Lookup("heap").WriteTo(f, 0)
		_ = f.Close()
	}
}

// allocProfile writes the allocations so far to the profile directory, if
// one was given; two of them diffed (pprof -base) show a stretch's.
func allocProfile(name string) {
	if profDir == "" {
		return
	}
	runtime.GC() // the profile is as of the last collection: make that now
	if f, err := os.Create(filepath.Join(profDir, name)); err == nil {
		_ = pprof.Lookup("allocs").WriteTo(f, 0)
		_ = f.Close()
	}
}

// goroutineProfile writes a goroutine dump (debug=1) to the profile
// directory, if one was given.
func goroutineProfile(name string) {
	if profDir == "" {
		return
	}
	if f, err := os.Create(filepath.Join(profDir, name)); err == nil {
		_ = pprof.Lookup("goroutine").WriteTo(f, 1)
		_ = f.Close()
	}
}

// quiesce waits until what an earlier run closed has wound down (its
// goroutines gone), so that it is not freed during the next measurement.
func quiesce() {
	prev := -1
	for deadline := time.Now().Add(3 * time.Second); time.Now().Before(deadline); {
		n := runtime.NumGoroutine()
		if n == prev {
			break
		}
		prev = n
		time.Sleep(150 * time.Millisecond)
	}
	runtime.GC()
}

// idleResult is one P5 run: bytes of heap and goroutines per session, both
// ends together. Stacks are left out of the bytes: the runtime keeps the
// stacks of ended goroutines for reuse, so StackInuse differences between
// runs in one process are not a measure of anything.
type idleResult struct{ heap, goroutines float64 }

// settle lets both ends of fresh sessions reach idle (accept loops parked,
// control streams open), then measures.
func settle(before int64, g0, n int) idleResult {
	time.Sleep(200 * time.Millisecond)
	after := heapInUse()
	return idleResult{
		heap:       float64(after-before) / float64(n),
		goroutines: float64(runtime.NumGoroutine()-g0) / float64(n),
	}
}

// idleMoq opens n moq sessions from n client hosts to one server host, the
// hosts already connected by libp2p, and measures what the sessions add.
func idleMoq(ctx context.Context, n int) (idleResult, error) {
	server, err := newNode()
	if err != nil {
		return idleResult{}, err
	}
	defer server.close()
	clients := make([]*node, 0, n)
	defer func() {
		for _, c := range clients {
			c.close()
		}
	}()
	for range n {
		c, err := newNode()
		if err != nil {
			return idleResult{}, err
		}
		clients = append(clients, c)
		if err := c.h.Connect(ctx, server.info()); err != nil {
			return idleResult{}, err
		}
	}
	time.Sleep(200 * time.Millisecond) // identify and the like settle first
	g0 := runtime.NumGoroutine()
	before := heapInUse()
	heapProfile("p5-moq-before.heap")
	goroutineProfile("p5-moq-before.goroutines")
	for _, c := range clients {
		if _, err := c.Connect(ctx, peer.AddrInfo{ID: server.h.ID()}); err != nil {
			return idleResult{}, err
		}
	}
	r := settle(before, g0, n)
	heapProfile("p5-moq-after.heap")
	goroutineProfile("p5-moq-after.goroutines")
	return r, nil
}

// idleP2PConns opens n bare p2pquic connections (the QUIC connection that
// moq.Connect runs on: libp2p TLS identity, resource scope, the host's
// socket) from n client hosts to one server host, no session on them.
func idleP2PConns(ctx context.Context, n int) (idleResult, error) {
	type host2 struct {
		h host.Host
		q *p2pquic.Transport
	}
	open := func() (host2, error) {
		h, q, err := newHost()
		if err != nil {
			return host2{}, err
		}
		if err := q.Listen(h); err != nil {
			_ = h.Close()
			return host2{}, err
		}
		return host2{h, q}, nil
	}
	closeHost := func(x host2) {
		_ = x.q.Close()
		_ = x.h.Close()
	}
	server, err := open()
	if err != nil {
		return idleResult{}, err
	}
	defer closeHost(server)
	var hosts []host2
	defer func() {
		for _, c := range hosts {
			closeHost(c)
		}
	}()
	saddr := server.h.Addrs()
	for range n {
		c, err := open()
		if err != nil {
			return idleResult{}, err
		}
		hosts = append(hosts, c)
		if err := c.h.Connect(ctx, peer.AddrInfo{ID: server.h.ID(), Addrs: saddr}); err != nil {
			return idleResult{}, err
		}
	}
	time.Sleep(200 * time.Millisecond) // identify and the like settle first
	g0 := runtime.NumGoroutine()
	before := heapInUse()
	var conns []transport.Conn
	defer func() {
		for _, c := range conns {
			_ = c.CloseWithError(0, "")
		}
	}()
	for _, c := range hosts {
		cc, err := c.q.Dial(ctx, server.h.ID(), saddr[0])
		if err != nil {
			return idleResult{}, err
		}
		sc, err := server.q.Accept(ctx)
		if err != nil {
			return idleResult{}, err
		}
		conns = append(conns, cc, sc)
	}
	r := settle(before, g0, n)
	heapProfile("p5-p2pquic-after.heap")
	runtime.KeepAlive(conns)
	return r, nil
}

// rawEndpoints returns a listening and a dialing rawquic endpoint on
// loopback and the client TLS config.
func rawEndpoints() (srv, cli *rawquic.Endpoint, tc *tls.Config, err error) {
	stc, err := serverTLS()
	if err != nil {
		return nil, nil, nil, err
	}
	if srv, err = rawquic.Listen("127.0.0.1:0", stc, nil); err != nil {
		return nil, nil, nil, err
	}
	if cli, err = rawquic.NewEndpoint("127.0.0.1:0", nil); err != nil {
		_ = srv.Close()
		return nil, nil, nil, err
	}
	return srv, cli, &tls.Config{InsecureSkipVerify: true}, nil
}

// idleConns opens n connections between two rawquic endpoints; with
// sessions, it runs a moq-lite session on both ends of each.
func idleConns(ctx context.Context, n int, sessions bool) (idleResult, error) {
	srv, cli, tc, err := rawEndpoints()
	if err != nil {
		return idleResult{}, err
	}
	defer srv.Close()
	defer cli.Close()
	g0 := runtime.NumGoroutine()
	before := heapInUse()
	var conns []transport.Conn
	var ss []*session.Session
	defer func() {
		for _, s := range ss {
			_ = s.Close(0, "")
		}
		for _, c := range conns {
			_ = c.CloseWithError(0, "")
		}
	}()
	for range n {
		c, err := cli.Dial(ctx, srv.Addr().String(), tc)
		if err != nil {
			return idleResult{}, err
		}
		s, err := srv.Accept(ctx)
		if err != nil {
			return idleResult{}, err
		}
		conns = append(conns, c, s)
		if sessions {
			a, err := session.New(s, session.Config{Logger: quietLogger()})
			if err != nil {
				return idleResult{}, err
			}
			b, err := session.New(c, session.Config{Client: true, Logger: quietLogger()})
			if err != nil {
				return idleResult{}, err
			}
			ss = append(ss, a, b)
		}
	}
	r := settle(before, g0, n)
	if sessions {
		heapProfile("p5-session-after.heap")
		goroutineProfile("p5-session-after.goroutines")
	} else {
		heapProfile("p5-raw-after.heap")
	}
	runtime.KeepAlive(conns)
	return r, nil
}

// runIdle is P5.
func runIdle(ctx context.Context, cfg config) []*line {
	n := cfg.p5Sessions
	logf("P5: %d idle sessions per run", n)
	var heap, gor [4]sample // moq, session, raw, raw p2pquic
	for run := range cfg.runs {
		for i, do := range []func() (idleResult, error){
			func() (idleResult, error) { return idleMoq(ctx, n) },
			func() (idleResult, error) { return idleConns(ctx, n, true) },
			func() (idleResult, error) { return idleConns(ctx, n, false) },
			func() (idleResult, error) { return idleP2PConns(ctx, n) },
		} {
			if stack := min(i/2, 1); skip(stack) { // 0, 1: ours; 2, 3: raw
				continue
			}
			quiesce()
			r, err := do()
			name := []string{"moq", "session", "raw", "p2pquic"}[i]
			if err != nil {
				logf("P5 %s run %d: %v", name, run+1, err)
				continue
			}
			logf("P5 %-7s run %d: %.1f KB heap, %.1f goroutines per session (both ends)", name, run+1, r.heap/1e3, r.goroutines)
			heap[i] = append(heap[i], r.heap/1e3)
			gor[i] = append(gor[i], r.goroutines)
		}
	}
	note := fmt.Sprintf("live heap after GC, both ends, %d sessions", n)
	return []*line{
		{Row: "P5", Metric: "KB per idle session: session.New on rawquic", Note: note, Ours: heap[1], Raw: heap[2], Target: "≤ 1.25× raw", Check: atMost((*line).vsRaw, 1.25)},
		{Row: "P5", Metric: "KB per idle session: moq.Connect between libp2p hosts", Ours: heap[0], Raw: heap[2], Target: "≤ 1.25× raw", Check: atMost((*line).vsRaw, 1.25)},
		{Row: "P5", Metric: "KB per idle session: moq.Connect next to a bare p2pquic connection", Note: "the QUIC connection moq.Connect runs on, with libp2p's TLS identity; raw column: that connection", Ours: heap[0], Raw: heap[3]},
		{Row: "P5", Metric: "goroutines per idle session: session.New", Note: "each also holds a stack (2–8 KB), not in the heap figure", Ours: gor[1], Raw: gor[2]},
		{Row: "P5", Metric: "goroutines per idle session: moq.Connect", Ours: gor[0], Raw: gor[2], Target: "≤ 6", Check: atMost(ours, 6)},
	}
}

// ours is a line's own figures, for targets on absolute values.
func ours(l *line) sample { return l.Ours }

// runConnect is P7: c.Connect called concurrently to one peer; the acceptor
// must hold exactly one session. One raw quic-go handshake is timed for
// scale.
func runConnect(ctx context.Context, cfg config) []*line {
	n := cfg.p7Connects
	logf("P7: %d concurrent Connect calls", n)
	var ms, hs, raw sample
	for run := range cfg.runs {
		d, h, err := connectOnce(ctx, n)
		if err != nil {
			logf("P7 run %d: %v", run+1, err)
		} else {
			ms, hs = append(ms, float64(d)/float64(time.Millisecond)), append(hs, float64(h))
			logf("P7 run %d: %d calls returned in %.1f ms, %d session(s) at the acceptor", run+1, n, ms[len(ms)-1], h)
		}
		d, err = rawHandshake(ctx)
		if err != nil {
			logf("P7 raw run %d: %v", run+1, err)
			continue
		}
		raw = append(raw, float64(d)/float64(time.Millisecond))
	}
	return []*line{
		{Row: "P7", Metric: fmt.Sprintf("time for %d concurrent Connect, ms", n), Note: "raw: one quic-go handshake", Ours: ms, Raw: raw, Target: "≤ 3× raw", Check: atMost((*line).vsRaw, 3)},
		{Row: "P7", Metric: "handshakes (sessions at the acceptor)", Ours: hs, Target: "1", Check: func(l *line) any {
			if len(l.Ours) == 0 {
				return nil
			}
			for _, v := range l.Ours {
				if v != 1 {
					return false
				}
			}
			return true
		}},
	}
}

func connectOnce(ctx context.Context, n int) (time.Duration, int, error) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	a, err := newNode()
	if err != nil {
		return 0, 0, err
	}
	defer a.close()
	c, err := newNode()
	if err != nil {
		return 0, 0, err
	}
	defer c.close()
	info := a.info()
	var wg sync.WaitGroup
	var mu sync.Mutex
	var first error
	start := time.Now()
	for range n {
		wg.Go(func() {
			if _, err := c.Connect(ctx, info); err != nil {
				mu.Lock()
				if first == nil {
					first = err
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	d := time.Since(start)
	if first != nil {
		return 0, 0, first
	}
	// The acceptor registers its side asynchronously: let it settle, then count.
	var list []*moq.Session
	for deadline := time.Now().Add(2 * time.Second); len(list) == 0 && time.Now().Before(deadline); {
		time.Sleep(5 * time.Millisecond)
		list, _ = a.Sessions(ctx)
	}
	time.Sleep(50 * time.Millisecond)
	list, err = a.Sessions(ctx)
	return d, len(list), err
}

// rawHandshake times one rawquic dial and accept on loopback.
func rawHandshake(ctx context.Context) (time.Duration, error) {
	srv, cli, tc, err := rawEndpoints()
	if err != nil {
		return 0, err
	}
	defer srv.Close()
	defer cli.Close()
	start := time.Now()
	c, err := cli.Dial(ctx, srv.Addr().String(), tc)
	if err != nil {
		return 0, err
	}
	s, err := srv.Accept(ctx)
	if err != nil {
		return 0, err
	}
	d := time.Since(start)
	_ = c.CloseWithError(0, "")
	_ = s.CloseWithError(0, "")
	return d, nil
}
