// NAT runs two peers behind NATs on this machine and streams media between
// them, printing what happens at each step: the NATs are routers in Linux
// network namespaces (iptables MASQUERADE), with a relay node on the
// simulated internet between them. The publisher reserves a slot on the
// relay (it knows it is private), the subscriber reaches it through the
// relay's circuit, DCUtR hole punching opens a direct path through both
// NATs, and the moq session runs on raw QUIC there.
//
//	sudo go run ./examples/nat             # both NATs endpoint-independent: hole-punched
//	sudo go run ./examples/nat -symmetric  # one symmetric NAT: punching fails, media goes
//	                                       # through the relay's unlimited circuit
//
// The lab needs root (network namespaces) and iptables; without them the
// program says why and exits. Nothing leaves the machine: the lab's
// namespaces have no route out.
package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
	"github.com/libp2p/go-libp2p/p2p/protocol/holepunch"
	ma "github.com/multiformats/go-multiaddr"
	manet "github.com/multiformats/go-multiaddr/net"

	"github.com/moqp2p/moqp2p/broadcast"
	"github.com/moqp2p/moqp2p/internal/netns"
	"github.com/moqp2p/moqp2p/moq"
	"github.com/moqp2p/moqp2p/transport/p2pquic"
)

// roleEnv tells a re-executed copy of this program which part it plays.
const roleEnv = "MOQP2P_EXAMPLE_NAT_ROLE"

func main() {
	symmetric := flag.Bool("symmetric", false, "put the subscriber behind a symmetric NAT: punching fails, the relay carries the media")
	frames := flag.Int("frames", 1000, "frames to stream")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	var err error
	switch os.Getenv(roleEnv) {
	case "":
		err = start(ctx)
	case "lab":
		err = lab(ctx, *symmetric, *frames)
	case "pub":
		err = pub(ctx, *frames)
	case "sub":
		err = sub(ctx, *frames)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "nat:", err)
		os.Exit(1)
	}
}

// start re-executes this program as the lab's WAN, in network and mount
// namespaces of its own.
func start(ctx context.Context) error {
	if why := unavailable(); why != "" {
		fmt.Printf("the NAT lab cannot run here: %s\n", why)
		if os.Getenv(netns.RequireEnv) != "" {
			return errors.New("the NAT lab is required (" + netns.RequireEnv + " is set)")
		}
		return nil
	}
	cmd := exec.CommandContext(ctx, "/proc/self/exe", os.Args[1:]...)
	cmd.Env = append(os.Environ(), roleEnv+"=lab")
	cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Cloneflags: syscall.CLONE_NEWNET | syscall.CLONE_NEWNS}
	return cmd.Run()
}

func unavailable() string {
	switch {
	case runtime.GOOS != "linux":
		return "network namespaces need Linux"
	case os.Geteuid() != 0:
		return "network namespaces and iptables need root (sudo)"
	}
	if _, err := exec.LookPath("iptables"); err != nil {
		return "iptables is not installed"
	}
	return ""
}

