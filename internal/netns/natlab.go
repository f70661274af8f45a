package netns

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"slices"
	"strings"
	"time"

	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/protocol"
	"github.com/libp2p/go-libp2p/p2p/protocol/holepunch"
	ma "github.com/multiformats/go-multiaddr"
	manet "github.com/multiformats/go-multiaddr/net"
)

// What programs that drive a NATLab (bench's NAT row, examples/nat) share:
// which addresses a lab node advertises, waiting for its relay reservation
// and its hole-punching service, and a process that prints where to reach
// it.

// NotLoopback is a libp2p address factory that leaves out loopback
// addresses: a lab host's loopback is its own namespace's, useless to a
// peer in another.
func NotLoopback(addrs []ma.Multiaddr) []ma.Multiaddr {
	return slices.DeleteFunc(slices.Clone(addrs), manet.IsIPLoopback)
}

// OnlyIP is a libp2p address factory that keeps the addresses on ip, for
// a node on the lab's WAN, which has several.
func OnlyIP(ip string) func([]ma.Multiaddr) []ma.Multiaddr {
	return func(addrs []ma.Multiaddr) []ma.Multiaddr {
		return slices.DeleteFunc(slices.Clone(addrs), func(a ma.Multiaddr) bool {
			got, err := manet.ToIP(a)
			return err != nil || got.String() != ip
		})
	}
}

// labPoll is how often the waits below look at the host: go-libp2p
// announces neither event on a bus the waits could use for both.
const labPoll = 10 * time.Millisecond

// WaitCircuit waits until h holds a relay reservation, which it then
// advertises as a circuit address, and returns that address.
func WaitCircuit(ctx context.Context, h host.Host) (ma.Multiaddr, error) {
	return poll(ctx, func() (ma.Multiaddr, bool) {
		for _, a := range h.Addrs() {
			if _, err := a.ValueForProtocol(ma.P_CIRCUIT); err == nil {
				return a, true
			}
		}
		return nil, false
	})
}

// WaitHolePunching waits until h's hole-punching service runs: go-libp2p
// starts it once a peer (in the lab, the relay) told the host a public
// address of its own, and a relayed connection that arrives before is not
// punched.
func WaitHolePunching(ctx context.Context, h host.Host) error {
	_, err := poll(ctx, func() (struct{}, bool) {
		return struct{}{}, slices.Contains(h.Mux().Protocols(), protocol.ID(holepunch.Protocol))
	})
	return err
}

func poll[T any](ctx context.Context, ready func() (T, bool)) (T, error) {
	tick := time.NewTicker(labPoll)
	defer tick.Stop()
	for {
		if v, ok := ready(); ok {
			return v, nil
		}
		select {
		case <-ctx.Done():
			var zero T
			return zero, ctx.Err()
		case <-tick.C:
		}
	}
}

// StartAnnouncer starts cmd, a process that prints where to reach it on a
// line that begins with prefix and then serves until its stdin ends, and
// returns what follows the prefix. Its output lines go to echo, or are
// discarded if echo is nil. stop closes its stdin and waits for it to
// exit. cmd's Stdin and Stdout must be unset.
func StartAnnouncer(cmd *exec.Cmd, prefix string, echo io.Writer) (addr string, stop func() error, err error) {
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return "", nil, err
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return "", nil, err
	}
	if echo == nil {
		echo = io.Discard
	}
	if err := cmd.Start(); err != nil {
		return "", nil, err
	}
	sc := bufio.NewScanner(out)
	for addr == "" && sc.Scan() {
		fmt.Fprintln(echo, sc.Text())
		if a, ok := strings.CutPrefix(sc.Text(), prefix); ok {
			addr = a
		}
	}
	rest := make(chan struct{})
	go func() { // the rest of its lines, until it exits
		defer close(rest)
		for sc.Scan() {
			fmt.Fprintln(echo, sc.Text())
		}
		_, _ = io.Copy(io.Discard, out) // past a line too long to scan
	}()
	stop = func() error {
		_ = stdin.Close()
		<-rest // its last lines: Wait closes the pipe
		return cmd.Wait()
	}
	if addr == "" {
		_ = stop()
		return "", nil, errors.New("the process ended before it printed a line " + strings.TrimSpace(prefix))
	}
	return addr, stop, nil
}
