package moq

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/event"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"

	"github.com/moqp2p/moqp2p/broadcast"
	"github.com/moqp2p/moqp2p/internal/netns"
	"github.com/moqp2p/moqp2p/internal/pattern"
	"github.com/moqp2p/moqp2p/transport/p2pquic"
)

// natLab runs the calling test in a NAT lab (see netns.NATed): it returns
// the lab in the child process, nil in the parent (which relays the
// child's verdict). Where the lab cannot be built the test is skipped, or
// fails under MOQP2P_REQUIRE_NETNS (CI).
func natLab(t *testing.T, kinds [2]netns.NATKind) *netns.NATLab {
	t.Helper()
	lab, err := netns.NATed(t, kinds)
	if err != nil {
		netns.Unavailable(t, "%v", err)
	}
	return lab
}

// labCtx bounds a lab test's waits (the lab's punching takes seconds).
func labCtx(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// labNode starts a QUIC node in this process's namespace.
func labNode(t *testing.T, hc HostConfig, opts ...Option) *node {
	t.Helper()
	q := p2pquic.New(p2pquic.Config{Logger: testLogger()})
	hc.QUIC = q
	if hc.AddrsFactory == nil {
		hc.AddrsFactory = netns.NotLoopback
	}
	return start(t, hc, append([]Option{WithQUIC(q)}, opts...))
}

// labRelay is a relay node on the WAN address, with the relay service rs.
func labRelay(t *testing.T, lab *netns.NATLab, rs RelayService, opts ...Option) *node {
	return labNode(t, HostConfig{AddrsFactory: netns.OnlyIP(lab.WAN), NAT: NATConfig{
		Reachability: network.ReachabilityPublic, RelayService: &rs,
	}}, opts...)
}

// behindNAT is a node that knows it is private, holds a slot on relay and
// punches holes; dialTimeout is its DirectDialTimeout.
func behindNAT(t *testing.T, relays []peer.AddrInfo, dialTimeout time.Duration, opts ...Option) *node {
	return labNode(t, HostConfig{NAT: NATConfig{
		Reachability: network.ReachabilityPrivate, HolePunching: true,
		DirectDialTimeout: dialTimeout, StaticRelays: relays,
	}}, opts...)
}

// natCase is a lab test: a relay in the WAN, a publisher on side 0 and a
// subscriber on side 1, each a process of its own in its namespace.
type natCase struct {
	kinds [2]netns.NATKind
	// relays run in the WAN (default: one with go-libp2p's limits); the
	// publisher reserves a slot on each, and the subscriber is given the
	// circuit through the first.
	relays  []RelayService
	pubDial time.Duration // the publisher's DirectDialTimeout
	subDial time.Duration // the subscriber's
	pubOpts []Option
	subOpts []Option
	publish func(t *testing.T, n *node)
	// subscribe runs in the subscriber's process, after it connected to
	// the relay; circuit reaches the publisher through it.
	subscribe func(t *testing.T, n *node, relays []peer.AddrInfo, circuit ma.Multiaddr)
	// holdDirect keeps the NATs from reaching each other (so hole
	// punching cannot succeed) until the subscriber calls openPath.
	holdDirect bool
	// relayOpts are the relays' node options; with pubSession the
	// publisher opens a moq session to the first relay.
	relayOpts  []Option
	pubSession bool
}

// openPathLine is what a subscriber prints to have the WAN let its NAT
// and the publisher's reach each other (natCase.holdDirect).
const openPathLine = "nat-lab: open the path"

// openPath asks the WAN process to stop dropping the NATs' packets to each
// other.
func openPath() { fmt.Println(openPathLine) }

// lockedBuffer is a bytes.Buffer two goroutines write.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// relaysFromEnv parses the relays the WAN process passed.
func relaysFromEnv(t *testing.T) []peer.AddrInfo {
	var out []peer.AddrInfo
	for _, a := range strings.Fields(os.Getenv(relayEnv)) {
		ai, err := peer.AddrInfoFromString(a)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, *ai)
	}
	return out
}

