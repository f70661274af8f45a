package main

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/moqp2p/moqp2p/internal/pattern"
)

// The end-to-end tests run the built binary as a user would, on loopback.

// transferArgs: 10 000 frames of 256 bytes, 100 per group, every one of
// them delivered (--wait).
var transferArgs = map[string][]string{
	"pub": {"--broadcast", "e2e", "--frames", "10000", "--group-frames", "100", "--size", "256", "--wait"},
	"sub": {"--broadcast", "e2e"},
}

// lastSummary parses the last line of out as the JSON summary.
func lastSummary(t *testing.T, who string, ls []string) pattern.Summary {
	t.Helper()
	if len(ls) == 0 {
		t.Fatalf("%s printed no summary", who)
	}
	var s pattern.Summary
	if err := json.Unmarshal([]byte(ls[len(ls)-1]), &s); err != nil {
		t.Fatalf("%s: summary %q: %v", who, ls[len(ls)-1], err)
	}
	return s
}

// listenFor starts moq <role> listening on url with args, and returns the
// process and the --connect arguments that reach it: the printed address of
// the same kind, and for moql:// either the printed fingerprint or
// --insecure.
func listenFor(t *testing.T, role, url string, insecure bool, args ...string) (*proc, []string) {
	t.Helper()
	p := start(t, role+" --listen", nil, append([]string{role, "--listen", url}, args...)...)
	prefix := "listening: /"
	scheme, _, _ := strings.Cut(url, "://")
	if scheme != url {
		prefix = "listening: " + scheme + "://"
	}
	connect := []string{"--connect", field(p.stderr.await(t, p.name, prefix, 20*time.Second))}
	if scheme == "moql" || scheme == "https" {
		fp := field(p.stderr.await(t, p.name, "fingerprint: ", time.Second))
		if insecure {
			connect = append(connect, "--insecure")
		} else {
			connect = append(connect, "--fingerprint", fp)
		}
	}
	return p, connect
}

// transfer runs pub and sub, one listening on url and the other connecting,
// and checks that both ends report every frame with equal digests. sub
// writes the payloads to a file: a complete transfer, which waits for a
// late group however late (a live sub gives one up after half a second,
// which a loaded machine can exceed), and whose file must hold every frame.
func transfer(t *testing.T, listener, url string, insecure bool) {
	t.Helper()
	other := map[string]string{"pub": "sub", "sub": "pub"}[listener]
	out := filepath.Join(t.TempDir(), "out")
	args := map[string][]string{"pub": transferArgs["pub"], "sub": append([]string{"--out", out}, transferArgs["sub"]...)}
	begin := time.Now()
	l, connect := listenFor(t, listener, url, insecure, args[listener]...)
	d := start(t, other+" --connect", nil, append(append([]string{other}, connect...), args[other]...)...)
	d.mustSucceed(t, 30*time.Second)
	l.mustSucceed(t, 30*time.Second)
	pub, sub := l, d
	if listener == "sub" {
		pub, sub = d, l
	}
	want := pattern.Expect(100, 100, 256)
	if got := lastSummary(t, "pub", pub.stdout.all()); got != want {
		t.Errorf("pub summary %+v, want %+v", got, want)
	}
	if got := lastSummary(t, "sub", sub.stdout.all()); got != want {
		t.Errorf("sub summary %+v, want %+v", got, want)
	}
	if data, err := os.ReadFile(out); err != nil {
		t.Error(err)
	} else if sum := sha256.Sum256(data); hex.EncodeToString(sum[:]) != want.SHA256 || uint64(len(data)) != want.Bytes {
		t.Errorf("sub wrote %d bytes, sha256 %x; want %d bytes, %s", len(data), sum, want.Bytes, want.SHA256)
	}
	for _, p := range []*proc{pub, sub} {
		if s := strings.TrimSpace(strings.Join(p.stderr.all(), "\n")); strings.Contains(s, "level=") {
			t.Errorf("%s logged:\n%s", p.name, s)
		}
	}
	t.Logf("%s listening, 10 000 frames: %s", listener, time.Since(begin).Round(time.Millisecond))
}

func TestTransferMoQL(t *testing.T) {
	t.Parallel()
	for _, listener := range []string{"pub", "sub"} {
		for _, insecure := range []bool{false, true} {
			name := listener + "-listens/fingerprint"
			if insecure {
				name = listener + "-listens/insecure"
			}
			t.Run(name, func(t *testing.T) {
				t.Parallel()
				transfer(t, listener, "moql://127.0.0.1:0", insecure)
			})
		}
	}
}

