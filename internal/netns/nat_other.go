//go:build !linux

package netns

import (
	"context"
	"errors"
	"os/exec"
	"testing"
)

var errNoNetns = errors.New("network namespaces need Linux")

// InNATLab reports whether this process is the child NATed started.
func InNATLab() bool { return false }

// NATed: network namespaces exist on Linux only.
func NATed(*testing.T, [2]NATKind, ...string) (*NATLab, error) { return nil, errNoNetns }

// BuildNATLab: network namespaces exist on Linux only.
func BuildNATLab([2]NATKind) (*NATLab, func(), error) { return nil, nil, errNoNetns }

// Exec runs a command in namespace ns: Linux only.
func (l *NATLab) Exec(ctx context.Context, _ string, name string, args ...string) *exec.Cmd {
	return exec.CommandContext(ctx, name, args...)
}

// NATRole is the role this process was started with by NATLab.Role, or "".
func NATRole() string { return "" }

// Role returns a command that runs the test in namespace ns: Linux only.
func (l *NATLab) Role(ctx context.Context, _ *testing.T, _, _ string, _ ...string) *exec.Cmd {
	return exec.CommandContext(ctx, "false")
}
