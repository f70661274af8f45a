//go:build linux

package netns

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// natEnv marks the child process that runs a test inside a NATLab.
const natEnv = "MOQP2P_TEST_NAT_LAB"

// InNATLab reports whether this process is the child NATed started.
func InNATLab() bool { return os.Getenv(natEnv) != "" }

// NATed runs the calling test again in a child process inside new network
// and mount namespaces (which needs root and iptables), where it builds a
// NATLab with the two NATs given and returns it (run the test there; the lab
// is torn down with the test). In the parent it runs the child, relays its
// output and verdict, and returns nil; if the child cannot be started it
// returns an error.
func NATed(t *testing.T, kinds [2]NATKind, env ...string) (*NATLab, error) {
	if NATRole() != "" { // a process Role started: the lab exists
		var l NATLab
		if err := json.Unmarshal([]byte(os.Getenv(natEnv)), &l); err != nil {
			t.Fatalf("the NAT lab's description: %v", err)
		}
		return &l, nil
	}
	if InNATLab() {
		l, err := newNATLab(kinds)
		if err != nil {
			t.Fatalf("building the NAT lab: %v", err)
		}
		t.Cleanup(l.close)
		return l, nil
	}
	if why := NATLabUnavailable(); why != "" {
		return nil, errors.New("a NAT lab: " + why)
	}
	return nil, rerun(t, natEnv+"=1", fmt.Sprintf("in a NAT lab (%s, %s)", kinds[0], kinds[1]), env)
}

// BuildNATLab builds a NATLab in the calling process's network namespace,
// which must be a private one it owns (a program such as examples/nat
// re-executes itself with CLONE_NEWNET|CLONE_NEWNS first). close tears it
// down.
func BuildNATLab(kinds [2]NATKind) (l *NATLab, close func(), err error) {
	l, err = newNATLab(kinds)
	if err != nil {
		return nil, nil, err
	}
	return l, l.close, nil
}