// lab builds the NATs, runs the relay here on the WAN and the two peers
// behind their NATs.
func lab(ctx context.Context, symmetric bool, frames int) error {
	kinds := [2]netns.NATKind{netns.EndpointIndependent, netns.EndpointIndependent}
	if symmetric {
		kinds[1] = netns.Symmetric
	}
	l, teardown, err := netns.BuildNATLab(kinds)
	if err != nil {
		return err
	}
	defer teardown()
	fmt.Printf("1. lab: the internet is %s; ", l.WAN)
	for i, s := range l.Sides {
		fmt.Printf("peer %d is %s behind a %s NAT at %s", i+1, s.Addr, s.Kind, s.Public)
		if i == 0 {
			fmt.Print("; ")
		}
	}
	fmt.Println()

	// The relay: public, relaying circuits without limits (the fallback
	// when punching fails).
	relay, err := node(moq.HostConfig{
		AddrsFactory: only(l.WAN),
		NAT:          moq.NATConfig{Reachability: network.ReachabilityPublic, RelayService: &moq.RelayService{Unlimited: true}},
	})
	if err != nil {
		return err
	}
	defer relay.close()
	info := peer.AddrInfo{ID: relay.h.ID(), Addrs: relay.h.Addrs()}
	relayAddr := fmt.Sprintf("%s/p2p/%s", info.Addrs[0], info.ID)
	fmt.Printf("2. relay: listening on %s\n", relayAddr)

	self, err := os.Executable()
	if err != nil {
		return err
	}
	in := func(ns, role string, env ...string) *exec.Cmd {
		cmd := exec.CommandContext(ctx, "ip", append([]string{"netns", "exec", ns, self}, os.Args[1:]...)...)
		cmd.Env = append(append(os.Environ(), roleEnv+"="+role, "RELAY="+relayAddr), env...)
		cmd.Stderr = os.Stderr
		return cmd
	}
	p := in(l.Sides[0].Host, "pub")
	stdin, err := p.StdinPipe()
	if err != nil {
		return err
	}
	out, err := p.StdoutPipe()
	if err != nil {
		return err
	}
	if err := p.Start(); err != nil {
		return err
	}
	defer func() { _ = stdin.Close(); _ = p.Wait() }()
	circuit := ""
	sc := bufio.NewScanner(out)
	for circuit == "" && sc.Scan() {
		line := sc.Text()
		fmt.Println(line)
		if a, ok := strings.CutPrefix(line, "   circuit: "); ok {
			circuit = a
		}
	}
	if circuit == "" {
		return errors.New("the publisher ended before reserving a slot on the relay")
	}
	go func() { // the rest of the publisher's lines
		for sc.Scan() {
			fmt.Println(sc.Text())
		}
	}()
	s := in(l.Sides[1].Host, "sub", "CIRCUIT="+circuit)
	s.Stdout = os.Stdout
	return s.Run()
}

// pub publishes frames on a track once a subscriber comes.
func pub(ctx context.Context, frames int) error {
	relay, err := peer.AddrInfoFromString(os.Getenv("RELAY"))
	if err != nil {
		return err
	}
	n, err := behindNAT(*relay)
	if err != nil {
		return err
	}
	defer n.close()
	b := broadcast.New(broadcast.Config{Limits: broadcast.Limits{Backpressure: true}})
	tp, _ := b.CreateTrack(broadcast.Track{Name: "frames"})
	if _, err := n.m.Publish(ctx, "demo", b.Consume()); err != nil {
		return err
	}
	fmt.Println("3. publisher: knows it is private; reserving a slot on the relay")
	circuit, err := waitCircuit(ctx, n)
	if err != nil {
		return err
	}
	if err := punchReady(ctx, n); err != nil {
		return err
	}
	fmt.Printf("   circuit: %s/p2p/%s\n", circuit, n.h.ID())
	go func() {
		select {
		case <-tp.Used():
		case <-ctx.Done():
			return
		}
		for i := range frames {
			if tp.WaitRoom(ctx) != nil {
				return
			}
			if tp.WriteFrame([]byte(strconv.Itoa(i))) != nil {
				return
			}
		}
		_ = tp.Finish()
		fmt.Printf("6. publisher: sent %d frames\n", frames)
	}()
	_, _ = io.Copy(io.Discard, os.Stdin) // until the lab is done
	return nil
}

