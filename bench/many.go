package main

// P11: many idle sessions on one node. The node (this process) accepts n
// sessions, each from a peer of its own; the peers run in a helper process
// (bench -helper-many), so that the node's heap, goroutines and file
// descriptors are the node's alone. Raw: the same number of bare quic-go
// connections accepted by a rawquic listener, from the same helper.

import (
	"bufio"
	"context"
	"crypto/rand"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	p2pconfig "github.com/libp2p/go-libp2p/config"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
	rcmgr "github.com/libp2p/go-libp2p/p2p/host/resource-manager"
	libp2ptls "github.com/libp2p/go-libp2p/p2p/security/tls"
	ma "github.com/multiformats/go-multiaddr"
	"github.com/quic-go/quic-go"

	"github.com/moqp2p/moqp2p/broadcast"
	"github.com/moqp2p/moqp2p/internal/wire"
	"github.com/moqp2p/moqp2p/moq"
	"github.com/moqp2p/moqp2p/session"
	"github.com/moqp2p/moqp2p/transport"
	"github.com/moqp2p/moqp2p/transport/p2pquic"
	"github.com/moqp2p/moqp2p/transport/rawquic"
)

// manyResult is one P11 run, per session (or connection) on the node.
type manyResult struct {
	heap, goroutines, fds, rate float64
}

// manyDialers is how many handshakes the helper runs at once, and
// manyPerSocket how many connections share one of its UDP sockets.
const (
	manyDialers   = 16
	manyPerSocket = 500
)

// manyTimeout bounds one P11 run: the helper's dials and the node's
// accepting (a few ms of CPU per handshake on each side).
func manyTimeout(n int) time.Duration { return 30*time.Second + time.Duration(n)*10*time.Millisecond }

// runMany is P11.
func runMany(ctx context.Context, cfg config) []*line {
	n := cfg.p11Sessions
	logf("P11: %d idle sessions on one node per run", n)
	raiseFileLimit()
	var heap, gor, fds, rate [2]sample // ours, raw
	for run := range cfg.runs {
		for i, do := range []func() (manyResult, error){
			func() (manyResult, error) { return manyOurs(ctx, n) },
			func() (manyResult, error) { return manyRaw(ctx, n) },
		} {
			if skip(i) {
				continue
			}
			quiesce()
			r, err := do()
			name := []string{"ours", "raw"}[i]
			if err != nil {
				logf("P11 %s run %d: %v", name, run+1, err)
				continue
			}
			logf("P11 %-4s run %d: %.1f KB heap, %.2f goroutines, %.3f fds per session, %.0f sessions/s accepted", name, run+1, r.heap/1e3, r.goroutines, r.fds, r.rate)
			heap[i] = append(heap[i], r.heap/1e3)
			gor[i] = append(gor[i], r.goroutines)
			fds[i] = append(fds[i], r.fds)
			rate[i] = append(rate[i], r.rate)
		}
	}
	note := fmt.Sprintf("%d sessions, the node's side only; peers in a helper process", n)
	return []*line{
		{Row: "P11", Metric: "KB per idle session on a node with many (live heap after GC)", Note: note, Ours: heap[0], Raw: heap[1]},
		{Row: "P11", Metric: "goroutines per idle session on that node", Ours: gor[0], Raw: gor[1]},
		{Row: "P11", Metric: "file descriptors per idle session on that node", Ours: fds[0], Raw: fds[1]},
		{Row: "P11", Metric: "sessions accepted per second", Note: "handshakes of both ends on the same cores", Ours: rate[0], Raw: rate[1]},
	}
}

// counted takes note of accepted sessions: how many, the first and last
// arrival, and a channel closed at the n-th.
type counted struct {
	n           int64
	got         atomic.Int64
	first, last atomic.Int64 // UnixNano
	all         chan struct{}
}

func newCounted(n int) *counted { return &counted{n: int64(n), all: make(chan struct{})} }

func (c *counted) add() {
	now := time.Now().UnixNano()
	c.first.CompareAndSwap(0, now)
	c.last.Store(now)
	if c.got.Add(1) == c.n {
		close(c.all)
	}
}

func (c *counted) rate() float64 {
	d := time.Duration(c.last.Load() - c.first.Load())
	if n := c.got.Load(); d > 0 && n > 1 {
		return float64(n-1) / d.Seconds()
	}
	return 0
}

