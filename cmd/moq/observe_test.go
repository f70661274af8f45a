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
	"strings"
	"testing"
	"time"
)

// requireTmuxEnv makes the live-line test fail, not skip, without tmux (CI
// sets it and installs tmux).
const requireTmuxEnv = "MOQP2P_REQUIRE_TMUX"

// The live lines of sub, pub and relay; the first group is a number that
// moves while media flows.
var (
	subLive   = regexp.MustCompile(`received (\d+) frames, (\d+) groups, [0-9.]+ MiB in \d+s: \d+ frames/s, [0-9.]+ MiB/s, (\d+) skipped, 1 peers, rtt [0-9.]+[µm]?s`)
	pubLive   = regexp.MustCompile(`sent (\d+) frames, \d+ groups, [0-9.]+ MiB in \d+s: \d+ frames/s, [0-9.]+ MiB/s, \d+ skipped, 1 peers, 1 subscribers, rtt [0-9.]+[µm]?s`)
	relayLive = regexp.MustCompile(`relay: 2 peers, 1 subscribers, sent ([0-9.]+) MiB \([0-9.]+ MiB/s\), received [0-9.]+ MiB \([0-9.]+ MiB/s\), up \d+s, rtt [0-9.]+[µm]?s`)
)

// On a terminal (a tmux pane) moq sub, pub and relay draw a live status
// line that moves while frames flow, then erase it and print the final
// JSON line; with --quiet the terminal gets no live line, only what the
// command prints anyway (listening addresses) and the JSON line.
func TestLiveLineInTmux(t *testing.T) {
	run := tmuxServer(t)
	// A session of its own whose windows are the commands' terminals.
	run("new-session", "-d", "-x", "220", "-y", "20", "-n", "idle", "sleep 600")
	for _, quiet := range []bool{false, true} {
		q := ""
		if quiet {
			q = " --quiet"
		}
		t.Run(fmt.Sprintf("sub/quiet=%v", quiet), func(t *testing.T) {
			pub := start(t, "pub", nil, "pub", "--broadcast", "live", "--listen", "moql://127.0.0.1:0", "--frames", "0", "--rate", "500", "--size", "1000")
			url := field(pub.stderr.await(t, pub.name, "listening: moql://", 20*time.Second))
			fp := field(pub.stderr.await(t, pub.name, "fingerprint: ", time.Second))
			lines, seen := watchPane(t, run, "sub"+q, fmt.Sprintf("%s sub --broadcast live --connect %s --fingerprint %s --count 2000%s", moqBin, url, fp, q), subLive, nil)
			if len(lines) != 2 {
				t.Fatalf("screen at the end: %q, want the JSON line and EXIT=0 only", lines)
			}
			var sum subSummary
			if err := json.Unmarshal([]byte(lines[0]), &sum); err != nil || sum.Frames != 2000 {
				t.Fatalf("final line %q: %v", lines[0], err)
			}
			checkSeen(t, quiet, seen)
		})
		t.Run(fmt.Sprintf("pub/quiet=%v", quiet), func(t *testing.T) {
			var sub *proc
			startSub := func(screen string, _ []string) {
				url, fp := screenField(screen, "listening: moql://"), screenField(screen, "fingerprint: ")
				if sub == nil && url != "" && fp != "" {
					sub = start(t, "sub", nil, "sub", "--broadcast", "live", "--connect", url, "--fingerprint", fp, "--count", "1500")
				}
			}
			lines, seen := watchPane(t, run, "pub"+q, fmt.Sprintf("%s pub --broadcast live --listen moql://127.0.0.1:0 --frames 1500 --rate 500 --size 1000 --wait%s", moqBin, q), pubLive, startSub)
			var sum pubSummary
			if err := json.Unmarshal([]byte(lines[len(lines)-2]), &sum); err != nil || sum.Frames != 1500 || sum.DeliveredFrames != 1500 {
				t.Fatalf("final lines %q: %v", lines, err)
			}
			checkSeen(t, quiet, seen)
			sub.mustSucceed(t, 30*time.Second)
		})
		t.Run(fmt.Sprintf("relay/quiet=%v", quiet), func(t *testing.T) {
			window := "relay" + q
			var pub *proc
			var flowing time.Time
			drive := func(screen string, seen []string) {
				url := screenField(screen, "listening: moql://")
				switch {
				case url == "":
				case pub == nil:
					pub = start(t, "pub", nil, "pub", "--broadcast", "live", "--connect", url, "--insecure", "--frames", "0", "--rate", "500", "--size", "1000")
					start(t, "sub", nil, "sub", "--broadcast", "live", "--connect", url, "--insecure", "--count", "1000000000")
					flowing = time.Now()
				case len(seen) >= 3 || quiet && time.Since(flowing) > 3*time.Second:
					if !flowing.IsZero() {
						run("send-keys", "-t", window, "C-c") // the relay ends with its JSON line
						flowing = time.Time{}
					}
				}
			}
			lines, seen := watchPane(t, run, window, fmt.Sprintf("%s relay --listen moql://127.0.0.1:0%s", moqBin, q), relayLive, drive)
			var sum nodeSummary
			if err := json.Unmarshal([]byte(strings.TrimPrefix(lines[len(lines)-2], "^C")), &sum); err != nil || sum.FramesSent == 0 || sum.FramesReceived == 0 {
				t.Fatalf("final lines %q: %v", lines, err)
			}
			checkSeen(t, quiet, seen) // pub and sub end with the relay, or at the test's cleanup
		})
	}
}

