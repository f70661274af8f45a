package examples_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/moqp2p/moqp2p/discovery"
	"github.com/moqp2p/moqp2p/internal/jspeer"
	"github.com/moqp2p/moqp2p/internal/netns"
	"github.com/moqp2p/moqp2p/internal/pattern"
)

// bin is the directory holding the built examples.
var bin string

// runTimeout bounds every run of an example.
const runTimeout = 30 * time.Second

// TestMain builds the examples once (with -race when the tests run with it),
// as `go build` would for a user.
func TestMain(m *testing.M) { os.Exit(testMain(m)) }

func testMain(m *testing.M) int {
	flag.Parse()
	dir, err := os.MkdirTemp("", "moqp2p-examples-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	goBin, err := exec.LookPath("go") // go test puts its own go first in PATH
	if err != nil {
		fmt.Fprintln(os.Stderr, "the examples' tests need the go command:", err)
		return 1
	}
	args := []string{"build", "-o", dir}
	if raceEnabled() {
		args = append(args, "-race")
	}
	args = append(args, "./clock", "./chat", "./stream", "./admission", "./discovery", "./browser", "./video", "./nat",
		"github.com/moqp2p/moqp2p/cmd/moq") // moq pub --media feeds the video example
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	start := time.Now()
	build := exec.CommandContext(ctx, goBin, args...)
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "building the examples:", err)
		return 1
	}
	if testing.Verbose() {
		fmt.Printf("built the examples in %v\n", time.Since(start).Round(time.Millisecond))
	}
	bin = dir
	return m.Run()
}

func raceEnabled() bool {
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return false
	}
	for _, s := range info.Settings {
		if s.Key == "-race" {
			return s.Value == "true"
		}
	}
	return false
}

func TestClock(t *testing.T) {
	t.Parallel()
	out := run(t, nil, "clock", "-n", "3")
	checkTicks(t, out, 3)
}

func TestClockPubSub(t *testing.T) {
	t.Parallel()
	pub := start(t, nil, "clock", "-role", "pub")
	addr := pub.waitFor(t, `-peer (\S+)`)[1]
	out := run(t, nil, "clock", "-role", "sub", "-peer", addr, "-n", "2")
	checkTicks(t, out, 2)
	pub.interrupt()
	pub.wait(t)
}

// checkTicks checks that out holds ticks 1…n with increasing times.
func checkTicks(t *testing.T, out string, n int) {
	t.Helper()
	ticks := regexp.MustCompile(`(?m)^tick (\d+): (.+)$`).FindAllStringSubmatch(out, -1)
	if len(ticks) != n {
		t.Fatalf("%d ticks, want %d:\n%s", len(ticks), n, out)
	}
	var last time.Time
	for i, tick := range ticks {
		if tick[1] != strconv.Itoa(i+1) {
			t.Errorf("tick %d is numbered %s", i+1, tick[1])
		}
		at, err := time.Parse(time.DateTime, tick[2])
		if err != nil {
			t.Fatalf("tick %d: %v", i+1, err)
		}
		if !at.After(last) {
			t.Errorf("tick %d at %s, not after %s", i+1, at, last)
		}
		last = at
	}
}

// The browser example's page, loaded in headless Chromium, shows the Go
// node's clock ticking.
func TestBrowser(t *testing.T) {
	t.Parallel()
	jspeer.RequireChromium(t)
	srv := start(t, nil, "browser", "-addr", "127.0.0.1:0", "-modules", filepath.Join(jspeer.Dir(), "node_modules"))
	url := srv.waitFor(t, `open (http://\S+/)`)[1]
	ctx, cancel := context.WithTimeout(context.Background(), runTimeout)
	defer cancel()
	body, err := jspeer.RunPage(ctx, url+"?n=3", jspeer.ChromiumOptions{})
	if err != nil {
		t.Fatalf("page: %v", err)
	}
	var shown struct {
		OK      bool     `json:"ok"`
		Error   string   `json:"error"`
		Version string   `json:"version"`
		Shown   []string `json:"shown"`
		Text    string   `json:"text"`
	}
	if err := json.Unmarshal(body, &shown); err != nil {
		t.Fatalf("page result %s: %v", body, err)
	}
	if !shown.OK || len(shown.Shown) != 3 || shown.Text != shown.Shown[2] {
		t.Fatalf("the page shows %+v", shown)
	}
	var ticks strings.Builder
	for i, at := range shown.Shown {
		fmt.Fprintf(&ticks, "tick %d: %s\n", i+1, at)
	}
	checkTicks(t, ticks.String(), 3)
	if shown.Version != "moq-lite-04" {
		t.Errorf("the page connected over %q, want moq-lite-04 (WebTransport)", shown.Version)
	}
	srv.interrupt()
	srv.wait(t)
}

