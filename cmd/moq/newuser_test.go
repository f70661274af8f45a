package main

import (
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"
)

// TestCommandTypos: a misspelt command, alone or after help, names the
// command it most likely meant and exits 2; version prints the build.
func TestCommandTypos(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"pubb"}, `moq: unknown command "pubb": did you mean "pub"?`},
		{[]string{"Sub", "--broadcast", "x"}, `moq: unknown command "Sub": did you mean "sub"?`},
		{[]string{"rely"}, `did you mean "relay"?`},
		{[]string{"help", "subb"}, `moq: help: unknown command "subb": did you mean "sub"?`},
		{[]string{"frobnicate"}, `unknown command "frobnicate"; the commands are chat, clock, node, pub, relay, stats, sub`},
	} {
		p := start(t, "moq "+strings.Join(c.args, " "), nil, c.args...)
		code := p.wait(t, 10*time.Second)
		if errLines := p.stderr.all(); code != 2 || len(errLines) != 1 || !strings.Contains(errLines[0], c.want) {
			t.Errorf("moq %s: exit %d, stderr %q; want 2 and one line containing %q", strings.Join(c.args, " "), code, errLines, c.want)
		}
	}
	for _, arg := range []string{"version", "--version"} {
		p := start(t, "moq "+arg, nil, arg)
		p.mustSucceed(t, 10*time.Second)
		if out := p.stdout.all(); len(out) != 1 || !strings.HasPrefix(out[0], "moq ") || !strings.Contains(out[0], "go1.") {
			t.Errorf("moq %s printed %q; want one line: moq VERSION … goVERSION", arg, out)
		}
	}
}

// TestNewcomerMistakes: the mistakes of a first session with the CLI are one
// line each that says what to type instead, and an unreachable peer is
// reported after --timeout (not QUIC's own 5 s handshake timeout) with what
// to check.
func TestNewcomerMistakes(t *testing.T) {
	t.Parallel()
	closedTCP := closedPort(t)
	for _, c := range []struct {
		name string
		want string
		args []string
	}{
		{"listen-no-scheme", "--listen 127.0.0.1:4443: not a URL or multiaddr (did you mean moql://127.0.0.1:4443?); want moql://host:port, ws://host:port/path, https://host:port/path or a libp2p multiaddr such as /ip4/0.0.0.0/udp/4001/quic-v1",
			[]string{"pub", "--broadcast", "x", "--listen", "127.0.0.1:4443"}},
		{"connect-no-scheme-path", "did you mean ws://127.0.0.1:4443/room or https://127.0.0.1:4443/room?",
			[]string{"sub", "--broadcast", "x", "--connect", "127.0.0.1:4443/room"}},
		{"connect-http", "sessions take https:// (WebTransport) or ws:// (WebSocket)",
			[]string{"sub", "--broadcast", "x", "--connect", "http://127.0.0.1:4443/"}},
		{"pub-nothing", "pub: --broadcast is required, as in: moq pub --broadcast demo --listen moql://127.0.0.1:4443", []string{"pub"}},
		{"pub-no-listen", "as in: moq pub --broadcast cam --listen moql://127.0.0.1:4443", []string{"pub", "--broadcast", "cam"}},
		{"sub-nothing", "sub: --broadcast is required (or give --ticket), as in: moq sub --broadcast demo --connect moql://127.0.0.1:4443 --insecure", []string{"sub"}},
		{"pub-root", `pub: --broadcast "/" names no broadcast`, []string{"pub", "--broadcast", "/", "--listen", "moql://127.0.0.1:0"}},
		{"media-frames", "pub: --frames does not apply with --media", []string{"pub", "--broadcast", "v", "--media", "x.mp4", "--frames", "0", "--listen", "moql://127.0.0.1:0"}},
		{"clock-role", "clock: want clock pub or clock sub, not clock pubb", []string{"clock", "pubb", "--listen", "moql://127.0.0.1:0"}},
		{"sub-root", `sub: --broadcast "//" names no broadcast`, []string{"sub", "--broadcast", "//", "--connect", "moql://127.0.0.1:1"}},
		{"stats-nobody", "stats: nothing listens on " + closedTCP + ": is a moq command running with --metrics " + closedTCP + "?", []string{"stats", closedTCP}},
		{"ws-refused", "connection refused: nothing listens on that TCP port (is moq running with --listen ws://" + closedTCP + "/?)",
			[]string{"sub", "--broadcast", "x", "--connect", "ws://" + closedTCP + "/"}},
		// Longer than quic-go's default handshake idle timeout (5 s), which
		// used to end the attempt first with "timeout: no recent network
		// activity".
		{"moql-timeout", "connect moql://127.0.0.1:1: no answer within 7s (is moq listening on that UDP port?",
			[]string{"sub", "--broadcast", "x", "--connect", "moql://127.0.0.1:1", "--insecure", "--timeout", "7s"}},
		{"webtransport-timeout", "connect https://127.0.0.1:1/: no answer within 7s (is moq listening on that UDP port?",
			[]string{"sub", "--broadcast", "x", "--connect", "https://127.0.0.1:1/", "--insecure", "--timeout", "7s"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			expectOneLineError(t, c.want, 30*time.Second, c.args...)
		})
	}
}

