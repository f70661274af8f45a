//go:build !linux

package netns

import (
	"context"
	"os/exec"
)

// NATLabUnavailable says why BuildNATLab cannot work here: network
// namespaces exist on Linux only.
func NATLabUnavailable() string { return "network namespaces need Linux" }

// InNewNamespaces: network namespaces exist on Linux only.
func InNewNamespaces(ctx context.Context, _ ...string) *exec.Cmd {
	return exec.CommandContext(ctx, "false")
}
