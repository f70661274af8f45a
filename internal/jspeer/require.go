package jspeer

import (
	"context"
	"os"
	"testing"
	"time"
)

// Environment variables that turn a missing peer from a skip into a
// failure; CI sets both, so the JS and browser interop tests can never pass
// by skipping there.
const (
	RequireNodeEnv     = "MOQP2P_REQUIRE_NODE"
	RequireChromiumEnv = "MOQP2P_REQUIRE_CHROMIUM"
)

// RequireNode makes sure node, npm and the pinned packages are present. If
// they are not, the test is skipped with the reason, or fails when
// RequireNodeEnv is set.
func RequireNode(t testing.TB) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	if err := Ensure(ctx); err != nil {
		missing(t, RequireNodeEnv, err)
	}
}

// RequireChromium makes sure the browser binary is present, skipping or
// failing (RequireChromiumEnv) as RequireNode does. It implies RequireNode:
// the page loads the packages from node_modules.
func RequireChromium(t testing.TB) {
	t.Helper()
	RequireNode(t)
	if _, err := chromiumPath(""); err != nil {
		missing(t, RequireChromiumEnv, err)
	}
}

func missing(t testing.TB, env string, err error) {
	t.Helper()
	if os.Getenv(env) != "" {
		t.Fatalf("%v (required: %s is set)", err, env)
	}
	t.Skipf("skipping: %v (set %s=1 to fail instead)", err, env)
}
