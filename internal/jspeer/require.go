package jspeer

import (
	"context"
	"errors"
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
// node or npm is missing, the test is skipped with the reason, or fails when
// RequireNodeEnv is set; any other failure (npm ci could not install the
// pinned packages) fails the test: the peer is there, so the test can run.
func RequireNode(t testing.TB) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	require(t, Ensure(ctx), ErrNoNode, RequireNodeEnv)
}

// RequireChromium makes sure the browser binary is present, skipping or
// failing (RequireChromiumEnv) as RequireNode does. It implies RequireNode:
// the page loads the packages from node_modules.
func RequireChromium(t testing.TB) {
	t.Helper()
	RequireNode(t)
	_, err := chromiumPath("")
	require(t, err, ErrNoChromium, RequireChromiumEnv)
}

// require skips t when err says the peer is absent (absent) and env is not
// set, and fails it on any other error, or when env is set.
func require(t testing.TB, err, absent error, env string) {
	t.Helper()
	switch skip, msg := outcome(err, absent, os.Getenv(env) != ""); {
	case msg == "":
	case skip:
		t.Skipf("skipping: %s (set %s=1 to fail instead)", msg, env)
	default:
		t.Fatalf("%s (%s=%s)", msg, env, os.Getenv(env))
	}
}

// outcome decides what require does with err: nothing (msg ""), skip, or
// fail.
func outcome(err, absent error, required bool) (skip bool, msg string) {
	if err == nil {
		return false, ""
	}
	return errors.Is(err, absent) && !required, err.Error()
}