// closedPort is 127.0.0.1:PORT with nothing listening on TCP PORT.
func closedPort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	_ = l.Close()
	return addr
}

// TestWebListenersShareAPort: --listen https://H:P/ --listen ws://H:P/ (the
// README's way to serve both kinds of browser) is one listener, whose TCP
// port serves WebSocket; it used to fail with "address already in use".
// Subscribers reach the publisher over both.
func TestWebListenersShareAPort(t *testing.T) {
	t.Parallel()
	var pub *proc
	var port int
	for attempt := 0; ; attempt++ {
		port = freeUDPAndTCPPort(t)
		pub = start(t, "pub", nil, "pub", "--broadcast", "demo", "--frames", "0", "--rate", "100",
			"--listen", fmt.Sprintf("https://127.0.0.1:%d/", port), "--listen", fmt.Sprintf("ws://127.0.0.1:%d/", port))
		line, exited := awaitOrExit(t, pub, "listening: ws://", 20*time.Second)
		if exited {
			// The port was free a moment ago; another test may have taken
			// it since (for the https:// listener: the ws:// one failing
			// is the bug this test is about).
			errText := string(pub.stderr.bytes())
			if attempt < 3 && strings.Contains(errText, "address already in use") && !strings.Contains(errText, "--listen ws://") {
				continue
			}
			t.Fatalf("pub exited: %v\n%s", pub.err, errText)
		}
		if want := fmt.Sprintf("listening: ws://127.0.0.1:%d/", port); line != want {
			t.Fatalf("pub printed %q, want %q", line, want)
		}
		break
	}
	for _, url := range []string{fmt.Sprintf("ws://127.0.0.1:%d/", port), fmt.Sprintf("https://127.0.0.1:%d/", port)} {
		sub := start(t, "sub "+url, nil, "sub", "--broadcast", "demo", "--connect", url, "--insecure", "--count", "5")
		sub.mustSucceed(t, 30*time.Second)
		lastSummary(t, "sub "+url, sub.stdout.all())
	}
	pub.interrupt(t)
	pub.mustSucceed(t, 10*time.Second)
}

// freeUDPAndTCPPort is a loopback port number free on both UDP and TCP a
// moment ago.
func freeUDPAndTCPPort(t *testing.T) int {
	t.Helper()
	for range 20 {
		u, err := net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		port := u.LocalAddr().(*net.UDPAddr).Port
		l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port))
		_ = u.Close()
		if err == nil {
			_ = l.Close()
			return port
		}
	}
	t.Fatal("no port free on both UDP and TCP")
	return 0
}