// watchPane runs cmd in a new tmux window, polling its screen until cmd
// exits, and returns the screen's last non-blank lines, ending with
// "EXIT=0", and the values of live's first group the screen showed, each
// change once. step, if set, is called with every screen and those values.
// Nothing of the live line may be left at the end.
func watchPane(t *testing.T, run func(...string) string, window, cmd string, live *regexp.Regexp, step func(screen string, seen []string)) (lines, seen []string) {
	t.Helper()
	// The shell stays after the command exits, so the pane keeps what it left.
	run("new-window", "-d", "-n", window, cmd+"; echo EXIT=$?; sleep 600")
	deadline := time.Now().Add(2 * time.Minute)
	screen := ""
	for !strings.Contains(screen, "EXIT=") {
		if time.Now().After(deadline) {
			t.Fatalf("%s did not finish; screen:\n%s", window, screen)
		}
		time.Sleep(50 * time.Millisecond) // polling the screen: tmux has no change event
		screen = run("capture-pane", "-p", "-t", window)
		if m := live.FindStringSubmatch(screen); m != nil && (len(seen) == 0 || seen[len(seen)-1] != m[1]) {
			seen = append(seen, m[1])
		}
		if step != nil {
			step(screen, seen)
		}
	}
	for l := range strings.Lines(screen) {
		if l = strings.TrimSpace(l); l != "" {
			lines = append(lines, l)
		}
	}
	if len(lines) < 2 || lines[len(lines)-1] != "EXIT=0" || live.MatchString(screen) {
		t.Fatalf("screen at the end: %q, want the JSON line and EXIT=0 last, no live line", lines)
	}
	t.Logf("%s: live line values %v; last lines %q", window, seen, lines[max(0, len(lines)-3):])
	return lines, seen
}

// checkSeen: the live line moved (more than one value), or, with --quiet,
// never showed.
func checkSeen(t *testing.T, quiet bool, seen []string) {
	t.Helper()
	switch {
	case quiet && len(seen) > 0:
		t.Errorf("--quiet drew the live line: %v", seen)
	case !quiet && len(seen) < 2:
		t.Errorf("live line values %v: want it to move at least once", seen)
	}
}

// screenField is the value of the first "key…" line on screen (the URL
// after "listening: ", say), "" if none.
func screenField(screen, key string) string {
	for l := range strings.Lines(screen) {
		if strings.HasPrefix(l, key) {
			return field(strings.TrimSpace(l))
		}
	}
	return ""
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

// moq relay --metrics serves the moqp2p_ series of the sessions it
// forwards between, and moq stats lists them.
func TestRelayMetrics(t *testing.T) {
	relay, addrs := startRelay(t, "relay", "--listen", "moql://127.0.0.1:0", "--metrics", "127.0.0.1:0")
	metrics := field(relay.stdout.await(t, relay.name, "metrics: http://", 5*time.Second))
	start(t, "pub", nil, "pub", "--broadcast", "m", "--connect", addrs["moql"], "--insecure", "--frames", "0", "--rate", "500")
	start(t, "sub", nil, "sub", "--broadcast", "m", "--connect", addrs["moql"], "--insecure", "--count", "1000000000")
	want := []*regexp.Regexp{
		regexp.MustCompile(`\nmoqp2p_sessions\{dir="inbound",transport="quic",version="moq-lite-05"\} 2\n`),
		regexp.MustCompile(`\nmoqp2p_subscriptions\{dir="inbound",side="publisher",transport="quic",version="moq-lite-05"\} 1\n`),
		regexp.MustCompile(`\nmoqp2p_frames_sent_total\{dir="inbound",transport="quic",version="moq-lite-05"\} [1-9]`),
		regexp.MustCompile(`\nmoqp2p_frames_received_total\{dir="inbound",transport="quic",version="moq-lite-05"\} [1-9]`),
	}
	var body []byte
	for deadline := time.Now().Add(time.Minute); ; time.Sleep(100 * time.Millisecond) {
		resp, err := http.Get(metrics)
		if err != nil {
			t.Fatal(err)
		}
		body, _ = io.ReadAll(resp.Body)
		_ = resp.Body.Close()
		missing := 0
		for _, re := range want {
			if !re.Match(body) {
				missing++
			}
		}
		if missing == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("scrape never had every series of %v:\n%s", want, grepLines(string(body), "moqp2p_"))
		}
	}
	st := start(t, "stats", nil, "stats", strings.TrimSuffix(metrics, "/metrics"))
	st.mustSucceed(t, 30*time.Second)
	if out := string(st.stdout.bytes()); len(regexp.MustCompile(`(?m)^client 127\.0\.0\.1:\d+ +quic +moq-lite-05 `).FindAllString(out, -1)) != 2 || !strings.Contains(out, "serving m/data") {
		t.Errorf("moq stats of the relay:\n%s", out)
	}
}

// grepLines is the lines of s that contain sub.
func grepLines(s, sub string) string {
	var b strings.Builder
	for l := range strings.Lines(s) {
		if strings.Contains(l, sub) {
			b.WriteString(l)
		}
	}
	return b.String()
}