func TestChat(t *testing.T) {
	t.Parallel()
	out := run(t, nil, "chat")
	for _, line := range []struct{ from, to, text string }{
		{"alice", "bob", "hi bob, it's alice"},
		{"bob", "alice", "hello alice! loud and clear"},
		{"alice", "bob", "this line took one moq-lite group"},
		{"bob", "alice", "bye!"},
	} {
		for _, want := range []string{
			fmt.Sprintf("[%s] > %s\n", line.from, line.text),            // said
			fmt.Sprintf("[%s] %s: %s\n", line.to, line.from, line.text), // heard
		} {
			if !strings.Contains(out, want) {
				t.Errorf("no line %q", strings.TrimSpace(want))
			}
		}
	}
	if t.Failed() {
		t.Log(out)
	}
}

func TestChatTwoTerminals(t *testing.T) {
	t.Parallel()
	listener := start(t, strings.NewReader("hello from the listener\n"), "chat", "-role", "listen", "-n", "1")
	addr := listener.waitFor(t, `-peer (\S+)`)[1]
	joined := run(t, strings.NewReader("hello from the joiner\n"), "chat", "-role", "join", "-peer", addr, "-n", "1")
	listened := listener.wait(t)
	if !regexp.MustCompile(`(?m)^…\S+: hello from the listener$`).MatchString(joined) {
		t.Errorf("the joiner did not hear the listener:\n%s", joined)
	}
	if !regexp.MustCompile(`(?m)^…\S+: hello from the joiner$`).MatchString(listened) {
		t.Errorf("the listener did not hear the joiner:\n%s", listened)
	}
}

var sumLine = regexp.MustCompile(`(?m)^(publisher|subscriber): +(?:sent|received) +(\d+) bytes in \d+ frames, \d+ groups; sha256 ([0-9a-f]{64})$`)

// streamSums returns the byte counts and hashes that the publisher and the
// subscriber printed, by role ("publisher", "subscriber").
func streamSums(out string) map[string][2]string {
	sums := map[string][2]string{}
	for _, m := range sumLine.FindAllStringSubmatch(out, -1) {
		sums[m[1]] = [2]string{m[2], m[3]}
	}
	return sums
}

func TestStream(t *testing.T) {
	t.Parallel()
	out := run(t, nil, "stream")
	if !strings.Contains(out, "sha256 match: true\n") {
		t.Errorf("no sha256 match: true")
	}
	want := sha256.Sum256(pattern.Payload(0, 1<<20))
	sums := streamSums(out)
	for _, role := range []string{"publisher", "subscriber"} {
		if got := sums[role]; got != [2]string{strconv.Itoa(1 << 20), hex.EncodeToString(want[:])} {
			t.Errorf("%s: %v, want 1 MiB with sha256 %x", role, got, want)
		}
	}
	if t.Failed() {
		t.Log(out)
	}
}

// A file whose size is no multiple of the frame size, in groups of 7
// frames, written out to a file.
func TestStreamFile(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	in, out := filepath.Join(dir, "in"), filepath.Join(dir, "out")
	data := make([]byte, 1<<20+12345)
	_, _ = rand.Read(data)
	if err := os.WriteFile(in, data, 0o600); err != nil {
		t.Fatal(err)
	}
	printed := run(t, nil, "stream", "-in", in, "-out", out, "-frame", "1000", "-group", "7")
	if !strings.Contains(printed, "sha256 match: true\n") {
		t.Errorf("no sha256 match: true:\n%s", printed)
	}
	if !strings.Contains(printed, fmt.Sprintf("%d bytes in %d frames, %d groups;", len(data), 1061, 152)) {
		t.Errorf("want %d bytes in 1061 frames of 1000 bytes, 152 groups:\n%s", len(data), printed)
	}
	checkFile(t, out, data)
}

// The publisher streams its stdin to a subscriber in another process.
func TestStreamPubSub(t *testing.T) {
	t.Parallel()
	data := make([]byte, 3<<20+1)
	_, _ = rand.Read(data)
	sum := sha256.Sum256(data)
	pub := start(t, bytes.NewReader(data), "stream", "-role", "pub", "-in", "-")
	addr := pub.waitFor(t, `-peer (\S+)`)[1]
	out := filepath.Join(t.TempDir(), "out")
	subOut := run(t, nil, "stream", "-role", "sub", "-peer", addr, "-out", out)
	pubOut := pub.wait(t)
	checkFile(t, out, data)
	want := [2]string{strconv.Itoa(len(data)), hex.EncodeToString(sum[:])}
	if got := streamSums(pubOut)["publisher"]; got != want {
		t.Errorf("publisher: %v, want %v\n%s", got, want, pubOut)
	}
	if got := streamSums(subOut)["subscriber"]; got != want {
		t.Errorf("subscriber: %v, want %v\n%s", got, want, subOut)
	}
}

