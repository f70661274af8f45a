//go:build linux

package netns

import (
	"context"
	"os"
	"os/exec"
	"syscall"
)

// NATLabUnavailable says why BuildNATLab cannot work here, or "" if it
// can: it needs Linux, root and iptables.
func NATLabUnavailable() string {
	if os.Geteuid() != 0 {
		return "network namespaces and iptables need root (sudo)"
	}
	if _, err := exec.LookPath("iptables"); err != nil {
		return "iptables is not installed"
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