const (
	relayEnv   = "MOQP2P_TEST_NAT_RELAY"
	circuitEnv = "MOQP2P_TEST_NAT_CIRCUIT"
)

// runNAT runs c: in the parent, through netns.NATed; in the lab's WAN
// process, the relay and the two other processes; in those, their part.
func runNAT(t *testing.T, c natCase) {
	lab := natLab(t, c.kinds)
	if lab == nil {
		return
	}
	switch netns.NATRole() {
	case "pub":
		relays := relaysFromEnv(t)
		n := behindNAT(t, relays, c.pubDial, c.pubOpts...)
		c.publish(t, n)
		if c.pubSession {
			if _, err := n.Connect(labCtx(t), relays[0]); err != nil {
				t.Fatal(err)
			}
		}
		punchReady(t, n)
		fmt.Printf("circuit: %s/p2p/%s\n", circuitAddr(t, n, relays), n.h.ID())
		_, _ = io.Copy(io.Discard, os.Stdin) // until the WAN process is done
		return
	case "sub":
		relays := relaysFromEnv(t)
		n := behindNAT(t, relays[:1], c.subDial, c.subOpts...)
		// The relay is the subscriber's bootstrap: through it the
		// subscriber learns its public address before punching.
		if err := n.h.Connect(labCtx(t), relays[0]); err != nil {
			t.Fatal(err)
		}
		punchReady(t, n)
		c.subscribe(t, n, relays, ma.StringCast(os.Getenv(circuitEnv)))
		return
	}
	if len(c.relays) == 0 {
		c.relays = []RelayService{{}}
	}
	var addrs []string
	for _, rs := range c.relays {
		ri := labRelay(t, lab, rs, c.relayOpts...).info()
		addrs = append(addrs, fmt.Sprintf("%s/p2p/%s", ri.Addrs[0], ri.ID))
	}
	relayAddr := strings.Join(addrs, " ")
	ctx := labCtx(t)

	pub := lab.Role(ctx, t, lab.Sides[0].Host, "pub", relayEnv+"="+relayAddr)
	stdin, err := pub.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := pub.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var pubErr bytes.Buffer
	pub.Stderr = &pubErr
	if err := pub.Start(); err != nil {
		t.Fatal(err)
	}
	var pubOut bytes.Buffer
	circuit := make(chan string, 1)
	copied := make(chan struct{})
	go func() {
		defer close(copied)
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			line := sc.Text()
			if a, ok := strings.CutPrefix(line, "circuit: "); ok {
				circuit <- a
			}
			pubOut.WriteString(line + "\n")
		}
	}()
	pubDone := func() {
		_ = stdin.Close()
		<-copied
		err := pub.Wait()
		t.Logf("publisher (%s, behind a %s NAT):\n%s%s", lab.Sides[0].Addr, lab.Sides[0].Kind, pubOut.String(), pubErr.String())
		if err != nil {
			t.Errorf("publisher: %v", err)
		}
	}
	var addr string
	select {
	case addr = <-circuit:
	case <-copied:
		pubDone()
		t.Fatal("the publisher ended before it had a relay slot")
	case <-ctx.Done():
		pubDone()
		t.Fatal("no relay slot for the publisher")
	}
	// With holdDirect the WAN drops what the NATs send each other until
	// the subscriber says "open the path" (see openPath).
	block := [][]string{
		{"-s", lab.Sides[0].Public, "-d", lab.Sides[1].Public, "-j", "DROP"},
		{"-s", lab.Sides[1].Public, "-d", lab.Sides[0].Public, "-j", "DROP"},
	}
	iptables := func(op string, rule []string) {
		if out, err := exec.Command("iptables", append([]string{op, "FORWARD"}, rule...)...).CombinedOutput(); err != nil {
			t.Errorf("iptables %s: %v: %s", op, err, out)
		}
	}
	if c.holdDirect {
		for _, r := range block {
			iptables("-I", r)
		}
	}
	sub := lab.Role(ctx, t, lab.Sides[1].Host, "sub", relayEnv+"="+relayAddr, circuitEnv+"="+addr)
	var out lockedBuffer
	sub.Stderr = &out
	subOut, err := sub.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := sub.Start(); err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(subOut)
	for sc.Scan() {
		if sc.Text() == openPathLine && c.holdDirect {
			for _, r := range block {
				iptables("-D", r)
			}
		}
		out.Write(append(sc.Bytes(), '\n'))
	}
	err = sub.Wait()
	t.Logf("subscriber (%s, behind a %s NAT):\n%s", lab.Sides[1].Addr, lab.Sides[1].Kind, out.String())
	pubDone()
	if err != nil {
		t.Fatalf("subscriber: %v", err)
	}
}