// awaitOrExit waits up to d for p to print a line starting with prefix on
// stderr (returned) or to exit (exited).
func awaitOrExit(t *testing.T, p *proc, prefix string, d time.Duration) (line string, exited bool) {
	t.Helper()
	deadline := time.NewTimer(d)
	defer deadline.Stop()
	for {
		l := p.stderr
		l.mu.Lock()
		text, wake := l.buf.String(), l.wake
		l.mu.Unlock()
		for line := range strings.Lines(text) {
			if strings.HasSuffix(line, "\n") && strings.HasPrefix(line, prefix) {
				return strings.TrimSpace(line), false
			}
		}
		select {
		case <-wake:
		case <-p.done:
			return "", true
		case <-deadline.C:
			t.Fatalf("%s: no line starting with %q within %s; got:\n%s", p.name, prefix, d, text)
		}
	}
}

// TestDocumentedFlagsExist: every flag that a command line in the docs
// (README.md, ARCHITECTURE.md, docs/, the examples' comments) or in moq's
// own help gives to a moq command is one of that command's flags, so that
// renaming a flag without the docs fails here rather than in a newcomer's
// terminal.
func TestDocumentedFlagsExist(t *testing.T) {
	t.Parallel()
	flags := map[string]map[string]bool{}
	helps := map[string]string{}
	for name := range commands {
		p := start(t, "moq "+name+" -h", nil, name, "-h")
		p.mustSucceed(t, 10*time.Second)
		helps[name] = string(p.stdout.bytes())
		flags[name] = map[string]bool{"h": true, "help": true}
		for _, line := range p.stdout.all() {
			if f, ok := strings.CutPrefix(line, "  -"); ok {
				f = strings.TrimPrefix(f, "-")
				f, _, _ = strings.Cut(f, " ")
				flags[name][f] = true
			}
		}
		if len(flags[name]) == 0 {
			t.Fatalf("moq %s -h lists no flags:\n%s", name, helps[name])
		}
		if name != "relay" && !strings.Contains(helps[name], "\nExamples:\n  ") {
			t.Errorf("moq %s -h has no examples", name)
		}
	}
	texts := map[string]string{"moq help": usage}
	for name, h := range helps {
		texts["moq "+name+" -h"] = h
	}
	files, err := filepath.Glob("../../docs/*.md")
	if err != nil {
		t.Fatal(err)
	}
	goFiles, _ := filepath.Glob("../../examples/*/*.go")
	for _, f := range slices.Concat([]string{"../../README.md", "../../ARCHITECTURE.md"}, files, goFiles) {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		texts[f] = strings.ReplaceAll(string(b), "\\\n", " ") // shell line continuations
	}
	flagRE := regexp.MustCompile(`(?:^|\s|\[)--?([a-z][a-z0-9-]*)`)
	checked := 0
	for where, text := range texts {
		for line := range strings.Lines(text) {
			for _, seg := range strings.Split(line, "moq ")[1:] {
				name, rest, _ := strings.Cut(seg, " ")
				if flags[name] == nil {
					continue // prose ("moq node prints …") or not a command
				}
				// The command line ends at a comment, a backtick, a
				// separator between two commands, or a pipe.
				for _, end := range []string{" #", "`", " / ", " | ", ")", ";", ":"} {
					rest, _, _ = strings.Cut(rest, end)
				}
				for _, m := range flagRE.FindAllStringSubmatch(rest, -1) {
					checked++
					if !flags[name][m[1]] {
						t.Errorf("%s: moq %s has no flag %q: %q", where, name, m[1], strings.TrimSpace(line))
					}
				}
			}
		}
	}
	t.Logf("%d documented flags checked", checked)
	if checked < 100 {
		t.Fatalf("checked only %d documented flags: the scan is broken", checked)
	}
}