// sub reaches the publisher through the relay and reads every frame.
func sub(ctx context.Context, frames int) error {
	relay, err := peer.AddrInfoFromString(os.Getenv("RELAY"))
	if err != nil {
		return err
	}
	target, err := peer.AddrInfoFromString(os.Getenv("CIRCUIT"))
	if err != nil {
		return err
	}
	n, err := behindNAT(*relay)
	if err != nil {
		return err
	}
	defer n.close()
	// The relay is the subscriber's bootstrap too: it tells the
	// subscriber its public address, which hole punching needs.
	if err := n.h.Connect(ctx, *relay); err != nil {
		return err
	}
	if err := punchReady(ctx, n); err != nil {
		return err
	}
	fmt.Println("4. subscriber: connecting to the publisher through the relay's circuit")
	s, err := n.m.Connect(ctx, *target)
	if err != nil {
		return err
	}
	fmt.Printf("5. subscriber: session path: %s\n", s.Path())
	start := time.Now()
	tc, err := s.SubscribeWith(ctx, "demo", "frames", moq.SubscribeOptions{Backpressure: true, Start: new(uint64)})
	if err != nil {
		return err
	}
	defer tc.Close()
	got := 0
	var first time.Duration
	for got < frames {
		g, err := tc.RecvGroup(ctx)
		if err != nil {
			return fmt.Errorf("after %d frames: %w", got, err)
		}
		f, err := g.ReadFrame(ctx)
		if err != nil {
			return err
		}
		if string(f) != strconv.FormatUint(g.Sequence(), 10) {
			return fmt.Errorf("group %d holds %q", g.Sequence(), f)
		}
		if got == 0 {
			first = time.Since(start)
		}
		got++
	}
	fmt.Printf("7. subscriber: received %d frames, all intact; the first %s after Subscribe; path: %s\n",
		got, first.Round(time.Millisecond), s.Path().Kind)
	return nil
}

type peerNode struct {
	h host.Host
	m *moq.Moq
}

func (n *peerNode) close() {
	_ = n.m.Shutdown(context.Background())
	_ = n.h.Close()
}

// node starts a moqp2p node with moq-lite on raw QUIC.
func node(hc moq.HostConfig, opts ...moq.Option) (*peerNode, error) {
	q := p2pquic.New(p2pquic.Config{})
	hc.QUIC = q
	h, err := moq.NewHost(hc)
	if err != nil {
		return nil, err
	}
	m, err := moq.New(h, append([]moq.Option{moq.WithQUIC(q)}, opts...)...)
	if err != nil {
		_ = h.Close()
		return nil, err
	}
	return &peerNode{h: h, m: m}, nil
}

// behindNAT starts a node that knows it is private, reserves a slot on
// relay and hole-punches.
func behindNAT(relay peer.AddrInfo) (*peerNode, error) {
	return node(moq.HostConfig{
		AddrsFactory: notLoopback,
		NAT: moq.NATConfig{
			Reachability: network.ReachabilityPrivate, HolePunching: true,
			StaticRelays: []peer.AddrInfo{relay},
		},
	}, moq.WithHolePunchWait(3*time.Second))
}

// waitCircuit waits for the relay reservation: the host then advertises a
// circuit address.
func waitCircuit(ctx context.Context, n *peerNode) (ma.Multiaddr, error) {
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		for _, a := range n.h.Addrs() {
			if _, err := a.ValueForProtocol(ma.P_CIRCUIT); err == nil {
				return a, nil
			}
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-tick.C:
		}
	}
}

// punchReady waits until the node's hole-punching service runs: go-libp2p
// starts it once a peer (here the relay) told the host a public address of
// its own, and a relayed connection that arrives before is not punched.
func punchReady(ctx context.Context, n *peerNode) error {
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for !slices.Contains(n.h.Mux().Protocols(), protocol.ID(holepunch.Protocol)) {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-tick.C:
		}
	}
	return nil
}

func only(ip string) func([]ma.Multiaddr) []ma.Multiaddr {
	return func(addrs []ma.Multiaddr) []ma.Multiaddr {
		var out []ma.Multiaddr
		for _, a := range addrs {
			if got, err := manet.ToIP(a); err == nil && got.String() == ip {
				out = append(out, a)
			}
		}
		return out
	}
}

func notLoopback(addrs []ma.Multiaddr) []ma.Multiaddr {
	var out []ma.Multiaddr
	for _, a := range addrs {
		if !manet.IsIPLoopback(a) {
			out = append(out, a)
		}
	}
	return out
}