// WebSocket and WebTransport, the transports browsers use, carry the same
// transfer between two CLI processes.
func TestTransferWeb(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		name, listener, url string
		insecure            bool
	}{
		{"pub-listens/ws", "pub", "ws://127.0.0.1:0/moq", false},
		{"sub-listens/ws", "sub", "ws://127.0.0.1:0/", false},
		{"pub-listens/webtransport", "pub", "https://127.0.0.1:0/moq", false},
		{"sub-listens/webtransport-insecure", "sub", "https://127.0.0.1:0/", true},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			transfer(t, c.listener, c.url, c.insecure)
		})
	}
}

func TestTransferP2P(t *testing.T) {
	t.Parallel()
	for _, c := range []struct{ name, listener, url string }{
		{"pub-listens/quic", "pub", "/ip4/127.0.0.1/udp/0/quic-v1"},
		{"sub-listens/quic", "sub", "/ip4/127.0.0.1/udp/0/quic-v1"},
		// TCP has no raw QUIC path: the session runs over libp2p streams.
		{"pub-listens/tcp", "pub", "/ip4/127.0.0.1/tcp/0"},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			transfer(t, c.listener, c.url, false)
		})
	}
}

// TestStdin pipes a file through pub --stdin and sub --out -, over several
// groups (which may arrive out of order): the bytes must come out
// identical, and the digest is the file's SHA-256.
func TestStdin(t *testing.T) {
	t.Parallel()
	in := make([]byte, 70_000)
	_, _ = rand.Read(in)
	sum := sha256.Sum256(in)
	for _, url := range []string{"moql://127.0.0.1:0", "/ip4/127.0.0.1/udp/0/quic-v1"} {
		t.Run(strings.SplitN(url, ":", 2)[0], func(t *testing.T) {
			t.Parallel()
			pub := start(t, "pub --stdin", bytes.NewReader(in),
				"pub", "--listen", url, "--broadcast", "file", "--stdin", "--wait", "--size", "512", "--group-frames", "4")
			prefix := "listening: /"
			if strings.HasPrefix(url, "moql") {
				prefix = "listening: moql://"
			}
			addr := field(pub.stderr.await(t, pub.name, prefix, 20*time.Second))
			sub := start(t, "sub --out -", nil, "sub", "--connect", addr, "--insecure", "--broadcast", "file", "--out", "-")
			sub.mustSucceed(t, 30*time.Second)
			pub.mustSucceed(t, 30*time.Second)
			if out := sub.stdout.bytes(); !bytes.Equal(out, in) {
				t.Fatalf("sub wrote %d bytes, not the %d piped in (or not in order)", len(out), len(in))
			}
			// With payloads on stdout, the summary goes to stderr.
			s := lastSummary(t, "sub", sub.stderr.all())
			if s.SHA256 != hex.EncodeToString(sum[:]) || s.Bytes != uint64(len(in)) {
				t.Errorf("sub summary %+v; file sha256 %x, %d bytes", s, sum, len(in))
			}
			if p := lastSummary(t, "pub", pub.stdout.all()); p != s {
				t.Errorf("pub summary %+v != sub summary %+v", p, s)
			}
		})
	}
}

// TestCount: sub --count stops after N frames and digests exactly those.
func TestCount(t *testing.T) {
	t.Parallel()
	pub, connect := listenFor(t, "pub", "moql://127.0.0.1:0", true, "--broadcast", "c", "--frames", "1000",
		"--group-frames", "10", "--size", "100", "--wait", "--rate", "2000")
	sub := start(t, "sub --count", nil, append(append([]string{"sub"}, connect...), "--broadcast", "c", "--count", "250")...)
	sub.mustSucceed(t, 30*time.Second)
	if got, want := lastSummary(t, "sub", sub.stdout.all()), pattern.Expect(25, 10, 100); got != want {
		t.Errorf("sub summary %+v, want %+v", got, want)
	}
	pub.mustSucceed(t, 30*time.Second)
}

// expectOneLineError runs moq and wants a non-zero exit with exactly one
// line on stderr containing want.
func expectOneLineError(t *testing.T, want string, d time.Duration, args ...string) {
	t.Helper()
	p := start(t, "moq "+strings.Join(args, " "), nil, args...)
	code := p.wait(t, d)
	errLines := p.stderr.all()
	if code == 0 || len(errLines) != 1 || !strings.Contains(errLines[0], want) || !strings.HasPrefix(errLines[0], "moq: ") {
		t.Errorf("moq %s: exit %d, stderr %q; want non-zero and one line containing %q", strings.Join(args, " "), code, errLines, want)
	}
}

