package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/moqp2p/moqp2p/broadcast"
	"github.com/moqp2p/moqp2p/internal/netns"
	"github.com/moqp2p/moqp2p/internal/netns/natpeer"
	"github.com/moqp2p/moqp2p/moq"
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

// natResult is what the lab prints: milliseconds per run, and the path
// of each run behind the NATs.
type natResult struct {
	NAT   []float64 `json:"nat"`
	Open  []float64 `json:"open"`
	Paths []string  `json:"paths"`
}

// runNATRow is P10.
func runNATRow(ctx context.Context, cfg config) []*line {
	l := &line{Row: "P10", Metric: "Connect to first frame behind two NATs, ms"}
	if why := netns.NATLabUnavailable(); why != "" {
		l.Note = "skipped: the NAT lab cannot run here: " + why
		return []*line{l}
	}
	logf("P10: Connect to first frame behind two NATs and on the open network, %d runs", cfg.runs)
	ctx, cancel := context.WithTimeout(ctx, time.Duration(cfg.runs)*time.Minute)
	defer cancel()
	cmd := netns.InNewNamespaces(ctx, "-nat-helper", "lab", "-runs", fmt.Sprint(cfg.runs))
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
	l.Note = "raw column: the same subscription on the open network (no NAT, direct dial); ours: through the relay's circuit, DCUtR, then raw QUIC on the punched path; paths by run: " + strings.Join(r.Paths, ", ")
	l.Target = "every run behind the NATs hole-punched"
	l.Check = func(*line) any { return allPunched(r.Paths) }
	if !allPunched(r.Paths) {
		l.Note += " (NOT every run was hole-punched: the times of the others are not the punched path's)"
	}
	return []*line{l}
}

// allPunched reports whether every run's path is hole-punched (and there
// was a run).
func allPunched(paths []string) bool {
	for _, p := range paths {
		if p != moq.PathHolePunched.String() {
			return false
		}
	}
	return len(paths) > 0
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
	rn, err := natpeer.Relay(lab.WAN, moq.RelayService{}, quietLogger())
	if err != nil {
		return err
	}
	defer rn.Close()
	relay := rn.Addr()
	var res natResult
	for run := range runs {
		for _, behind := range []bool{true, false} {
			ms, path, err := natOnce(ctx, lab, relay, behind)
			if err != nil {
				return fmt.Errorf("run %d (NAT %v): %w", run+1, behind, err)
			}
			logf("P10 run %d %s: %.1f ms (%s)", run+1, map[bool]string{true: "behind NATs", false: "open network"}[behind], ms, path)
			if behind {
				res.NAT, res.Paths = append(res.NAT, ms), append(res.Paths, path)
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
	pub.Stderr = os.Stderr
	addr, stop, err := netns.StartAnnouncer(pub, "ADDR ", nil)
	if err != nil {
		return 0, "", err
	}
	defer func() { _ = stop() }()
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
	defer n.Close()
	b := broadcast.New(broadcast.Config{})
	tp, _ := b.CreateTrack(broadcast.Track{Name: "t"})
	if _, err := n.Moq.Publish(ctx, "p10", b.Consume()); err != nil {
		return err
	}
	addr := n.Addr()
	if relay != "" {
		circuit, err := netns.WaitCircuit(ctx, n.Host)
		if err != nil {
			return err
		}
		if err := netns.WaitHolePunching(ctx, n.Host); err != nil {
			return err
		}
		addr = fmt.Sprintf("%s/p2p/%s", circuit, n.Host.ID())
	}
	fmt.Printf("ADDR %s\n", addr)
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
	defer n.Close()
	if relay != "" {
		// The relay is the subscriber's bootstrap: connected before the
		// clock starts, as a node that joined the network is.
		ri, err := peer.AddrInfoFromString(relay)
		if err != nil {
			return err
		}
		if err := n.Host.Connect(ctx, *ri); err != nil {
			return err
		}
		if err := netns.WaitHolePunching(ctx, n.Host); err != nil {
			return err
		}
	}
	start := time.Now()
	s, err := n.Moq.Connect(ctx, *target)
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

// natPeer is a node behind a NAT with relay as its relay, or one on the
// open network when relay is empty.
func natPeer(relay string) (*natpeer.Node, error) {
	if relay == "" {
		return natpeer.Start(moq.HostConfig{AddrsFactory: netns.NotLoopback}, quietLogger())
	}
	ri, err := peer.AddrInfoFromString(relay)
	if err != nil {
		return nil, err
	}
	return natpeer.BehindNAT(*ri, quietLogger())
}
