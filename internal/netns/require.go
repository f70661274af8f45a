package netns

import (
	"fmt"
	"os"
	"testing"
)

// RequireEnv turns a test that cannot get the namespaces it needs from a
// skip into a failure. CI sets it: there the tests run as root, so a
// namespace that cannot be made is a broken machine, not a reason to pass.
const RequireEnv = "MOQP2P_REQUIRE_NETNS"

// Unavailable ends a test that cannot run here for want of namespaces (or
// of multicast on loopback): it is skipped with the reason, or fails when
// RequireEnv is set.
func Unavailable(t testing.TB, format string, args ...any) {
	t.Helper()
	msg := fmt.Sprintf(format, args...)
	if os.Getenv(RequireEnv) != "" {
		t.Fatalf("%s (required: %s is set)", msg, RequireEnv)
	}
	t.Skipf("%s (set %s=1 to fail instead)", msg, RequireEnv)
}
