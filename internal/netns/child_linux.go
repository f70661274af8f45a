//go:build linux

package netns

import (
	"bytes"
	"regexp"
	"strings"
	"testing"
	"time"
)

// childArgs are the flags of a child process that runs the calling test
// again: that test only (every level of its name anchored and quoted, so
// a name with regexp characters or a prefix of another's matches itself
// alone), once, within timeout, and verbose: its verdict is read from the
// "--- PASS/SKIP" lines, which only -test.v prints.
func childArgs(t *testing.T, timeout time.Duration) []string {
	levels := strings.Split(t.Name(), "/")
	for i, l := range levels {
		levels[i] = "^" + regexp.QuoteMeta(l) + "$"
	}
	return []string{"-test.run=" + strings.Join(levels, "/"), "-test.count=1", "-test.v", "-test.timeout=" + timeout.String()}
}

// relayChild relays the output of the child that ran the calling test
// where (a phrase: "in a NAT lab") and its verdict: a failure fails the
// test; a skip skips it through Unavailable (a failure when RequireEnv is
// set, as for a namespace that cannot be made); a child in which the test
// neither passed nor skipped (it did not run) fails it, so a child that
// matched nothing cannot pass for one that ran. err is the child's exit
// error.
func relayChild(t *testing.T, where string, out []byte, err error) {
	t.Helper()
	t.Logf("%s:\n%s", where, out)
	switch verdict := func(v string) bool { return bytes.Contains(out, []byte("--- "+v+": "+t.Name()+" (")) }; {
	case err != nil:
		t.Fatalf("the test failed %s: %v", where, err)
	case verdict("SKIP"):
		Unavailable(t, "the test skipped %s (its output above says why)", where)
	case !verdict("PASS"):
		t.Fatalf("the test did not run %s (no verdict in its output)", where)
	}
}
