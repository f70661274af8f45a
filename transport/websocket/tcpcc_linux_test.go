//go:build linux

package websocket

import (
	"os"
	"slices"
	"strings"
	"testing"
)

// Both ends of a connection set the congestion control asked for (BBR by
// default) when the kernel offers it to this process, and otherwise keep
// the system's, working either way.
func TestCongestionControl(t *testing.T) {
	sysctl := func(name string) []string {
		b, err := os.ReadFile("/proc/sys/net/ipv4/" + name)
		if err != nil {
			t.Fatal(err)
		}
		return strings.Fields(string(b))
	}
	system := sysctl("tcp_congestion_control")[0]
	// Reading "available" after each dial: a privileged process's setsockopt
	// loads an algorithm's module on demand.
	offered := func(name string) bool {
		return slices.Contains(sysctl("tcp_available_congestion_control"), name) &&
			(os.Geteuid() == 0 || slices.Contains(sysctl("tcp_allowed_congestion_control"), name))
	}
	for _, tc := range []struct{ ask, want string }{
		{"", DefaultCongestionControl},
		{"reno", "reno"},
		{"cubic", "cubic"},
		{CongestionSystem, system},
		{"no-such-algorithm", system},
	} {
		cfg := &Config{CongestionControl: tc.ask}
		client, server := dialPair(t, cfg, cfg)
		want := tc.want
		if tc.ask != CongestionSystem && !offered(want) {
			want = system
		}
		for side, c := range map[string]*Conn{"client": client, "server": server} {
			if got := c.CongestionControl(); got != want {
				t.Errorf("asked %q: the %s's socket runs %q, want %q", tc.ask, side, got, want)
			}
		}
		_ = client.CloseWithError(0, "")
		_ = server.CloseWithError(0, "")
	}
}
