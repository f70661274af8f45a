package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// requireTmuxEnv makes the live-line test fail, not skip, without tmux (CI
// sets it and installs tmux).
const requireTmuxEnv = "MOQP2P_REQUIRE_TMUX"

var liveLine = regexp.MustCompile(`received (\d+) frames, (\d+) groups, [0-9.]+ MiB in \d+s: \d+ frames/s, [0-9.]+ MiB/s, (\d+) skipped, 1 peers, rtt [0-9.]+[µm]?s`)

// On a terminal (a tmux pane) moq sub draws a live status line that moves
// while frames arrive, then erases it and prints the final JSON line; with
// --quiet the terminal gets the JSON line only.
func TestLiveLineInTmux(t *testing.T) {
	run := tmuxServer(t)
	pub := start(t, "pub", nil, "pub", "--broadcast", "live", "--listen", "moql://127.0.0.1:0", "--frames", "0", "--rate", "500", "--size", "1000")
	url := field(pub.stderr.await(t, pub.name, "listening: moql://", 20*time.Second))
	fp := field(pub.stderr.await(t, pub.name, "fingerprint: ", time.Second))
	for _, quiet := range []bool{false, true} {
		t.Run(fmt.Sprintf("quiet=%v", quiet), func(t *testing.T) {
			window := fmt.Sprintf("sub%v", quiet)
			flags := fmt.Sprintf("--broadcast live --connect %s --fingerprint %s --count 2000", url, fp)
			if quiet {
				flags += " --quiet"
			}
			// The shell stays after sub exits, so the pane keeps what sub left.
			cmd := fmt.Sprintf("%s sub %s; echo EXIT=$?; sleep 600", moqBin, flags)
			if quiet {
				run("new-window", "-d", "-n", window, cmd)
			} else {
				run("new-session", "-d", "-x", "220", "-y", "12", "-n", window, cmd)
			}
			var seen []uint64 // frame counts the live line showed
			deadline := time.Now().Add(2 * time.Minute)
			screen := ""
			for !strings.Contains(screen, "EXIT=") {
				if time.Now().After(deadline) {
					t.Fatalf("sub did not finish; screen:\n%s", screen)
				}
				time.Sleep(50 * time.Millisecond) // polling the screen: tmux has no change event
				screen = run("capture-pane", "-p", "-t", window)
				if m := liveLine.FindStringSubmatch(screen); m != nil {
					n, _ := strconv.ParseUint(m[1], 10, 64)
					if len(seen) == 0 || seen[len(seen)-1] != n {
						seen = append(seen, n)
					}
				}
			}
			var lines []string
			for l := range strings.Lines(screen) {
				if l = strings.TrimSpace(l); l != "" {
					lines = append(lines, l)
				}
			}
			if len(lines) != 2 || lines[1] != "EXIT=0" {
				t.Fatalf("screen at the end: %q, want the JSON line and EXIT=0 only", lines)
			}
			var sum subSummary
			if err := json.Unmarshal([]byte(lines[0]), &sum); err != nil || sum.Frames != 2000 {
				t.Fatalf("final line %q: %v", lines[0], err)
			}
			switch {
			case quiet && len(seen) > 0:
				t.Errorf("--quiet drew the live line: %v", seen)
			case !quiet && len(seen) < 2:
				t.Errorf("live line frame counts %v: want it to move at least once", seen)
			}
			t.Logf("live line frame counts: %v", seen)
		})
	}
}

// --metrics serves the node's Prometheus series and its sessions, which
// moq stats prints.
func TestMetricsFlagAndStats(t *testing.T) {
	pub := start(t, "pub", nil, "pub", "--broadcast", "m", "--listen", "moql://127.0.0.1:0", "--frames", "0", "--rate", "500",
		"--metrics", "127.0.0.1:0")
	url := field(pub.stderr.await(t, pub.name, "listening: moql://", 20*time.Second))
	fp := field(pub.stderr.await(t, pub.name, "fingerprint: ", time.Second))
	metrics := field(pub.stderr.await(t, pub.name, "metrics: http://", time.Second))
	sub := start(t, "sub", nil, "sub", "--broadcast", "m", "--connect", url, "--fingerprint", fp, "--count", "1000000")

	addr := strings.TrimSuffix(strings.TrimPrefix(metrics, "http://"), "/metrics")
	var out string
	for deadline := time.Now().Add(time.Minute); ; {
		st := start(t, "stats", nil, "stats", addr)
		st.mustSucceed(t, 30*time.Second)
		out = string(st.stdout.bytes())
		if regexp.MustCompile(`serving m/data \(#0\): [1-9]\d* groups`).MatchString(out) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("moq stats never showed the served subscription:\n%s", out)
		}
		time.Sleep(100 * time.Millisecond) // the subscription's first group is on its way
	}
	if !regexp.MustCompile(`(?m)^client 127\.0\.0\.1:\d+ +quic +moq-lite-05 +[0-9.]+ms`).MatchString(out) {
		t.Errorf("moq stats:\n%s", out)
	}
	resp, err := http.Get(metrics)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	for _, series := range []string{
		`moqp2p_sessions{dir="inbound",transport="quic",version="moq-lite-05"} 1`,
		`moqp2p_subscriptions{dir="inbound",side="publisher",transport="quic",version="moq-lite-05"} 1`,
		`moqp2p_frames_sent_total{dir="inbound",transport="quic",version="moq-lite-05"} `,
		`moqp2p_link_rtt_seconds_count{transport="quic"} 1`,
		`go_goroutines `,
	} {
		if !strings.Contains(string(body), "\n"+series) {
			t.Errorf("scrape lacks %s", series)
		}
	}
	sub.interrupt(t)
	sub.mustSucceed(t, 30*time.Second)
}

// tmuxServer returns a function that runs a tmux command on a tmux server
// of the test's own (its socket in t.TempDir(), killed at cleanup) and
// returns its output. Without tmux the test skips, or fails if
// MOQP2P_REQUIRE_TMUX is set.
func tmuxServer(t *testing.T) func(args ...string) string {
	t.Helper()
	tmux, err := exec.LookPath("tmux")
	if err != nil {
		if os.Getenv(requireTmuxEnv) != "" {
			t.Fatalf("tmux not found (required: %s is set)", requireTmuxEnv)
		}
		t.Skipf("tmux not found (set %s=1 to fail instead)", requireTmuxEnv)
	}
	socket := filepath.Join(t.TempDir(), "tmux")
	t.Cleanup(func() { _ = exec.Command(tmux, "-S", socket, "kill-server").Run() })
	return func(args ...string) string {
		t.Helper()
		out, err := exec.Command(tmux, append([]string{"-S", socket}, args...)...).CombinedOutput()
		if err != nil {
			t.Fatalf("tmux %v: %v\n%s", args, err, out)
		}
		return string(out)
	}
}