// circuitAddr waits until n advertises a circuit address through each
// relay (AutoRelay reserved the slots) and returns the first relay's.
func circuitAddr(t *testing.T, n *node, relays []peer.AddrInfo) ma.Multiaddr {
	t.Helper()
	ctx := labCtx(t)
	for {
		var first ma.Multiaddr
		found := 0
		for _, r := range relays {
			for _, a := range n.h.Addrs() {
				if s := a.String(); strings.Contains(s, "/p2p-circuit") && strings.Contains(s, r.ID.String()) {
					found++
					if r.ID == relays[0].ID {
						first = a
					}
					break
				}
			}
		}
		if found == len(relays) {
			return first
		}
		select {
		case <-ctx.Done():
			t.Fatalf("no relay reservation: addresses %v", n.h.Addrs())
		case <-time.After(20 * time.Millisecond): // polling the host's addresses, which have no change event of their own here
		}
	}
}

// punchReady waits until n's hole-punching service runs: go-libp2p starts
// it once the host knows a public address of its own (here: observed by
// the relay), and a relayed connection that arrives before is not punched.
func punchReady(t *testing.T, n *node) {
	t.Helper()
	if err := netns.WaitHolePunching(labCtx(t), n.h); err != nil {
		t.Fatalf("hole punching never started (no public address observed): %v", err)
	}
}

// finite publishes name with one back-pressured track ("data") and, once
// a subscriber uses it, fills it with groups×perGroup frames of pattern
// payload.
func finite(t *testing.T, n *node, name string, groups, perGroup, size int) {
	b := broadcast.New(broadcast.Config{Limits: broadcast.Limits{Backpressure: true}})
	tp, _ := b.CreateTrack(broadcast.Track{Name: "data"})
	if _, err := n.Publish(labCtx(t), name, b.Consume()); err != nil {
		t.Fatal(err)
	}
	fill := func(ctx context.Context) error {
		i := uint64(0)
		for g := 0; g < groups; g++ {
			if err := tp.WaitRoom(ctx); err != nil {
				return err
			}
			gp, err := tp.AppendGroup()
			if err != nil {
				return err
			}
			for f := 0; f < perGroup; f++ {
				if err := gp.WriteFrame(pattern.Payload(i, size)); err != nil {
					return err
				}
				i++
			}
			_ = gp.Finish()
		}
		return tp.Finish()
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		select {
		case <-tp.Used():
		case <-ctx.Done():
			return
		}
		if err := fill(ctx); err != nil && ctx.Err() == nil {
			t.Errorf("publishing: %v", err)
		}
	}()
	t.Cleanup(func() { cancel(); <-done })
}

// dialCircuit connects n to the publisher behind circuit.
func dialCircuit(t *testing.T, n *node, circuit ma.Multiaddr) *Session {
	t.Helper()
	info, err := peer.AddrInfoFromP2pAddr(circuit)
	if err != nil {
		t.Fatal(err)
	}
	s, err := n.Connect(labCtx(t), *info)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("path: %s", s.Path())
	return s
}