// TestWrongPeerHints: dialing the right address the wrong way (another
// peer ID, moql:// at a libp2p port, a stale or missing fingerprint) fails
// with one line that names the likely cause.
func TestWrongPeerHints(t *testing.T) {
	t.Parallel()
	pub := start(t, "pub", nil, "pub", "--broadcast", "demo", "--frames", "0", "--rate", "30",
		"--listen", "moql://127.0.0.1:0", "--listen", "/ip4/127.0.0.1/udp/0/quic-v1")
	moql := field(pub.stderr.await(t, pub.name, "listening: moql://", 20*time.Second))
	p2p := field(pub.stderr.await(t, pub.name, "listening: /", 20*time.Second))
	transportAddr, _, _ := strings.Cut(p2p, "/p2p/")
	p2pPort := strings.Split(transportAddr, "/")[4] // /ip4/127.0.0.1/udp/PORT/quic-v1
	const otherPeer = "12D3KooWQKek73nvLcpRcUUWyFz8dC3m1DTNnKpkyirxaPoo7ygQ"
	for _, c := range []struct {
		name string
		want string
		args []string
	}{
		{"other-peer-id", "(a different peer answers at that address: copy the /p2p/ address it printed",
			[]string{"sub", "--broadcast", "demo", "--connect", transportAddr + "/p2p/" + otherPeer}},
		{"moql-at-libp2p-port", "(the server wants a libp2p identity: is that a libp2p QUIC port?",
			[]string{"sub", "--broadcast", "demo", "--connect", "moql://127.0.0.1:" + p2pPort, "--insecure"}},
		{"stale-fingerprint", "(the server's certificate is another one: moq makes a new one each run",
			[]string{"sub", "--broadcast", "demo", "--connect", moql, "--fingerprint", strings.Repeat("ab", 32)}},
		{"no-fingerprint", `(pin the server with --fingerprint HEX, the SHA-256 its listener printed as "fingerprint: HEX", or skip the check with --insecure)`,
			[]string{"sub", "--broadcast", "demo", "--connect", moql}},
	} {
		t.Run(c.name, func(t *testing.T) {
			expectOneLineError(t, c.want, 30*time.Second, c.args...)
		})
	}
	pub.interrupt(t)
	pub.mustSucceed(t, 10*time.Second)
}

// TestSubOutLiveWarns: sub --out (a whole-track transfer) from a live
// publisher, whose track starts at its latest group for a new subscriber,
// says on stderr why nothing is written and what to do, instead of
// waiting in silence for a group 0 that is not coming.
func TestSubOutLiveWarns(t *testing.T) {
	t.Parallel()
	pub := start(t, "pub", nil, "pub", "--broadcast", "live", "--frames", "0", "--rate", "100", "--group-frames", "10",
		"--listen", "moql://127.0.0.1:0")
	moql := field(pub.stderr.await(t, pub.name, "listening: moql://", 20*time.Second))
	// A live subscriber that has read three groups: the track is past group 0.
	first := start(t, "sub --count", nil, "sub", "--broadcast", "live", "--connect", moql, "--insecure", "--count", "30")
	first.mustSucceed(t, 30*time.Second)

	out := filepath.Join(t.TempDir(), "out")
	sub := start(t, "sub --out", nil, "sub", "--broadcast", "live", "--connect", moql, "--insecure", "--out", out)
	line := sub.stderr.await(t, sub.name, "time=", 30*time.Second)
	if !strings.Contains(line, "level=WARN") || !strings.Contains(line, "waiting for group 0") || !strings.Contains(line, "add --count N (or drop --out)") {
		t.Fatalf("sub --out printed %q; want the warning about group 0", line)
	}
	sub.interrupt(t)
	sub.mustSucceed(t, 10*time.Second)
	// A file cut short does not pass for a whole one.
	if msg := strings.Join(sub.stderr.all(), "\n"); !strings.Contains(msg, "interrupted before the track ended: --out has the first 0 frames only") {
		t.Errorf("interrupted sub --out did not say its output is incomplete:\n%s", msg)
	}
	pub.interrupt(t)
	pub.mustSucceed(t, 10*time.Second)
}