// measureMany runs the helper against a node that counts its sessions in c,
// and measures what n sessions added to the node.
func measureMany(ctx context.Context, c *counted, args ...string) (manyResult, error) {
	ctx, cancel := context.WithTimeout(ctx, manyTimeout(int(c.n)))
	defer cancel()
	g0, fd0 := runtime.NumGoroutine(), openFiles()
	before := heapInUse()
	exe, err := os.Executable()
	if err != nil {
		return manyResult{}, err
	}
	cmd := exec.CommandContext(ctx, exe, append([]string{"-helper-many"}, args...)...)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return manyResult{}, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return manyResult{}, err
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		return manyResult{}, err
	}
	// The helper exits once its stdin closes (or the context kills it).
	defer func() {
		_ = stdin.Close()
		_ = cmd.Wait()
	}()
	done := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if l := sc.Text(); strings.HasPrefix(l, "DIALED") {
				done <- l
			}
		}
		_, _ = io.Copy(io.Discard, stdout)
	}()
	select {
	case <-c.all:
	case l := <-done:
		// Every dial returned. A handshake the node refused after the
		// helper saw it complete (quic-go's accept queue was full) leaves
		// a session short: wait until no more arrive, then measure those
		// that did.
		for prev := int64(-1); c.got.Load() != prev && c.got.Load() < c.n; {
			prev = c.got.Load()
			select {
			case <-c.all:
			case <-time.After(time.Second):
			}
		}
		if got := c.got.Load(); got < c.n {
			logf("P11: %d of %d sessions accepted (helper: %s)", got, c.n, l)
			if got < c.n*9/10 {
				return manyResult{}, fmt.Errorf("only %d of %d sessions accepted", got, c.n)
			}
		}
	case <-ctx.Done():
		return manyResult{}, fmt.Errorf("%d of %d sessions accepted: %w", c.got.Load(), c.n, ctx.Err())
	}
	time.Sleep(500 * time.Millisecond) // the last sessions settle (control streams open)
	after := heapInUse()
	g, fd := runtime.NumGoroutine(), openFiles()
	n := float64(c.got.Load())
	r := manyResult{
		heap:       float64(after-before) / n,
		goroutines: float64(g-g0) / n,
		fds:        float64(fd-fd0) / n,
		rate:       c.rate(),
	}
	if fd < 0 || fd0 < 0 {
		r.fds = 0
	}
	return r, nil
}

// manyOurs accepts n moq sessions on one node from n peers. The node's host
// has no resource-manager limits (libp2p's defaults cap inbound connections
// far below 10 000); the node's own admission bounds stay at their defaults.
func manyOurs(ctx context.Context, n int) (manyResult, error) {
	rm, err := rcmgr.NewResourceManager(rcmgr.NewFixedLimiter(rcmgr.InfiniteLimits))
	if err != nil {
		return manyResult{}, err
	}
	defer rm.Close() // after the host's Close (closing it twice is harmless)
	// newHost's host with this resource manager instead of its own.
	q := p2pquic.New(p2pquic.Config{Logger: quietLogger()})
	h, err := moq.NewHost(moq.HostConfig{QUIC: q, AddrsFactory: loopbackOnly, Options: []p2pconfig.Option{
		func(c *p2pconfig.Config) error { c.ResourceManager = rm; return nil },
	}})
	if err != nil {
		return manyResult{}, err
	}
	defer h.Close()
	m, err := moq.New(h, moq.WithQUIC(q), moq.WithLogger(quietLogger()), moq.WithShutdownGrace(time.Second))
	if err != nil {
		return manyResult{}, err
	}
	var addr string
	for _, a := range h.Addrs() {
		ip, err1 := a.ValueForProtocol(ma.P_IP4)
		port, err2 := a.ValueForProtocol(ma.P_UDP)
		if err1 == nil && err2 == nil && ip == "127.0.0.1" && isQUICAddr(a) {
			addr = net.JoinHostPort(ip, port)
		}
	}
	if addr == "" {
		_ = m.Shutdown(context.Background())
		return manyResult{}, errors.New("node has no loopback QUIC address")
	}
	c := newCounted(n)
	iterDone := make(chan struct{})
	go func() {
		defer close(iterDone)
		for range m.IncomingSessions() {
			c.add()
		}
	}()
	defer func() { <-iterDone }() // Shutdown ends the iteration
	defer func() { _ = m.Shutdown(context.Background()) }()
	time.Sleep(100 * time.Millisecond) // the iteration subscribes
	return measureMany(ctx, c, "-kind", "ours", "-addr", addr, "-peer", h.ID().String(), "-n", fmt.Sprint(n))
}

func isQUICAddr(a ma.Multiaddr) bool {
	_, err := a.ValueForProtocol(ma.P_QUIC_V1)
	return err == nil
}