// readAll reads every group of tc (in arrival order: each group is a
// stream of its own), checks each frame against the pattern (frame k of
// group g is payload g×perGroup+k) and returns the frame count; first is
// when the first frame arrived.
func readAll(ctx context.Context, tc *broadcast.TrackConsumer, perGroup, size int) (n uint64, first time.Time, err error) {
	seen := map[uint64]bool{}
	for {
		g, err := tc.RecvGroup(ctx)
		if err != nil {
			return n, first, err
		}
		seq := g.Sequence()
		if seen[seq] {
			return n, first, fmt.Errorf("group %d twice", seq)
		}
		seen[seq] = true
		for k := uint64(0); ; k++ {
			f, err := g.ReadFrame(ctx)
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				return n, first, fmt.Errorf("group %d: %w", seq, err)
			}
			if first.IsZero() {
				first = time.Now()
			}
			if i := seq*uint64(perGroup) + k; !bytes.Equal(f, pattern.Payload(i, size)) {
				return n, first, fmt.Errorf("frame %d (group %d) differs from the pattern", i, seq)
			}
			n++
		}
	}
}

// Both peers behind endpoint-independent NATs: the subscriber reaches the
// publisher through the relay, DCUtR punches a hole, and the moq session
// runs on raw QUIC through it. 10 000 frames arrive byte-exact.
func TestNATHolePunchDirect(t *testing.T) {
	const groups, perGroup, size = 100, 100, 64
	runNAT(t, natCase{
		kinds:   [2]netns.NATKind{netns.EndpointIndependent, netns.EndpointIndependent},
		pubDial: 0,
		publish: func(t *testing.T, n *node) { finite(t, n, "cam", groups, perGroup, size) },
		subscribe: func(t *testing.T, n *node, _ []peer.AddrInfo, circuit ma.Multiaddr) {
			s := dialCircuit(t, n, circuit)
			if p := s.Path(); p.Kind != PathHolePunched || p.Transport != "raw QUIC" {
				t.Fatalf("path %s over %s, want hole-punched raw QUIC", p, p.Transport)
			}
			if r := s.Path().Reason; !strings.Contains(r, "NAT mapping DCUtR hole punching opened in") {
				t.Fatalf("reason %q, want it to name the punched NAT mapping", r)
			}
			ctx := labCtx(t)
			start := time.Now()
			tc, err := s.SubscribeWith(ctx, "cam", "data", SubscribeOptions{Backpressure: true, Start: new(uint64)})
			if err != nil {
				t.Fatal(err)
			}
			defer tc.Close()
			got, first, err := readAll(ctx, tc, perGroup, size)
			if got != groups*perGroup {
				t.Fatalf("got %d frames (%v), want %d", got, err, groups*perGroup)
			}
			t.Logf("Subscribe to first frame through two NATs (hole-punched path): %s; %d frames byte-exact", first.Sub(start), got)
			if k := s.Path().Kind; k != PathHolePunched {
				t.Fatalf("path after the transfer: %s", s.Path())
			}
		},
	})
}

