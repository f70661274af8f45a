//go:build !linux

package netns

import (
	"errors"
	"os"
	"testing"
)

// Env marks the child process that runs a test inside private namespaces.
const Env = "MOQP2P_TEST_PRIVATE_NETNS"

// InChild reports whether this process is such a child.
func InChild() bool { return os.Getenv(Env) != "" }

// Private: private network namespaces exist on Linux only.
func Private(*testing.T, ...string) (child bool, err error) {
	return false, errors.New("private network namespaces need Linux")
}