func TestErrors(t *testing.T) {
	t.Parallel()
	const peerID = "12D3KooWQKek73nvLcpRcUUWyFz8dC3m1DTNnKpkyirxaPoo7ygQ"
	for _, c := range []struct {
		name string
		want string
		args []string
	}{
		{"scheme", `unsupported scheme "foo"`, []string{"sub", "--broadcast", "x", "--connect", "foo://127.0.0.1:1"}},
		{"no-scheme", "not a URL or multiaddr (did you mean moql://127.0.0.1:4443?)", []string{"sub", "--broadcast", "x", "--connect", "127.0.0.1:4443"}},
		{"wss-listen", "cannot listen on wss://", []string{"pub", "--broadcast", "x", "--listen", "wss://127.0.0.1:0/moq"}},
		{"no-port", "needs host:port", []string{"sub", "--broadcast", "x", "--connect", "moql://127.0.0.1"}},
		{"no-peer-id", "needs a /p2p/<peer-id>", []string{"sub", "--broadcast", "x", "--connect", "/ip4/127.0.0.1/udp/1/quic-v1"}},
		{"bad-multiaddr", "malformed multiaddr", []string{"sub", "--broadcast", "x", "--connect", "/ip4/1.2.3/udp"}},
		{"bad-fingerprint", "--fingerprint", []string{"sub", "--broadcast", "x", "--connect", "moql://127.0.0.1:1", "--fingerprint", "zz"}},
		{"no-broadcast", "--broadcast is required", []string{"sub", "--connect", "moql://127.0.0.1:1"}},
		{"unknown-flag", "pub: unknown flag --nope (see moq pub -h)", []string{"pub", "--nope"}},
		{"misspelt-flag", "sub: unknown flag --fingerprnt; did you mean --fingerprint?", []string{"sub", "--fingerprnt", "x"}},
		{"flag-prefix", "pub: unknown flag --list; did you mean --listen?", []string{"pub", "--list", "moql://127.0.0.1:1"}},
		{"unknown-command", "unknown command", []string{"frobnicate"}},
		{"unreachable-moql", "no answer within 3s", []string{"sub", "--broadcast", "x", "--connect", "moql://127.0.0.1:1", "--insecure", "--timeout", "3s"}},
		{"unreachable-p2p", "no answer within 3s", []string{"sub", "--broadcast", "x", "--connect", "/ip4/127.0.0.1/udp/1/quic-v1/p2p/" + peerID, "--timeout", "3s"}},
		{"unreachable-pub", "no answer within 3s", []string{"pub", "--broadcast", "x", "--connect", "moql://127.0.0.1:1", "--insecure", "--timeout", "3s"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			expectOneLineError(t, c.want, 15*time.Second, c.args...)
		})
	}
}

// TestUnknownBroadcast: subscribing to a broadcast the peer does not have
// is one line and a non-zero exit, over both stacks.
func TestUnknownBroadcast(t *testing.T) {
	t.Parallel()
	pub := start(t, "pub", nil, "pub", "--broadcast", "known", "--wait",
		"--listen", "moql://127.0.0.1:0", "--listen", "/ip4/127.0.0.1/udp/0/quic-v1")
	moql := field(pub.stderr.await(t, pub.name, "listening: moql://", 20*time.Second))
	p2p := field(pub.stderr.await(t, pub.name, "listening: /", 20*time.Second))
	t.Run("moql", func(t *testing.T) {
		expectOneLineError(t, `unknown broadcast "nope"`, 15*time.Second,
			"sub", "--broadcast", "nope", "--connect", moql, "--insecure")
	})
	t.Run("p2p", func(t *testing.T) {
		expectOneLineError(t, `unknown broadcast "nope"`, 15*time.Second,
			"sub", "--broadcast", "nope", "--connect", p2p, "--timeout", "2s")
	})
	pub.interrupt(t)
	pub.mustSucceed(t, 10*time.Second)
}

var clockLine = regexp.MustCompile(`^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d$`)

// TestClock: clock sub prints the publisher's time lines, one a second.
func TestClock(t *testing.T) {
	t.Parallel()
	for _, c := range []struct{ name, listener, url string }{
		{"moql/pub-listens", "pub", "moql://127.0.0.1:0"},
		{"p2p/sub-listens", "sub", "/ip4/127.0.0.1/udp/0/quic-v1"},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			other := map[string]string{"pub": "sub", "sub": "pub"}[c.listener]
			count := map[string][]string{"pub": nil, "sub": {"--count", "2"}}
			l := start(t, "clock "+c.listener, nil, append([]string{"clock", c.listener, "--listen", c.url}, count[c.listener]...)...)
			prefix := "listening: /"
			if strings.HasPrefix(c.url, "moql") {
				prefix = "listening: moql://"
			}
			addr := field(l.stderr.await(t, l.name, prefix, 20*time.Second))
			d := start(t, "clock "+other, nil, append([]string{"clock", other, "--connect", addr, "--insecure"}, count[other]...)...)
			pub, sub := l, d
			if c.listener == "sub" {
				pub, sub = d, l
			}
			begin := time.Now()
			sub.mustSucceed(t, 4*time.Second) // two lines: within ~1-2 s
			t.Logf("two clock lines in %s", time.Since(begin).Round(time.Millisecond))
			got := sub.stdout.all()
			if len(got) != 2 || !clockLine.MatchString(got[0]) || !clockLine.MatchString(got[1]) || got[0] >= got[1] {
				t.Errorf("clock sub printed %q; want two increasing time lines", got)
			}
			// A listening publisher serves until interrupted; a dialing one
			// ends when its subscriber hangs up.
			if pub == l {
				pub.interrupt(t)
			}
			pub.mustSucceed(t, 10*time.Second)
		})
	}
}