// One side behind a symmetric NAT: punching fails, and the session runs
// through a relay that opted in to unlimited circuits, so media keeps
// flowing past the 128 KiB a default circuit carries: 10 MiB byte-exact,
// 80 times that limit. The session's reason says hole punching was tried
// and failed.
func TestNATSymmetricFallback(t *testing.T) {
	const groups, perGroup, size = 160, 64, 1024 // 10 MiB
	runNAT(t, natCase{
		kinds:  [2]netns.NATKind{netns.EndpointIndependent, netns.Symmetric},
		relays: []RelayService{{Unlimited: true}},
		// Short dials, so that go-libp2p's three attempts end in seconds.
		pubDial: time.Second,
		subDial: time.Second,
		subOpts: []Option{WithHolePunchWait(3 * time.Second)},
		publish: func(t *testing.T, n *node) { finite(t, n, "cam", groups, perGroup, size) },
		subscribe: func(t *testing.T, n *node, _ []peer.AddrInfo, circuit ma.Multiaddr) {
			s := dialCircuit(t, n, circuit)
			if p := s.Path(); p.Kind != PathRelayed || p.Limited {
				t.Fatalf("path %s (limited %v), want an unlimited relayed circuit", p, p.Limited)
			}
			ctx := labCtx(t)
			tc, err := s.SubscribeWith(ctx, "cam", "data", SubscribeOptions{Backpressure: true, Start: new(uint64)})
			if err != nil {
				t.Fatal(err)
			}
			defer tc.Close()
			start := time.Now()
			got, _, err := readAll(ctx, tc, perGroup, size)
			if want := uint64(groups * perGroup); got != want {
				t.Fatalf("got %d frames (%v), want %d", got, err, want)
			}
			took := time.Since(start)
			sent := got * uint64(size)
			t.Logf("%d KiB byte-exact through the unlimited circuit in %s (%.1f Mbit/s)",
				sent>>10, took.Round(time.Millisecond), float64(sent*8)/took.Seconds()/1e6)
			// The attempts may still run: wait for their end.
			for r := s.Path().Reason; !strings.Contains(r, "hole punching attempted"); r = s.Path().Reason {
				if !strings.Contains(r, "hole punching under way") && !strings.Contains(r, "no hole punching attempt seen yet") {
					t.Fatalf("reason %q, want hole punching tried and failed", r)
				}
				select {
				case <-ctx.Done():
					t.Fatalf("reason %q: hole punching never ended", r)
				case <-time.After(100 * time.Millisecond):
				}
			}
			if p := s.Path(); p.Kind != PathRelayed || !strings.Contains(p.Reason, "and failed") {
				t.Fatalf("path %s, want relayed after failed punching", p)
			}
			t.Logf("path %s", s.Path())
		},
	})
}

// A session that starts on the relayed circuit (the subscriber does not
// wait for punching, and the NATs cannot reach each other until 50 groups
// came over the circuit) moves to the direct path the punch opens, in the middle of
// the stream, without losing a group or surfacing an error.
func TestNATRelayedUpgradeMidStream(t *testing.T) {
	runNAT(t, natCase{
		kinds:      [2]netns.NATKind{netns.EndpointIndependent, netns.EndpointIndependent},
		relays:     []RelayService{{CircuitBytes: 16 << 20, CircuitDuration: 5 * time.Minute}},
		holdDirect: true,
		pubOpts:    []Option{WithRelayedGrace(2 * time.Second)},
		subOpts:    []Option{WithHolePunchWait(0), WithRelayedGrace(2 * time.Second)},
		publish:    func(t *testing.T, n *node) { live(t, publish(t, n, "cam")) },
		subscribe: func(t *testing.T, n *node, _ []peer.AddrInfo, circuit ma.Multiaddr) {
			s := dialCircuit(t, n, circuit)
			if p := s.Path(); p.Kind != PathRelayed {
				t.Fatalf("first session: %s, want relayed", p)
			}
			ctx := labCtx(t)
			tc, err := s.Subscribe(ctx, "cam", "video")
			if err != nil {
				t.Fatal(err)
			}
			defer tc.Close()
			// Every group from the first received on must arrive, across
			// the move (groups are streams of their own: they may arrive
			// out of order).
			seen := map[uint64]bool{}
			low, high := uint64(1<<63), uint64(0)
			var before int
			for afterMove := 0; afterMove < 300; {
				g, err := tc.RecvGroup(ctx)
				if err != nil {
					t.Fatalf("after %d groups: %v", len(seen), err)
				}
				seq := g.Sequence()
				if seen[seq] {
					t.Fatalf("group %d twice", seq)
				}
				seen[seq] = true
				low, high = min(low, seq), max(high, seq)
				if _, err := g.ReadFrame(ctx); err != nil {
					t.Fatalf("group %d: %v", seq, err)
				}
				if d := n.directSession(s.RemotePeer()); d != nil {
					afterMove++
				} else if before++; before == 50 {
					openPath() // now hole punching can get through
				}
			}
			for seq := low; seq+20 < high; seq++ { // the newest may still be on their way
				if !seen[seq] {
					t.Fatalf("group %d lost (received %d..%d)", seq, low, high)
				}
			}
			d := n.directSession(s.RemotePeer())
			t.Logf("groups %d..%d, none lost: %d on the relayed session, then the direct one: %s", low, high, before, d.Path())
			if before < 50 {
				t.Fatalf("%d groups before the move, want 50: the path opened early", before)
			}
			if d.Path().Kind != PathHolePunched {
				t.Fatalf("direct session path %s", d.Path())
			}
		},
	})
}

