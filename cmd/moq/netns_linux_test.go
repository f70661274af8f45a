//go:build linux

package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// netnsEnv marks the child process that runs a test inside private
// namespaces; binEnv hands it the moq binary the parent built.
const (
	netnsEnv = "MOQP2P_TEST_PRIVATE_NETNS"
	binEnv   = "MOQP2P_TEST_MOQ_BIN"
)

// inPrivateNetns runs the calling test again in a child process inside new
// user and network namespaces, whose only interface is a loopback the child
// brings up with multicast on: the moq processes it starts there can
// multicast (mDNS) without leaving loopback or touching the host's network.
// In the child it configures lo and returns true (run the test). In the
// parent it runs the child, relays its output and verdict, and returns
// false; if the namespaces cannot be created it returns an error.
func inPrivateNetns(t *testing.T) (child bool, err error) {
	if os.Getenv(netnsEnv) != "" {
		if err := loopbackUpWithMulticast(); err != nil {
			t.Fatalf("configuring lo in the private network namespace: %v", err)
		}
		return true, nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	args := []string{"-test.run=^" + t.Name() + "$", "-test.count=1", "-test.timeout=90s"}
	if testing.Verbose() {
		args = append(args, "-test.v")
	}
	cmd := exec.CommandContext(ctx, os.Args[0], args...)
	cmd.Env = append(os.Environ(), netnsEnv+"=1", binEnv+"="+moqBin)
	cmd.SysProcAttr = &syscall.SysProcAttr{
		Cloneflags:  syscall.CLONE_NEWUSER | syscall.CLONE_NEWNET,
		UidMappings: []syscall.SysProcIDMap{{ContainerID: 0, HostID: os.Getuid(), Size: 1}},
		GidMappings: []syscall.SysProcIDMap{{ContainerID: 0, HostID: os.Getgid(), Size: 1}},
	}
	out, err := cmd.CombinedOutput()
	var exit *exec.ExitError
	if err != nil && !errors.As(err, &exit) {
		return false, err // could not start: no namespaces for us
	}
	t.Logf("in a private network namespace (only lo, multicast on):\n%s", out)
	switch {
	case err != nil:
		t.Fatalf("the test failed in the private network namespace: %v", err)
	case strings.Contains(string(out), "--- SKIP: "+t.Name()):
		t.Skip("skipped in the private network namespace (see its output)")
	}
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