// TestPubStdinTerminalHint: pub --stdin on a terminal says that it reads
// the lines typed there and how to end them; what is typed is published.
func TestPubStdinTerminalHint(t *testing.T) {
	t.Parallel()
	run := tmuxServer(t)
	// The shell stays after pub exits, so the pane keeps what pub left.
	cmd := fmt.Sprintf("%s pub --broadcast typed --stdin --listen moql://127.0.0.1:0 --quiet; echo EXIT=$?; sleep 600", moqBin)
	run("new-session", "-d", "-x", "200", "-y", "20", "-n", "pub", cmd)
	screen := func(want string) string {
		t.Helper()
		deadline := time.Now().Add(30 * time.Second)
		for {
			s := run("capture-pane", "-p", "-J", "-t", "pub")
			if strings.Contains(s, want) {
				return s
			}
			if time.Now().After(deadline) {
				t.Fatalf("no %q on the terminal within 30s; screen:\n%s", want, s)
			}
			time.Sleep(50 * time.Millisecond) // polling the screen: tmux has no change event
		}
	}
	screen("pub: reading frames from this terminal, a line each; end with Ctrl-D")
	run("send-keys", "-t", "pub", "hello", "Enter")
	run("send-keys", "-t", "pub", "C-d")
	s := screen("EXIT=")
	if !strings.Contains(s, `"frames":1,`) || !strings.Contains(s, "EXIT=0") {
		t.Fatalf("pub did not publish the typed line and exit 0; screen:\n%s", s)
	}
}

// TestPubNothingDelivered: a pub that had nothing to publish (empty stdin)
// or no one to publish to (a finite transfer without --wait, over before a
// subscriber came) exits 0 but says so, and what to do; /dev/null as stdin
// is not taken for a terminal.
func TestPubNothingDelivered(t *testing.T) {
	t.Parallel()
	devNull, err := os.Open(os.DevNull)
	if err != nil {
		t.Fatal(err)
	}
	defer devNull.Close()
	for _, c := range []struct {
		name  string
		stdin *os.File
		args  []string
		want  string
	}{
		{"empty-stdin", devNull, []string{"--stdin"}, `level=WARN msg="stdin was empty: nothing was published"`},
		{"no-subscriber", nil, []string{"--frames", "10"},
			`level=WARN msg="no subscriber came: the 10 frames went to no one; give --wait to hold them until one subscribes, or --frames 0 to publish live until interrupted"`},
	} {
		t.Run(c.name, func(t *testing.T) {
			var stdin io.Reader
			if c.stdin != nil {
				stdin = c.stdin
			}
			p := start(t, "pub "+c.name, stdin, append([]string{"pub", "--broadcast", "x", "--listen", "moql://127.0.0.1:0"}, c.args...)...)
			p.mustSucceed(t, 30*time.Second)
			errText := string(p.stderr.bytes())
			if !strings.Contains(errText, c.want) || strings.Contains(errText, "reading frames from this terminal") {
				t.Errorf("pub %s: stderr\n%s\nwant %q (and no terminal hint)", c.name, errText, c.want)
			}
		})
	}
}

// TestPubLiveDefaultRate: pub --frames 0 without --rate paces its
// generated frames (30 a second) instead of producing them as fast as the
// CPU allows for nobody. A subscriber joining mid-group gets that group's
// frames so far at once (at most 29), so 90 frames take at least 60 frame
// intervals, 2 s; unpaced they took milliseconds.
func TestPubLiveDefaultRate(t *testing.T) {
	t.Parallel()
	pub := start(t, "pub", nil, "pub", "--broadcast", "paced", "--frames", "0", "--listen", "moql://127.0.0.1:0")
	moql := field(pub.stderr.await(t, pub.name, "listening: moql://", 20*time.Second))
	began := time.Now()
	sub := start(t, "sub --count 90", nil, "sub", "--broadcast", "paced", "--connect", moql, "--insecure", "--count", "90")
	sub.mustSucceed(t, 60*time.Second)
	if took := time.Since(began); took < 1900*time.Millisecond {
		t.Fatalf("90 frames of a live pub without --rate arrived in %v; paced at 30 frames/s they take at least 2 s", took)
	} else {
		t.Logf("90 frames in %v", took.Round(time.Millisecond))
	}
	pub.interrupt(t)
	pub.mustSucceed(t, 10*time.Second)
}