// Punching fails (one symmetric NAT) and the session runs on a circuit
// limited to 64 KiB, which its relay cuts mid-transfer: the subscription
// goes on through the node's PathFallback (here: a relay with unlimited
// circuits, where the publisher also holds a slot), finishing the group
// the cut left half-done. Every frame arrives byte-exact and the
// application sees no error.
func TestNATLimitedCircuitFallback(t *testing.T) {
	const groups, perGroup, size = 16, 64, 1024 // 1 MiB, 16 times the limit
	var fallbackRelay peer.AddrInfo
	var fb *node
	runNAT(t, natCase{
		kinds:  [2]netns.NATKind{netns.EndpointIndependent, netns.Symmetric},
		relays: []RelayService{{CircuitBytes: 64 << 10}, {Unlimited: true}},
		subOpts: []Option{WithHolePunchWait(time.Second), WithPathFallback(func(ctx context.Context, p peer.ID, name string) (*Session, error) {
			// Only the unlimited relay's circuit: the limited one would
			// be cut again.
			circuit, err := ma.NewMultiaddr(fmt.Sprintf("%s/p2p/%s/p2p-circuit", fallbackRelay.Addrs[0], fallbackRelay.ID))
			if err != nil {
				return nil, err
			}
			fb.h.Peerstore().ClearAddrs(p)
			return fb.Connect(ctx, peer.AddrInfo{ID: p, Addrs: []ma.Multiaddr{circuit}})
		})},
		publish: func(t *testing.T, n *node) { finite(t, n, "cam", groups, perGroup, size) },
		subscribe: func(t *testing.T, n *node, relays []peer.AddrInfo, circuit ma.Multiaddr) {
			fallbackRelay, fb = relays[1], n
			s := dialCircuit(t, n, circuit)
			if p := s.Path(); p.Kind != PathRelayed || !p.Limited {
				t.Fatalf("path %s (limited %v), want a limited relayed circuit", p, p.Limited)
			}
			ctx := labCtx(t)
			tc, err := s.SubscribeWith(ctx, "cam", "data", SubscribeOptions{Backpressure: true, Start: new(uint64)})
			if err != nil {
				t.Fatal(err)
			}
			defer tc.Close()
			got, _, err := readAll(ctx, tc, perGroup, size)
			if want := uint64(groups * perGroup); got != want {
				t.Fatalf("got %d frames (%v), want %d", got, err, want)
			}
			if s.Err() == nil {
				t.Fatal("the limited circuit's session is still up: the relay never cut it")
			}
			t.Logf("%d KiB byte-exact; the limited session ended (%v), the fallback took over", got*uint64(size)>>10, s.Err())
		},
	})
}

