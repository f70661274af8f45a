//go:build linux

package netns

import (
	"fmt"
	"os/exec"
	"runtime"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// SetKernelLoss makes the kernel drop each packet the link forwards, in
// either direction, with probability p (iptables' statistic match in the
// router's FORWARD chain), on top of the link's own Impairment; 0 removes
// the rule. Unlike Impairment.Loss it is the kernel's netfilter that drops,
// as on a real router. Call it in the router (the process Routed returned
// a Link to); it needs the iptables command.
func (l *Link) SetKernelLoss(p float64) error {
	// Every forwarded packet enters the TUN device exactly once (what
	// comes back out of it is forwarded again, to the other veth), so
	// matching on that output drops each packet at most once.
	return l.setLoss(&l.lossRule, p, "FORWARD", "-o", tunName)
}

// SetLoopbackLoss makes the kernel drop each UDP packet sent over the
// router's own loopback with probability p (iptables' statistic match on
// lo's input; 0 removes the rule): loss between endpoints that run in the
// router process on 127.0.0.1, for sockets that cannot be made inside the
// link's namespaces (In). The router's namespace is the test's own, so
// nothing else is on that loopback.
func (l *Link) SetLoopbackLoss(p float64) error {
	return l.setLoss(&l.loRule, p, "INPUT", "-i", "lo", "-p", "udp")
}

// setLoss replaces the rule in *slot with one dropping matches with
// probability p (none for 0).
func (l *Link) setLoss(slot *[]string, p float64, match ...string) error {
	l.lossMu.Lock()
	defer l.lossMu.Unlock()
	if *slot != nil {
		if err := iptables(append([]string{"-D"}, *slot...)...); err != nil {
			return err
		}
		*slot = nil
	}
	if p <= 0 {
		return nil
	}
	rule := append(match, "-m", "statistic", "--mode", "random",
		"--probability", strconv.FormatFloat(p, 'f', 4, 64), "-j", "DROP")
	if err := iptables(append([]string{"-A"}, rule...)...); err != nil {
		return err
	}
	*slot = rule
	return nil
}

// KernelDropped is how many packets the SetKernelLoss and SetLoopbackLoss
// rules dropped since they were last set (0 when there are none).
func (l *Link) KernelDropped() (uint64, error) {
	var n uint64
	for _, chain := range []string{"FORWARD", "INPUT"} {
		c, err := dropped(chain)
		if err != nil {
			return 0, err
		}
		n += c
	}
	return n, nil
}

// dropped sums the packet counters of the statistic DROP rules in chain.
func dropped(chain string) (uint64, error) {
	out, err := exec.Command("iptables", "-w", "-L", chain, "-v", "-x", "-n").CombinedOutput()
	if err != nil {
		return 0, fmt.Errorf("iptables -L: %v: %s", err, out)
	}
	var n uint64
	for line := range strings.Lines(string(out)) {
		f := strings.Fields(line)
		if len(f) > 3 && f[2] == "DROP" && strings.Contains(line, "statistic") {
			c, err := strconv.ParseUint(f[0], 10, 64)
			if err != nil {
				return 0, err
			}
			n += c
		}
	}
	return n, nil
}

func iptables(args ...string) error {
	// -w: wait for the xtables lock, which other namespaces' iptables
	// commands share (it is a file).
	out, err := exec.Command("iptables", append([]string{"-w"}, args...)...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("iptables %s: %v: %s", strings.Join(args, " "), err, out)
	}
	return nil
}

// In runs f on an OS thread inside the link's namespace ns (l.A or l.B),
// and returns once f has: sockets f creates belong to ns for good, so a
// listener, a UDP socket or a dialed connection made there can then be used
// from anywhere in the process. Only f's own goroutine is in ns: sockets
// created by goroutines it starts are not (dial IP literals, one address:
// net.Dialer creates that socket in the caller's goroutine).
func (l *Link) In(ns string, f func()) error {
	fd, err := unix.Open("/run/netns/"+ns, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("opening namespace %s: %w", ns, err)
	}
	defer unix.Close(fd)
	errc := make(chan error, 1)
	go func() {
		// Never unlocked: the thread ends with this goroutine rather than
		// run other goroutines in the wrong namespace.
		runtime.LockOSThread()
		if err := unix.Setns(fd, unix.CLONE_NEWNET); err != nil {
			errc <- fmt.Errorf("entering namespace %s: %w", ns, err)
			return
		}
		f()
		errc <- nil
	}()
	return <-errc
}
