//go:build linux

package netns

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// Env marks the child process that runs a test inside private namespaces.
const Env = "MOQP2P_TEST_PRIVATE_NETNS"

// InChild reports whether this process is such a child.
func InChild() bool { return os.Getenv(Env) != "" }

// Private runs the calling test again in a child process inside new user and
// network namespaces: there the only interface is a loopback that the child
// brings up with multicast on, so multicast (mDNS) cannot leave loopback and
// the host's network configuration is untouched. env is added to the child's
// environment. In the child it configures lo and returns true (run the
// test). In the parent it runs the child, relays its output and verdict, and
// returns false; if the namespaces cannot be created it returns false and an
// error.
func Private(t *testing.T, env ...string) (child bool, err error) {
	if InChild() {
		if err := loopbackUpWithMulticast(); err != nil {
			t.Fatalf("configuring lo in the private network namespace: %v", err)
		}
		return true, nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, os.Args[0], childArgs(t, 90*time.Second)...)
	cmd.Env = append(append(os.Environ(), Env+"=1"), env...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Cloneflags: syscall.CLONE_NEWNET}
	if os.Getuid() != 0 { // root needs no user namespace (and some kernels refuse one)
		cmd.SysProcAttr.Cloneflags |= syscall.CLONE_NEWUSER
		cmd.SysProcAttr.UidMappings = []syscall.SysProcIDMap{{ContainerID: 0, HostID: os.Getuid(), Size: 1}}
		cmd.SysProcAttr.GidMappings = []syscall.SysProcIDMap{{ContainerID: 0, HostID: os.Getgid(), Size: 1}}
	}
	out, err := cmd.CombinedOutput()
	var exit *exec.ExitError
	if err != nil && !errors.As(err, &exit) {
		return false, err // could not start: no namespaces for us
	}
	relayChild(t, "in a private network namespace (only lo, multicast on)", out, err)
	return false, nil
}

// loopbackUpWithMulticast sets IFF_UP and IFF_MULTICAST on lo.
func loopbackUpWithMulticast() error {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	ifr, err := unix.NewIfreq("lo")
	if err != nil {
		return err
	}
	if err := unix.IoctlIfreq(fd, unix.SIOCGIFFLAGS, ifr); err != nil {
		return fmt.Errorf("reading lo's flags: %w", err)
	}
	ifr.SetUint16(ifr.Uint16() | unix.IFF_UP | unix.IFF_MULTICAST)
	if err := unix.IoctlIfreq(fd, unix.SIOCSIFFLAGS, ifr); err != nil {
		return fmt.Errorf("setting lo's flags: %w", err)
	}
	return nil
}
