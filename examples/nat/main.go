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
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"strconv"
	"syscall"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/moqp2p/moqp2p/broadcast"
	"github.com/moqp2p/moqp2p/internal/netns"
	"github.com/moqp2p/moqp2p/internal/netns/natpeer"
	"github.com/moqp2p/moqp2p/moq"
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
	if why := netns.NATLabUnavailable(); why != "" {
		fmt.Printf("the NAT lab cannot run here: %s\n", why)
		if os.Getenv(netns.RequireEnv) != "" {
			return errors.New("the NAT lab is required (" + netns.RequireEnv + " is set)")
		}
		return nil
	}
	cmd := netns.InNewNamespaces(ctx, os.Args[1:]...)
	cmd.Env = append(os.Environ(), roleEnv+"=lab")
	cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
	return cmd.Run()
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
	relay, err := natpeer.Relay(l.WAN, moq.RelayService{Unlimited: true}, nil)
	if err != nil {
		return err
	}
	defer relay.Close()
	relayAddr := relay.Addr()
	fmt.Printf("2. relay: listening on %s\n", relayAddr)

	self, err := os.Executable()
	if err != nil {
		return err
	}
	in := func(ns, role string, env ...string) *exec.Cmd {
		cmd := l.Exec(ctx, ns, self, os.Args[1:]...)
		cmd.Env = append(append(os.Environ(), roleEnv+"="+role, "RELAY="+relayAddr), env...)
		cmd.Stderr = os.Stderr
		return cmd
	}
	circuit, stop, err := netns.StartAnnouncer(in(l.Sides[0].Host, "pub"), circuitLine, os.Stdout)
	if err != nil {
		return fmt.Errorf("the publisher: %w", err)
	}
	defer func() { _ = stop() }()
	s := in(l.Sides[1].Host, "sub", "CIRCUIT="+circuit)
	s.Stdout = os.Stdout
	return s.Run()
}

// circuitLine begins the publisher's line with its circuit address.
const circuitLine = "   circuit: "

// pub publishes frames on a track once a subscriber comes.
func pub(ctx context.Context, frames int) error {
	n, _, err := behindNAT()
	if err != nil {
		return err
	}
	defer n.Close()
	b := broadcast.New(broadcast.Config{Limits: broadcast.Limits{Backpressure: true}})
	tp, _ := b.CreateTrack(broadcast.Track{Name: "frames"})
	if _, err := n.Moq.Publish(ctx, "demo", b.Consume()); err != nil {
		return err
	}
	fmt.Println("3. publisher: knows it is private; reserving a slot on the relay")
	circuit, err := netns.WaitCircuit(ctx, n.Host)
	if err != nil {
		return err
	}
	if err := netns.WaitHolePunching(ctx, n.Host); err != nil {
		return err
	}
	fmt.Printf("%s%s/p2p/%s\n", circuitLine, circuit, n.Host.ID())
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

// behindNAT starts this peer's node, behind its NAT with the lab's relay
// (RELAY), which it returns too. A new session waits up to 3 s for a
// punched path before it starts on the relayed one.
func behindNAT() (*natpeer.Node, peer.AddrInfo, error) {
	relay, err := peer.AddrInfoFromString(os.Getenv("RELAY"))
	if err != nil {
		return nil, peer.AddrInfo{}, err
	}
	n, err := natpeer.BehindNAT(*relay, nil, moq.WithHolePunchWait(3*time.Second))
	return n, *relay, err
}

// sub reaches the publisher through the relay and reads every frame.
func sub(ctx context.Context, frames int) error {
	target, err := peer.AddrInfoFromString(os.Getenv("CIRCUIT"))
	if err != nil {
		return err
	}
	n, relay, err := behindNAT()
	if err != nil {
		return err
	}
	defer n.Close()
	// The relay is the subscriber's bootstrap too: it tells the
	// subscriber its public address, which hole punching needs.
	if err := n.Host.Connect(ctx, relay); err != nil {
		return err
	}
	if err := netns.WaitHolePunching(ctx, n.Host); err != nil {
		return err
	}
	fmt.Println("4. subscriber: connecting to the publisher through the relay's circuit")
	s, err := n.Moq.Connect(ctx, *target)
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