// Punching fails (one symmetric NAT) and the session runs on a circuit
// limited to 64 KiB, with no PathFallback: when the relay cuts the circuit
// the application's track ends with an error that says so, instead of
// waiting forever for frames that cannot come.
func TestNATLimitedCircuitNoFallback(t *testing.T) {
	const groups, perGroup, size = 16, 64, 1024 // 1 MiB, 16 times the limit
	runNAT(t, natCase{
		kinds:   [2]netns.NATKind{netns.EndpointIndependent, netns.Symmetric},
		relays:  []RelayService{{CircuitBytes: 64 << 10}},
		subOpts: []Option{WithHolePunchWait(time.Second)},
		publish: func(t *testing.T, n *node) { finite(t, n, "cam", groups, perGroup, size) },
		subscribe: func(t *testing.T, n *node, _ []peer.AddrInfo, circuit ma.Multiaddr) {
			s := dialCircuit(t, n, circuit)
			if p := s.Path(); p.Kind != PathRelayed || !p.Limited {
				t.Fatalf("path %s (limited %v), want a limited relayed circuit", p, p.Limited)
			}
			ctx := labCtx(t)
			tc, err := s.SubscribeWith(ctx, "cam", "data", SubscribeOptions{Backpressure: true, Start: new(uint64)})
			if err != nil {
				t.Fatal(err)
			}
			defer tc.Close()
			start := time.Now()
			got, _, err := readAll(ctx, tc, perGroup, size)
			took := time.Since(start)
			if err == nil || errors.Is(err, io.EOF) || ctx.Err() != nil {
				t.Fatalf("after %d frames in %s: %v, want the track to end with the circuit's cut", got, took, err)
			}
			if got >= groups*perGroup {
				t.Fatalf("all %d frames arrived: the relay never cut the circuit", got)
			}
			t.Logf("%d KiB arrived, then after %s the track ended: %v", got*size>>10, took.Round(time.Millisecond), err)
			if !errors.Is(err, ErrLimitedCircuit) {
				t.Fatalf("error %q does not say the limited circuit ended (ErrLimitedCircuit)", err)
			}
			if err := tc.Err(); !errors.Is(err, ErrLimitedCircuit) {
				t.Fatalf("the track's error %v, want ErrLimitedCircuit", err)
			}
		},
	})
}

// A node behind a NAT that is told nothing about its reachability learns
// it is private and then reserves a relay slot by itself. The WAN holds the
// relay and three more public nodes, each an AutoNAT server (v1 and v2).
// Two verdicts come: go-libp2p's AutoNAT v1 says the host is private
// (what AutoRelay acts on), and AutoNAT v2 says the address the NAT gives
// it is unreachable (EvtHostReachableAddrsChanged: the servers' dial-backs,
// from other ports, find no NAT mapping). The node trusts that address
// only once four distinct IPs have observed it, and AutoNAT v1 waits 15 s
// before its first probe, so this takes about 20 s.
func TestNATLearnsPrivate(t *testing.T) {
	lab := natLab(t, [2]netns.NATKind{netns.EndpointIndependent, netns.EndpointIndependent})
	if lab == nil {
		return
	}
	if netns.NATRole() == "peer" {
		var boot []peer.AddrInfo
		for _, a := range strings.Fields(os.Getenv(relayEnv)) {
			ai, err := peer.AddrInfoFromString(a)
			if err != nil {
				t.Fatal(err)
			}
			boot = append(boot, *ai)
		}
		n := labNode(t, HostConfig{NAT: NATConfig{AutoNAT: true, HolePunching: true, StaticRelays: boot[:1]}})
		sub, err := n.h.EventBus().Subscribe([]any{new(event.EvtLocalReachabilityChanged), new(event.EvtHostReachableAddrsChanged)})
		if err != nil {
			t.Fatal(err)
		}
		defer sub.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
		defer cancel()
		start := time.Now()
		for _, b := range boot {
			if err := n.h.Connect(ctx, b); err != nil {
				t.Fatal(err)
			}
		}
		mapped := "/ip4/" + lab.Sides[0].Public + "/udp/" // the address the NAT gives the node
		var private, unreachable bool
		for !private || !unreachable {
			select {
			case e := <-sub.Out():
				switch ev := e.(type) {
				case event.EvtLocalReachabilityChanged:
					t.Logf("AutoNAT v1: reachability %v after %s", ev.Reachability, time.Since(start).Round(time.Millisecond))
					private = ev.Reachability == network.ReachabilityPrivate
				case event.EvtHostReachableAddrsChanged:
					t.Logf("AutoNAT v2 after %s: reachable %v, unreachable %v, unknown %v", time.Since(start).Round(time.Millisecond), ev.Reachable, ev.Unreachable, ev.Unknown)
					for _, a := range ev.Reachable {
						if strings.HasPrefix(a.String(), mapped) {
							t.Fatalf("AutoNAT v2 found the NAT's address %s reachable", a)
						}
					}
					unreachable = slices.ContainsFunc(ev.Unreachable, func(a ma.Multiaddr) bool { return strings.HasPrefix(a.String(), mapped) })
				}
			case <-ctx.Done():
				t.Fatalf("no verdict: private (v1) %v, NAT address unreachable (v2) %v; addresses %v", private, unreachable, n.h.Addrs())
			}
		}
		a := circuitAddr(t, n, boot[:1])
		t.Logf("circuit address %s after %s", a, time.Since(start).Round(time.Millisecond))
		return
	}
	// AutoNAT servers on declared-public hosts answer v2's QUIC checks at
	// once (see NATConfig.Reachability).
	public := NATConfig{Reachability: network.ReachabilityPublic, AutoNAT: true}
	rc := public
	rc.RelayService = &RelayService{}
	relay := labNode(t, HostConfig{AddrsFactory: netns.OnlyIP(lab.WAN), NAT: rc}).info()
	addrs := []string{fmt.Sprintf("%s/p2p/%s", relay.Addrs[0], relay.ID)}
	for _, ip := range lab.Others {
		o := labNode(t, HostConfig{AddrsFactory: netns.OnlyIP(ip), NAT: public}).info()
		addrs = append(addrs, fmt.Sprintf("/ip4/%s/udp/%s/quic-v1/p2p/%s", ip, portOf(t, o.Addrs[0]), o.ID))
	}
	ctx := labCtx(t)
	out, err := lab.Role(ctx, t, lab.Sides[0].Host, "peer", relayEnv+"="+strings.Join(addrs, " ")).CombinedOutput()
	t.Logf("the node behind the NAT:\n%s", out)
	if err != nil {
		t.Fatal(err)
	}
}

