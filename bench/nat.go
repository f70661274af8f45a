package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"runtime"
	"slices"
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

// P10 measures the time from Connect to the first frame of a subscription
// behind two NATs (endpoint-independent MASQUERADE routers in network
// namespaces, a relay on the simulated internet: the subscriber reaches the
// publisher over the relay's circuit, DCUtR punches a hole, the session
// runs on raw QUIC through it) next to the same subscription between the
// same kind of processes on the open network (the lab's internet, dialed
// directly), in the same run. Each end is a process of its own:
//
//	bench -nat-helper lab -runs N            (the lab, in its own namespaces)
//	bench -nat-helper pub [-relay ADDR]      (prints "ADDR <multiaddr>")
//	bench -nat-helper sub [-relay ADDR] -addr MULTIADDR
//	                                         (prints {"elapsed_ns":T,"path":P})
//
// It needs root and iptables; without them the row says so.

// natResult is what the lab prints: milliseconds per run.
type natResult struct {
	NAT  []float64 `json:"nat"`
	Open []float64 `json:"open"`
	Path string    `json:"path"`
}

// runNATRow is P10.
func runNATRow(ctx context.Context, cfg config) []*line {
	l := &line{Row: "P10", Metric: "Connect to first frame behind two NATs, ms"}
	switch {
	case runtime.GOOS != "linux":
		l.Note = "skipped: network namespaces need Linux"
		return []*line{l}
	case os.Geteuid() != 0:
		l.Note = "skipped: the NAT lab needs root"
		return []*line{l}
	}
	if _, err := exec.LookPath("iptables"); err != nil {
		l.Note = "skipped: the NAT lab needs iptables"
		return []*line{l}
	}
	logf("P10: Connect to first frame behind two NATs and on the open network, %d runs", cfg.runs)
	ctx, cancel := context.WithTimeout(ctx, time.Duration(cfg.runs)*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "/proc/self/exe", "-nat-helper", "lab", "-runs", fmt.Sprint(cfg.runs))
	cmd.SysProcAttr = &syscall.SysProcAttr{Cloneflags: syscall.CLONE_NEWNET | syscall.CLONE_NEWNS}
	cmd.Stderr = os.Stderr
	out, err := cmd.Output()
	var r natResult
	if err == nil {
		err = json.Unmarshal(out, &r)
	}
	if err != nil {
		l.Note = fmt.Sprintf("failed: %v", err)
		return []*line{l}
	}
	l.Ours, l.Raw = r.NAT, r.Open
	l.Note = "raw column: the same subscription on the open network (no NAT, direct dial); ours: through the relay's circuit, DCUtR, then raw QUIC on the punched path (" + r.Path + ")"
	return []*line{l}
}

// natHelperMain runs a part of P10 and exits.
func natHelperMain(args []string) {
	fs := flag.NewFlagSet("bench -nat-helper", flag.ExitOnError)
	part := fs.String("nat-helper", "", "lab, pub or sub")
	runs := fs.Int("runs", 3, "lab: runs")
	relay := fs.String("relay", "", "pub, sub: the relay (behind a NAT); none: open network")
	addr := fs.String("addr", "", "sub: the publisher")
	_ = fs.Parse(args)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	var err error
	switch *part {
	case "lab":
		err = natLab(ctx, *runs)
	case "pub":
		err = natPub(ctx, *relay)
	case "sub":
		err = natSub(ctx, *relay, *addr)
	default:
		err = fmt.Errorf("unknown part %q", *part)
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "bench -nat-helper %s: %v\n", *part, err)
		os.Exit(1)
	}
}

// natLab builds the lab and times runs subscriptions each way.
func natLab(ctx context.Context, runs int) error {
	lab, teardown, err := netns.BuildNATLab([2]netns.NATKind{netns.EndpointIndependent, netns.EndpointIndependent})
	if err != nil {
		return err
	}
	defer teardown()
	rn, err := natNode(moq.HostConfig{
		AddrsFactory: onlyIP(lab.WAN),
		NAT:          moq.NATConfig{Reachability: network.ReachabilityPublic, RelayService: &moq.RelayService{}},
	})
	if err != nil {
		return err
	}
	defer rn.close()
	relay := fmt.Sprintf("%s/p2p/%s", rn.h.Addrs()[0], rn.h.ID())
	var res natResult
	for run := range runs {
		for _, behind := range []bool{true, false} {
			ms, path, err := natOnce(ctx, lab, relay, behind)
			if err != nil {
				return fmt.Errorf("run %d (NAT %v): %w", run+1, behind, err)
			}
			logf("P10 run %d %s: %.1f ms (%s)", run+1, map[bool]string{true: "behind NATs", false: "open network"}[behind], ms, path)
			if behind {
				res.NAT, res.Path = append(res.NAT, ms), path
			} else {
				res.Open = append(res.Open, ms)
			}
		}
	}
	return json.NewEncoder(os.Stdout).Encode(res)
}