// TestChat: two peers exchange a line each way.
func TestChat(t *testing.T) {
	t.Parallel()
	aIn, aW := pipe(t)
	bIn, bW := pipe(t)
	a := start(t, "chat alice", aIn, "chat", "--name", "alice", "--listen", "moql://127.0.0.1:0")
	addr := field(a.stderr.await(t, a.name, "listening: moql://", 20*time.Second))
	b := start(t, "chat bob", bIn, "chat", "--name", "bob", "--connect", addr, "--insecure")
	a.stderr.await(t, a.name, "* bob joined", 10*time.Second)
	b.stderr.await(t, b.name, "* alice joined", 10*time.Second)
	if _, err := bW.Write([]byte("hi from bob\n")); err != nil {
		t.Fatal(err)
	}
	if _, err := aW.Write([]byte("hello from alice\n")); err != nil {
		t.Fatal(err)
	}
	a.stdout.await(t, a.name, "bob: hi from bob", 10*time.Second)
	b.stdout.await(t, b.name, "alice: hello from alice", 10*time.Second)
	_ = bW.Close()
	_ = aW.Close()
	b.mustSucceed(t, 10*time.Second)
	a.mustSucceed(t, 10*time.Second)
}

// TestNode: moq node prints its peer ID and dialable addresses, serves a
// session, and shuts down on SIGINT.
func TestNode(t *testing.T) {
	t.Parallel()
	n := start(t, "node", nil, "node", "--listen", "/ip4/127.0.0.1/udp/0/quic-v1")
	id := field(n.stdout.await(t, n.name, "peer: ", 20*time.Second))
	addr := field(n.stdout.await(t, n.name, "listening: ", 5*time.Second))
	if !strings.HasPrefix(addr, "/ip4/127.0.0.1/udp/") || !strings.HasSuffix(addr, "/quic-v1/p2p/"+id) {
		t.Fatalf("node address %q; want /ip4/127.0.0.1/udp/PORT/quic-v1/p2p/%s", addr, id)
	}
	// A session to it works; it publishes nothing.
	expectOneLineError(t, `unknown broadcast "x"`, 15*time.Second, "sub", "--broadcast", "x", "--connect", addr, "--timeout", "1s")
	n.stderr.await(t, n.name, "session: ", 5*time.Second)
	n.interrupt(t)
	n.mustSucceed(t, 10*time.Second)
	var sum nodeSummary
	jsonLine(t, "node", n.stdout.all(), &sum)
	if sum.BytesSent != 0 || sum.BytesReceived != 0 {
		t.Errorf("node summary %+v: it carried no media", sum)
	}
}

func TestHelp(t *testing.T) {
	t.Parallel()
	for _, args := range [][]string{{"help"}, {"help", "pub"}, {"sub", "-h"}, {"clock", "--help"}} {
		p := start(t, "moq "+strings.Join(args, " "), nil, args...)
		p.mustSucceed(t, 10*time.Second)
		if out := string(p.stdout.bytes()); !strings.Contains(out, "usage: moq") {
			t.Errorf("moq %s printed %q", strings.Join(args, " "), out)
		}
	}
	p := start(t, "moq", nil)
	if code := p.wait(t, 10*time.Second); code != 2 || !strings.Contains(string(p.stderr.bytes()), "usage: moq") {
		t.Errorf("moq with no arguments: exit %d, stderr %q", code, p.stderr.bytes())
	}
}

// TestP2PRawQUIC: a QUIC multiaddr gets moq-lite on raw QUIC over the
// host's socket (p2pquic), not the libp2p-streams fallback.
func TestP2PRawQUIC(t *testing.T) {
	t.Parallel()
	pub, connect := listenFor(t, "pub", "/ip4/127.0.0.1/udp/0/quic-v1", false, "--broadcast", "q", "--frames", "10", "--wait")
	sub := start(t, "sub -v", nil, append(append([]string{"sub"}, connect...), "--broadcast", "q", "-v")...)
	sub.mustSucceed(t, 30*time.Second)
	pub.mustSucceed(t, 30*time.Second)
	if !strings.Contains(string(sub.stderr.bytes()), `via="raw QUIC (p2pquic)"`) {
		t.Errorf("sub did not report a p2pquic session:\n%s", sub.stderr.bytes())
	}
}