func checkFile(t *testing.T, name string, want []byte) {
	t.Helper()
	got, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s: %d bytes differ from the %d sent", name, len(got), len(want))
	}
}

func TestAdmission(t *testing.T) {
	t.Parallel()
	out := run(t, nil, "admission")
	for _, want := range []string{
		"gate: admitted alice",
		"gate: admitted bob",
		"alice: admitted; the gate says \"welcome to the lobby\"",
		"bob: admitted; the gate says \"welcome to the lobby\"",
		"gate: rejected mallory: not on the allow list (wire code 71)",
		"mallory: turned away: session closed with code 71 (application error 7)",
		"gate: 2 live sessions",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("no line %q", want)
		}
	}
	if n := strings.Count(out, "turned away"); n != 1 {
		t.Errorf("%d peers turned away, want 1", n)
	}
	if t.Failed() {
		t.Log(out)
	}
}

// A visitor with a key file is turned away, then admitted once the gate
// lists its peer ID.
func TestAdmissionGate(t *testing.T) {
	t.Parallel()
	key := filepath.Join(t.TempDir(), "visitor.key")
	visit := func(allow string) string {
		gate := start(t, nil, "admission", "-role", "gate", "-allow", allow)
		addr := gate.waitFor(t, `-peer (\S+)`)[1]
		out := run(t, nil, "admission", "-role", "visitor", "-key", key, "-peer", addr)
		gate.interrupt()
		gate.wait(t)
		return out
	}
	out := visit("")
	if !strings.Contains(out, "turned away: session closed with code 71") {
		t.Fatalf("an unlisted visitor was not turned away:\n%s", out)
	}
	id := regexp.MustCompile(`peer ID: (\S+)`).FindStringSubmatch(out)
	if id == nil {
		t.Fatalf("the visitor did not print its peer ID:\n%s", out)
	}
	out = visit(id[1])
	if !strings.Contains(out, "visitor's peer ID: "+id[1]) || !strings.Contains(out, "visitor: admitted") {
		t.Fatalf("the listed visitor (same key) was not admitted:\n%s", out)
	}
}

// A subscriber finds the clock by name in a DHT of six peers, at the peer
// that published it.
func TestDiscovery(t *testing.T) {
	t.Parallel()
	out := run(t, nil, "discovery", "-n", "3")
	checkTicks(t, out, 3)
	checkFoundByName(t, out)
}

// Three processes that know only the bootstrap peer's address.
func TestDiscoveryThreeProcesses(t *testing.T) {
	t.Parallel()
	boot := start(t, nil, "discovery", "-role", "boot")
	addr := boot.waitFor(t, `-bootstrap (\S+)`)[1]
	pub := start(t, nil, "discovery", "-role", "pub", "-bootstrap", addr)
	pub.waitFor(t, `^publisher …\S+: publishing "clock"`)
	out := run(t, nil, "discovery", "-role", "sub", "-bootstrap", addr, "-n", "2")
	checkTicks(t, out, 2)
	found := checkFoundByName(t, out)
	pub.interrupt()
	if pubOut := pub.wait(t); !strings.Contains(pubOut, "publisher "+found+": ") {
		t.Errorf("the clock was found at %s, not at the publisher:\n%s", found, pubOut)
	}
	boot.interrupt()
	boot.wait(t)
}

// checkFoundByName checks that out tells of a subscription by name, found
// at the publisher it names, and returns that publisher.
func checkFoundByName(t *testing.T, out string) string {
	t.Helper()
	m := regexp.MustCompile(`(?m)^subscriber (…\S+): found "clock" at (…\S+) in \S+; subscribed over moq-lite-0[345]$`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("no line telling where the clock was found:\n%s", out)
	}
	if m[1] == m[2] {
		t.Errorf("the subscriber found the clock at itself:\n%s", out)
	}
	if pub := regexp.MustCompile(`(?m)^publisher (…\S+): publishing "clock", provided in the DHT under (\S+)$`).FindStringSubmatch(out); pub != nil {
		if pub[1] != m[2] {
			t.Errorf("the clock was found at %s, not at its publisher %s:\n%s", m[2], pub[1], out)
		}
		if want := discovery.Key("clock").String(); pub[2] != want {
			t.Errorf("provided under %s, want discovery.Key(\"clock\") = %s", pub[2], want)
		}
	}
	return m[2]
}

// proc is a running example.
type proc struct {
	name   string
	cmd    *exec.Cmd
	lines  chan string // stdout, line by line
	done   chan struct{}
	mu     sync.Mutex
	stdout strings.Builder
	stderr bytes.Buffer // read after done
	err    error        // of Wait, set before done closes
	began  time.Time
}