// natOnce runs a publisher and a subscriber process: behind the lab's
// NATs, or both on its internet.
func natOnce(ctx context.Context, lab *netns.NATLab, relay string, behind bool) (float64, string, error) {
	self, err := os.Executable() // not /proc/self/exe: under ip netns exec, that is ip
	if err != nil {
		return 0, "", err
	}
	cmd := func(ns string, args ...string) *exec.Cmd {
		args = append([]string{"-nat-helper"}, args...)
		if behind {
			args = append(args, "-relay", relay)
			return lab.Exec(ctx, ns, self, args...)
		}
		return exec.CommandContext(ctx, self, args...)
	}
	pub := cmd(lab.Sides[0].Host, "pub")
	stdin, err := pub.StdinPipe()
	if err != nil {
		return 0, "", err
	}
	out, err := pub.StdoutPipe()
	if err != nil {
		return 0, "", err
	}
	pub.Stderr = os.Stderr
	if err := pub.Start(); err != nil {
		return 0, "", err
	}
	defer func() { _ = stdin.Close(); _ = pub.Wait() }()
	sc := bufio.NewScanner(out)
	addr := ""
	for addr == "" && sc.Scan() {
		addr, _ = strings.CutPrefix(sc.Text(), "ADDR ")
	}
	if addr == "" {
		return 0, "", errors.New("the publisher printed no address")
	}
	go func() { _, _ = io.Copy(io.Discard, out) }()
	sub := cmd(lab.Sides[1].Host, "sub", "-addr", addr)
	sub.Stderr = os.Stderr
	line, err := sub.Output()
	if err != nil {
		return 0, "", err
	}
	var r struct {
		ElapsedNS int64  `json:"elapsed_ns"`
		Path      string `json:"path"`
	}
	if err := json.Unmarshal(line, &r); err != nil {
		return 0, "", err
	}
	return float64(r.ElapsedNS) / 1e6, r.Path, nil
}

// natPub publishes a track that gets a frame every millisecond once it is
// used, and prints the address to subscribe at.
func natPub(ctx context.Context, relay string) error {
	n, err := natPeer(relay)
	if err != nil {
		return err
	}
	defer n.close()
	b := broadcast.New(broadcast.Config{})
	tp, _ := b.CreateTrack(broadcast.Track{Name: "t"})
	if _, err := n.m.Publish(ctx, "p10", b.Consume()); err != nil {
		return err
	}
	addr := n.h.Addrs()[0]
	if relay != "" {
		if addr, err = natReady(ctx, n.h, true); err != nil {
			return err
		}
	}
	fmt.Printf("ADDR %s/p2p/%s\n", addr, n.h.ID())
	go func() {
		select {
		case <-tp.Used():
		case <-ctx.Done():
			return
		}
		tick := time.NewTicker(time.Millisecond)
		defer tick.Stop()
		for {
			if tp.WriteFrame([]byte("frame")) != nil {
				return
			}
			select {
			case <-tick.C:
			case <-ctx.Done():
				return
			}
		}
	}()
	_, _ = io.Copy(io.Discard, os.Stdin)
	return nil
}

// natSub times Connect and Subscribe to the first frame.
func natSub(ctx context.Context, relay, addr string) error {
	target, err := peer.AddrInfoFromString(addr)
	if err != nil {
		return err
	}
	n, err := natPeer(relay)
	if err != nil {
		return err
	}
	defer n.close()
	if relay != "" {
		// The relay is the subscriber's bootstrap: connected before the
		// clock starts, as a node that joined the network is.
		ri, err := peer.AddrInfoFromString(relay)
		if err != nil {
			return err
		}
		if err := n.h.Connect(ctx, *ri); err != nil {
			return err
		}
		if _, err := natReady(ctx, n.h, false); err != nil {
			return err
		}
	}
	start := time.Now()
	s, err := n.m.Connect(ctx, *target)
	if err != nil {
		return err
	}
	tc, err := s.Subscribe(ctx, "p10", "t")
	if err != nil {
		return err
	}
	defer tc.Close()
	g, err := tc.NextGroup(ctx)
	if err != nil {
		return err
	}
	if _, err := g.ReadFrame(ctx); err != nil {
		return err
	}
	return json.NewEncoder(os.Stdout).Encode(map[string]any{"elapsed_ns": time.Since(start).Nanoseconds(), "path": s.Path().Kind.String()})
}

// natReady waits until h hole-punches (go-libp2p starts the service once a
// peer told the host its public address) and, for a publisher, holds a
// relay slot; it returns the circuit address.
func natReady(ctx context.Context, h host.Host, circuit bool) (ma.Multiaddr, error) {
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
		var addr ma.Multiaddr
		for _, a := range h.Addrs() {
			if _, err := a.ValueForProtocol(ma.P_CIRCUIT); err == nil {
				addr = a
			}
		}
		punching := slices.Contains(h.Mux().Protocols(), protocol.ID(holepunch.Protocol))
		if punching && (!circuit || addr != nil) {
			return addr, nil
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-tick.C:
		}
	}
}

type natPeerNode struct {
	h host.Host
	m *moq.Moq
}

func (n *natPeerNode) close() {
	_ = n.m.Shutdown(context.Background())
	_ = n.h.Close()
}

// natPeer is a node behind a NAT with relay as its relay, or one on the
// open network when relay is empty.
func natPeer(relay string) (*natPeerNode, error) {
	if relay == "" {
		return natNode(moq.HostConfig{AddrsFactory: notLoopback})
	}
	ri, err := peer.AddrInfoFromString(relay)
	if err != nil {
		return nil, err
	}
	return natNode(moq.HostConfig{AddrsFactory: notLoopback, NAT: moq.NATConfig{
		Reachability: network.ReachabilityPrivate, HolePunching: true, StaticRelays: []peer.AddrInfo{*ri},
	}})
}

func natNode(hc moq.HostConfig) (*natPeerNode, error) {
	q := p2pquic.New(p2pquic.Config{Logger: quietLogger()})
	hc.QUIC = q
	h, err := moq.NewHost(hc)
	if err != nil {
		return nil, err
	}
	m, err := moq.New(h, moq.WithQUIC(q), moq.WithLogger(quietLogger()))
	if err != nil {
		_ = h.Close()
		return nil, err
	}
	return &natPeerNode{h: h, m: m}, nil
}

func onlyIP(ip string) func([]ma.Multiaddr) []ma.Multiaddr {
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
