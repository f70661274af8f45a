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
	l.lossMu.Lock()
	defer l.lossMu.Unlock()
	if l.lossRule != nil {
		if err := iptables(append([]string{"-D"}, l.lossRule...)...); err != nil {
			return err
		}
		l.lossRule = nil
	}
	if p <= 0 {
		return nil
	}
	// Every forwarded packet enters the TUN device exactly once (what
	// comes back out of it is forwarded again, to the other veth), so
	// matching on that output drops each packet at most once.
	rule := []string{"FORWARD", "-o", tunName, "-m", "statistic", "--mode", "random",
		"--probability", strconv.FormatFloat(p, 'f', 4, 64), "-j", "DROP"}
	if err := iptables(append([]string{"-A"}, rule...)...); err != nil {
		return err
	}
	l.lossRule = rule
	return nil
}

// KernelDropped is how many packets the SetKernelLoss rule dropped since
// it was last set (0 when there is none).
func (l *Link) KernelDropped() (uint64, error) {
	out, err := exec.Command("iptables", "-w", "-L", "FORWARD", "-v", "-x", "-n").CombinedOutput()
	if err != nil {
		return 0, fmt.Errorf("iptables -L: %v: %s", err, out)
	}
	for line := range strings.Lines(string(out)) {
		f := strings.Fields(line)
		if len(f) > 3 && f[2] == "DROP" && strings.Contains(line, "statistic") {
			return strconv.ParseUint(f[0], 10, 64)
		}
	}
	return 0, nil
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
