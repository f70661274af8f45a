//go:build linux

package netns

import (
	"os"
	"testing"
)

// childSkipEnv marks the child of TestChildSkipIsSkip's rerun case.
const childSkipEnv = "MOQP2P_TEST_NETNS_CHILD_SKIP"

// A test that skips in the child Private or rerun started is skipped in
// the parent too, not passed (and fails with RequireEnv set, which this
// test unsets for its subtests). The rerun case's name holds regexp
// characters: the child must still run exactly that test.
func TestChildSkipIsSkip(t *testing.T) {
	t.Setenv(RequireEnv, "")
	for _, c := range []struct {
		name string
		run  func(t *testing.T) error
	}{
		{"Private", func(t *testing.T) error { _, err := Private(t); return err }},
		{"rerun+[x]", func(t *testing.T) error { return rerun(t, childSkipEnv+"=1", "in new namespaces", nil) }},
	} {
		var sub *testing.T
		unavailable := false
		t.Run(c.name, func(t *testing.T) {
			sub = t
			if InChild() || os.Getenv(childSkipEnv) != "" {
				t.Skip("skipped in the child, as the test wants")
			}
			if err := c.run(t); err != nil { // the child could not start
				unavailable = true
				t.Skipf("no namespaces here: %v", err)
			}
			// Reached only if the child's skip was not relayed: the
			// check below fails.
		})
		if sub != nil && !unavailable && !sub.Skipped() { // nil: filtered out (in a child)
			t.Errorf("%s: the child skipped, the parent did not", c.name)
		}
	}
}