func portOf(t *testing.T, a ma.Multiaddr) string {
	p, err := a.ValueForProtocol(ma.P_UDP)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// Punching fails (one symmetric NAT) and a live subscription runs on a
// 64 KiB circuit, which its relay cuts: the track goes on at the MoQ level,
// through the same relay node forwarding the broadcast (WithForwarding;
// the publisher holds a moq session with it), the session the
// PathFallback returns. The application's track sees no error and keeps
// receiving groups after the cut (live media: groups sent while the
// subscription moved are not recovered).
func TestNATForwardingFallback(t *testing.T) {
	var relay peer.AddrInfo
	var fb *node
	runNAT(t, natCase{
		kinds:      [2]netns.NATKind{netns.EndpointIndependent, netns.Symmetric},
		relays:     []RelayService{{CircuitBytes: 64 << 10}},
		relayOpts:  []Option{WithForwarding(Forwarding{})},
		pubSession: true,
		subOpts: []Option{WithHolePunchWait(time.Second), WithPathFallback(func(ctx context.Context, p peer.ID, name string) (*Session, error) {
			return fb.Connect(ctx, relay) // the relay forwards name from p
		})},
		publish: func(t *testing.T, n *node) { live(t, publish(t, n, "cam")) },
		subscribe: func(t *testing.T, n *node, relays []peer.AddrInfo, circuit ma.Multiaddr) {
			relay, fb = relays[0], n
			s := dialCircuit(t, n, circuit)
			if p := s.Path(); p.Kind != PathRelayed || !p.Limited {
				t.Fatalf("path %s (limited %v), want a limited relayed circuit", p, p.Limited)
			}
			ctx := labCtx(t)
			tc, err := s.Subscribe(ctx, "cam", "video")
			if err != nil {
				t.Fatal(err)
			}
			defer tc.Close()
			var before, after int
			for after < 300 {
				g, err := tc.NextGroup(ctx)
				if err != nil {
					t.Fatalf("after %d groups on the circuit and %d after its cut: %v", before, after, err)
				}
				if _, err := g.ReadFrame(ctx); err != nil {
					continue // a group cut short with the circuit
				}
				if s.Err() == nil {
					before++
				} else {
					after++
				}
			}
			t.Logf("%d groups on the circuit, then it was cut (%v); %d more through the forwarding relay, no error", before, s.Err(), after)
		},
	})
}