// start runs an example with stdin (nil: none), for at most runTimeout.
func start(t *testing.T, stdin io.Reader, name string, args ...string) *proc {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), runTimeout)
	p := &proc{
		name:  strings.Join(append([]string{name}, args...), " "),
		cmd:   exec.CommandContext(ctx, filepath.Join(bin, name), args...),
		lines: make(chan string, 1024),
		done:  make(chan struct{}),
	}
	p.cmd.Dir = t.TempDir()
	p.cmd.Stdin = stdin
	p.cmd.Stderr = &p.stderr
	p.cmd.WaitDelay = 5 * time.Second
	stdout, err := p.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	p.began = time.Now()
	if err := p.cmd.Start(); err != nil {
		cancel()
		t.Fatal(err)
	}
	go func() {
		defer close(p.done)
		defer cancel()
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			p.mu.Lock()
			p.stdout.WriteString(sc.Text() + "\n")
			p.mu.Unlock()
			select {
			case p.lines <- sc.Text():
			default: // nobody waits for lines this far down
			}
		}
		p.err = p.cmd.Wait()
	}()
	t.Cleanup(func() {
		cancel()
		<-p.done
	})
	return p
}

// run runs an example to its end and returns its stdout; it fails the test
// if the example fails.
func run(t *testing.T, stdin io.Reader, name string, args ...string) string {
	t.Helper()
	return start(t, stdin, name, args...).wait(t)
}

// waitFor reads stdout lines until one matches expr and returns the
// submatches.
func (p *proc) waitFor(t *testing.T, expr string) []string {
	t.Helper()
	re := regexp.MustCompile(expr)
	for {
		select {
		case line := <-p.lines:
			if m := re.FindStringSubmatch(line); m != nil {
				return m
			}
		case <-p.done:
			t.Fatalf("%s ended (%v) before printing a line matching %q:\n%s%s", p.name, p.err, expr, p.output(), p.stderr.String())
		}
	}
}

// wait waits for the example to end, fails the test unless it succeeded,
// and returns its stdout.
func (p *proc) wait(t *testing.T) string {
	t.Helper()
	<-p.done
	t.Logf("%s: %v", p.name, time.Since(p.began).Round(time.Millisecond))
	if p.err != nil {
		t.Fatalf("%s: %v\nstdout:\n%s\nstderr:\n%s", p.name, p.err, p.output(), p.stderr.String())
	}
	if p.stderr.Len() > 0 {
		t.Logf("%s stderr:\n%s", p.name, p.stderr.String())
	}
	return p.output()
}

// interrupt asks the example to stop, as Ctrl-C does.
func (p *proc) interrupt() { _ = p.cmd.Process.Signal(os.Interrupt) }

func (p *proc) output() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.stdout.String()
}

// TestNAT runs the NAT lab example: with both NATs endpoint-independent
// the session is hole-punched; with a symmetric one it is relayed. Every
// frame arrives either way. The lab needs root (CI runs it).
func TestNAT(t *testing.T) {
	for _, c := range []struct {
		name string
		args []string
		path string
	}{
		{"endpoint-independent", nil, "hole-punched"},
		{"symmetric", []string{"-symmetric"}, "relayed"},
	} {
		t.Run(c.name, func(t *testing.T) {
			out := run(t, nil, "nat", append([]string{"-frames", "300"}, c.args...)...)
			if strings.Contains(out, "cannot run here") {
				netns.Unavailable(t, "%s", strings.TrimSpace(out))
			}
			if !strings.Contains(out, "5. subscriber: session path: "+c.path+" (") {
				t.Errorf("want a %s session path:\n%s", c.path, out)
			}
			if !strings.Contains(out, "received 300 frames, all intact") {
				t.Errorf("frames missing:\n%s", out)
			}
		})
	}
}

// TestMissingPeer: a second-terminal role run without -peer (or with an
// address that is no multiaddr) says what -peer wants and exits non-zero.
func TestMissingPeer(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"clock", "-role", "sub"}, "clock: -peer is required: the address -role pub printed"},
		{[]string{"stream", "-role", "sub", "-peer", "127.0.0.1:4001"}, "(want the address -role pub printed, /ip4/"},
		{[]string{"admission", "-role", "visitor"}, "admission: -peer is required: the address -role gate printed"},
	} {
		p := start(t, nil, c.args[0], c.args[1:]...)
		<-p.done
		if p.err == nil || !strings.Contains(p.stderr.String(), c.want) {
			t.Errorf("%s: %v, stderr %q; want a failure saying %q", p.name, p.err, p.stderr.String(), c.want)
		}
	}
}