func newNATLab(kinds [2]NATKind) (_ *NATLab, err error) {
	// Mounts made here (ip netns add binds the namespaces under /run/netns)
	// must not reach the host.
	if err := unix.Mount("", "/", "", unix.MS_REC|unix.MS_PRIVATE, ""); err != nil {
		return nil, fmt.Errorf("making mounts private: %w", err)
	}
	id := os.Getpid()
	l := &NATLab{WAN: "192.0.0.129", Others: []string{"192.0.0.130", "192.0.0.131", "192.0.0.132"}}
	defer func() {
		if err != nil {
			l.close()
		}
	}()
	if err := os.WriteFile("/proc/sys/net/ipv4/ip_forward", []byte("1"), 0); err != nil {
		return nil, err
	}
	run := func(name string, args ...string) error {
		if out, err := exec.Command(name, args...).CombinedOutput(); err != nil {
			return fmt.Errorf("%s %s: %v: %s", name, strings.Join(args, " "), err, out)
		}
		return nil
	}
	steps := [][]string{
		{"ip", "link", "set", "lo", "up"},
		// The WAN's own address sits on its loopback (not every kernel has
		// dummy devices); the NATs reach it through their uplinks.
		{"ip", "addr", "add", l.WAN + "/32", "dev", "lo"},
	}
	for _, a := range l.Others {
		steps = append(steps, []string{"ip", "addr", "add", a + "/32", "dev", "lo"})
	}
	for i, kind := range kinds {
		n := i + 1
		s := NATSide{
			Host:   fmt.Sprintf("moqnat%d-h%d", id, n),
			Router: fmt.Sprintf("moqnat%d-r%d", id, n),
			Addr:   fmt.Sprintf("10.66.%d.2", n),
			Public: fmt.Sprintf("192.0.0.%d", 130+8*n),
			Kind:   kind,
		}
		l.Sides[i] = s
		gw := fmt.Sprintf("192.0.0.%d", 129+8*n) // the WAN's end of the NAT's uplink
		lanGW := fmt.Sprintf("10.66.%d.1", n)
		wan, up := fmt.Sprintf("w%d", n), fmt.Sprintf("u%d", n)   // WAN side, NAT uplink
		lan, down := fmt.Sprintf("l%d", n), fmt.Sprintf("d%d", n) // host side, NAT downlink
		masq := []string{"ip", "netns", "exec", s.Router, "iptables", "-t", "nat", "-A", "POSTROUTING", "-o", up, "-j", "MASQUERADE"}
		if kind == Symmetric {
			masq = append(masq, "--random")
		}
		steps = append(steps,
			[]string{"ip", "netns", "add", s.Router},
			[]string{"ip", "netns", "add", s.Host},
			[]string{"ip", "link", "add", wan, "type", "veth", "peer", "name", up},
			[]string{"ip", "link", "set", up, "netns", s.Router},
			[]string{"ip", "addr", "add", gw + "/29", "dev", wan},
			[]string{"ip", "link", "set", wan, "up"},
			[]string{"ip", "-n", s.Router, "link", "set", "lo", "up"},
			[]string{"ip", "-n", s.Router, "addr", "add", s.Public + "/29", "dev", up},
			[]string{"ip", "-n", s.Router, "link", "set", up, "up"},
			[]string{"ip", "-n", s.Router, "route", "add", "default", "via", gw},
			[]string{"ip", "link", "add", lan, "type", "veth", "peer", "name", down},
			[]string{"ip", "link", "set", lan, "netns", s.Host},
			[]string{"ip", "link", "set", down, "netns", s.Router},
			[]string{"ip", "-n", s.Router, "addr", "add", lanGW + "/24", "dev", down},
			[]string{"ip", "-n", s.Router, "link", "set", down, "up"},
			[]string{"ip", "-n", s.Host, "link", "set", "lo", "up"},
			[]string{"ip", "-n", s.Host, "addr", "add", s.Addr + "/24", "dev", lan},
			[]string{"ip", "-n", s.Host, "link", "set", lan, "up"},
			[]string{"ip", "-n", s.Host, "route", "add", "default", "via", lanGW},
			[]string{"ip", "netns", "exec", s.Router, "sysctl", "-qw", "net.ipv4.ip_forward=1"},
			masq,
			// From the WAN only replies to flows the host opened.
			[]string{"ip", "netns", "exec", s.Router, "iptables", "-A", "FORWARD", "-i", up, "-o", down,
				"-m", "conntrack", "--ctstate", "ESTABLISHED,RELATED", "-j", "ACCEPT"},
			[]string{"ip", "netns", "exec", s.Router, "iptables", "-A", "FORWARD", "-i", up, "-o", down, "-j", "DROP"},
			// Unsolicited packets to the NAT's own address are dropped
			// before conntrack confirms a flow for them, as a home router
			// does: a confirmed flow from the peer's punch would make the
			// host's own flow to the peer clash with it on the way out,
			// and MASQUERADE would then give it another port.
			[]string{"ip", "netns", "exec", s.Router, "iptables", "-A", "INPUT", "-i", up,
				"-m", "conntrack", "--ctstate", "NEW,INVALID", "-j", "DROP"},
		)
	}
	for _, s := range steps {
		if err := run(s[0], s[1:]...); err != nil {
			return nil, err
		}
	}
	return l, nil
}

// roleEnv names the part a process plays in a NATLab test (see Role).
const roleEnv = "MOQP2P_TEST_NAT_ROLE"

// NATRole is the role this process was started with by NATLab.Role, or "".
func NATRole() string { return os.Getenv(roleEnv) }

// Role returns a command that runs the calling test again in namespace ns
// (a Host of the lab), as a process of its own with role (NATRole) and env
// added to its environment. A process of its own: a thread can switch
// namespaces, but libp2p reads the interfaces' addresses (to tell its own)
// from whatever thread it runs on. Stdout, stderr and stdin are the
// caller's to set.
func (l *NATLab) Role(ctx context.Context, t *testing.T, ns, role string, env ...string) *exec.Cmd {
	args := []string{"netns", "exec", ns, os.Args[0], "-test.run=^" + t.Name() + "$", "-test.count=1", "-test.timeout=5m"}
	if testing.Verbose() {
		args = append(args, "-test.v")
	}
	cmd := exec.CommandContext(ctx, "ip", args...)
	desc, _ := json.Marshal(l)
	cmd.Env = append(append(os.Environ(), roleEnv+"="+role, natEnv+"="+string(desc)), env...)
	return cmd
}

// Exec runs a command in namespace ns.
func (l *NATLab) Exec(ctx context.Context, ns, name string, args ...string) *exec.Cmd {
	return exec.CommandContext(ctx, "ip", append([]string{"netns", "exec", ns, name}, args...)...)
}

func (l *NATLab) close() {
	for _, s := range l.Sides {
		for _, ns := range []string{s.Host, s.Router} {
			if ns != "" {
				_ = exec.Command("ip", "netns", "del", ns).Run()
			}
		}
	}
}