// manyRaw accepts n bare quic-go connections on a rawquic listener.
func manyRaw(ctx context.Context, n int) (manyResult, error) {
	stc, err := serverTLS()
	if err != nil {
		return manyResult{}, err
	}
	srv, err := rawquic.Listen("127.0.0.1:0", stc, nil)
	if err != nil {
		return manyResult{}, err
	}
	defer srv.Close()
	c := newCounted(n)
	var mu sync.Mutex
	var conns []transport.Conn
	actx, cancel := context.WithCancel(ctx)
	accepted := make(chan struct{})
	go func() {
		defer close(accepted)
		for {
			cc, err := srv.Accept(actx)
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, cc)
			mu.Unlock()
			c.add()
		}
	}()
	defer func() {
		cancel()
		<-accepted
		for _, cc := range conns {
			_ = cc.CloseWithError(0, "")
		}
	}()
	return measureMany(ctx, c, "-kind", "raw", "-addr", srv.Addr().String(), "-n", fmt.Sprint(n))
}

// manyHelperMain is the P11 peer side: n connections to -addr, from a few
// UDP sockets, manyDialers handshakes at a time; with -kind ours each has
// a libp2p identity of its own and runs a moq-lite session (it publishes
// nothing but stays open for the node's announce interest, as a moq node
// would), with raw a bare connection. It prints "DIALED ok failed" and
// holds them until stdin closes.
func manyHelperMain(args []string) {
	fs := flag.NewFlagSet("bench -helper-many", flag.ExitOnError)
	kind := fs.String("kind", "ours", "ours or raw")
	addr := fs.String("addr", "", "the node's UDP address")
	peerID := fs.String("peer", "", "ours: the node's peer ID")
	n := fs.Int("n", 1000, "connections")
	_ = fs.Parse(args)
	raiseFileLimit()
	ctx, cancel := context.WithTimeout(context.Background(), manyTimeout(*n))
	defer cancel()
	raddr, err := net.ResolveUDPAddr("udp", *addr)
	if err != nil {
		fmt.Fprintln(os.Stderr, "helper-many:", err)
		os.Exit(2)
	}
	var server peer.ID
	if *kind == "ours" {
		if server, err = peer.Decode(*peerID); err != nil {
			fmt.Fprintln(os.Stderr, "helper-many:", err)
			os.Exit(2)
		}
	}
	origin := broadcast.NewOrigin(0) // open, empty: announce interests stay
	var (
		mu       sync.Mutex
		sessions []*session.Session
		conns    []*quic.Conn
		trs      []*quic.Transport
	)
	for range (*n + manyPerSocket - 1) / manyPerSocket {
		pc, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
		if err != nil {
			fmt.Fprintln(os.Stderr, "helper-many:", err)
			os.Exit(2)
		}
		trs = append(trs, &quic.Transport{Conn: pc})
	}
	qconf := rawquic.Config()
	qconf.Versions = []quic.Version{quic.Version1}
	dial := func(i int) error {
		tr := trs[i/manyPerSocket]
		if *kind == "raw" {
			qc, err := tr.Dial(ctx, raddr, &tls.Config{InsecureSkipVerify: true, NextProtos: []string{wire.ALPNLite04}}, qconf)
			if err != nil {
				return err
			}
			mu.Lock()
			conns = append(conns, qc)
			mu.Unlock()
			return nil
		}
		priv, _, err := crypto.GenerateEd25519Key(rand.Reader)
		if err != nil {
			return err
		}
		id, err := libp2ptls.NewIdentity(priv)
		if err != nil {
			return err
		}
		tc, _ := id.ConfigForPeer(server)
		tc.NextProtos = []string{wire.ALPNLite04}
		qc, err := tr.Dial(ctx, raddr, tc, qconf)
		if err != nil {
			return err
		}
		s, err := session.New(rawquic.Wrap(qc), session.Config{Client: true, Publish: origin, Logger: quietLogger()})
		if err != nil {
			return err
		}
		mu.Lock()
		sessions = append(sessions, s)
		mu.Unlock()
		return nil
	}
	var failed atomic.Int64
	var lastErr atomic.Value
	var wg sync.WaitGroup
	next := atomic.Int64{}
	for range manyDialers {
		wg.Go(func() {
			for {
				i := int(next.Add(1) - 1)
				if i >= *n || ctx.Err() != nil {
					return
				}
				var err error
				for range 3 { // a refused handshake (the node's queues were full) is tried again
					if err = dial(i); err == nil {
						break
					}
				}
				if err != nil {
					failed.Add(1)
					lastErr.Store(err.Error())
				}
			}
		})
	}
	wg.Wait()
	fmt.Printf("DIALED %d %d %v\n", *n-int(failed.Load()), failed.Load(), lastErr.Load())
	_, _ = io.Copy(io.Discard, os.Stdin) // hold until the node is done measuring
	for _, s := range sessions {
		_ = s.Close(broadcast.CodeCancel, "")
	}
	for _, c := range conns {
		_ = c.CloseWithError(0, "")
	}
	for _, tr := range trs {
		_ = tr.Close()
	}
}

// openFiles counts this process's open file descriptors (-1 where /proc is
// not there).
func openFiles() int {
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		return -1
	}
	return len(ents)
}
