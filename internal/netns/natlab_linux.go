//go:build linux

package netns

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"syscall"
	"testing"
	"time"
)

// NATLabUnavailable says why BuildNATLab cannot work here, or "" if it
// can: it needs Linux, root and iptables.
func NATLabUnavailable() string {
	if os.Geteuid() != 0 {
		return "network namespaces and iptables need root (sudo)"
	}
	if _, err := exec.LookPath("iptables"); err != nil {
		return "iptables is not installed (apt-get install iptables)"
	}
	return ""
}

// InNewNamespaces returns a command that runs this program again with args,
// in network and mount namespaces of its own, where it may BuildNATLab.
func InNewNamespaces(ctx context.Context, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, "/proc/self/exe", args...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Cloneflags: syscall.CLONE_NEWNET | syscall.CLONE_NEWNS}
	return cmd
}

// rerun runs the calling test again in a child process inside new network
// and mount namespaces, with mark ("NAME=value") and env added to its
// environment, and relays its output (as where it ran) and verdict: a
// skip there is a skip here, as for Private. It returns an error only if
// the child could not be started.
func rerun(t *testing.T, mark, where string, env []string) error {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, os.Args[0], childArgs(t, 9*time.Minute)...)
	cmd.Env = append(append(os.Environ(), mark), env...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Cloneflags: syscall.CLONE_NEWNET | syscall.CLONE_NEWNS}
	out, err := cmd.CombinedOutput()
	var exit *exec.ExitError
	if err != nil && !errors.As(err, &exit) {
		return err
	}
	relayChild(t, where, out, err)
	return nil
}
