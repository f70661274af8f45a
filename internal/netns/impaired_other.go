//go:build !linux

package netns

import (
	"context"
	"errors"
	"os/exec"
	"testing"
	"time"
)

// Impairment is what a Link does to each packet: a delay and random loss.
type Impairment struct {
	Delay time.Duration // one way
	Loss  float64       // probability that a packet is dropped, 0 to 1
}

// Link is two network namespaces joined by an impaired path: Linux only.
type Link struct {
	A, B         string
	AddrA, AddrB string
}

// InRouter reports whether this process is the child that Routed started.
func InRouter() bool { return false }

// Routed: network namespaces exist on Linux only.
func Routed(*testing.T, Impairment, ...string) (*Link, error) {
	return nil, errors.New("network namespaces need Linux")
}

// SetImpairment changes what the link does from now on.
func (l *Link) SetImpairment(Impairment) {}

// Counts returns the packets forwarded and dropped so far.
func (l *Link) Counts() (passed, dropped uint64) { return 0, 0 }

// Command returns a command that runs name in namespace ns.
func (l *Link) Command(ctx context.Context, ns, name string, args ...string) *exec.Cmd {
	return exec.CommandContext(ctx, name, args...)
}
