package main

import (
	"context"
	"fmt"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/libp2p/go-libp2p"
	dht "github.com/libp2p/go-libp2p-kad-dht"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/moqp2p/moqp2p/discovery"
	"github.com/moqp2p/moqp2p/internal/identity"
	"github.com/moqp2p/moqp2p/internal/pattern"
)

// startRelay runs moq relay with args and returns it with the addresses it
// printed (the listening lines, then "peer: " if any).
func startRelay(t *testing.T, name string, args ...string) (*proc, map[string]string) {
	t.Helper()
	p := start(t, name, nil, append([]string{"relay"}, args...)...)
	want := strings.Count(strings.Join(args, " "), "--listen ")
	p.stdout.await(t, name, "listening: ", 20*time.Second)
	got := map[string]string{}
	for deadline := time.Now().Add(5 * time.Second); len(got) < want; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%s printed %v", name, p.stdout.all())
		}
		for _, line := range p.stdout.all() {
			if addr, ok := strings.CutPrefix(line, "listening: "); ok {
				scheme, _, ok := strings.Cut(addr, "://")
				if !ok {
					scheme = "p2p"
				}
				got[scheme] = addr
			}
		}
	}
	return p, got
}

// TestRelayCluster: a publisher on relay A, a subscriber on relay B, B
// linked to A over libp2p with a cost: every frame arrives, byte for byte.
func TestRelayCluster(t *testing.T) {
	t.Parallel()
	_, aa := startRelay(t, "relay A", "--listen", "moql://127.0.0.1:0", "--listen", "/ip4/127.0.0.1/udp/0/quic-v1")
	b, ba := startRelay(t, "relay B", "--listen", "moql://127.0.0.1:0", "--connect", aa["p2p"]+"?cost=10")
	// A file transfer (--out): every group, in order, however late. Two
	// hops, each sending the newest group first, can hold the oldest back
	// longer than a live subscriber waits for it on a loaded machine.
	out := filepath.Join(t.TempDir(), "out")
	sub := start(t, "sub at B", nil, append([]string{"sub", "--connect", ba["moql"], "--insecure", "--out", out}, transferArgs["sub"]...)...)
	pub := start(t, "pub at A", nil, append([]string{"pub", "--connect", aa["moql"], "--insecure"}, transferArgs["pub"]...)...)
	sub.mustSucceed(t, 60*time.Second)
	pub.interrupt(t)
	want := pattern.Expect(100, 100, 256)
	if got := lastSummary(t, "sub", sub.stdout.all()); got != want {
		t.Fatalf("sub summary %+v, want %+v\nsub: %s\n%s\npub: %s", got, want, sub.stdout.bytes(), sub.stderr.bytes(), pub.stderr.bytes())
	}
	// Interrupted, relay B ends with its JSON line: it carried every frame
	// from A to the subscriber.
	b.interrupt(t)
	b.mustSucceed(t, 10*time.Second)
	var sum nodeSummary
	jsonLine(t, "relay B", b.stdout.all(), &sum)
	if sum.FramesReceived < uint64(want.Frames) || sum.FramesSent < uint64(want.Frames) {
		t.Errorf("relay B summary %+v: want at least %d frames each way", sum, want.Frames)
	}
}

// TestRelayAuth runs a relay with --auth-key: a put-only token publishes,
// a get token receives every frame, and expired, forged and wrong-scope
// tokens are refused, as is a put-only token's subscription.
func TestRelayAuth(t *testing.T) {
	t.Parallel()
	secret, keyFile := hmacKeyFile(t, t.TempDir())
	_, addrs := startRelay(t, "relay", "--auth-key", keyFile, "--listen", "ws://127.0.0.1:0", "--listen", "https://127.0.0.1:0")
	tok := func(c map[string]any) string { return sign(t, jwt.SigningMethodHS256, secret, c) }
	put := tok(map[string]any{"root": "room", "put": "", "exp": future()})
	get := tok(map[string]any{"root": "room", "get": "", "exp": future()})
	at := func(scheme, token string) []string {
		u := addrs[scheme] + "room?jwt=" + token
		if scheme == "https" {
			return []string{"--connect", u, "--insecure"}
		}
		return []string{"--connect", u}
	}
	for _, tc := range []struct{ name, scheme, token string }{
		{"expired", "ws", tok(map[string]any{"root": "room", "get": "", "exp": time.Now().Add(-time.Minute).Unix()})},
		{"forged", "https", sign(t, jwt.SigningMethodHS256, []byte("not the relay's secret, not at all"), map[string]any{"root": "room", "get": "", "exp": future()})},
		{"wrong scope", "ws", tok(map[string]any{"root": "elsewhere", "get": "", "exp": future()})},
		{"expired over WebTransport", "https", tok(map[string]any{"root": "room", "get": "", "exp": time.Now().Add(-time.Minute).Unix()})},
	} {
		p := start(t, "sub "+tc.name, nil, append([]string{"sub", "--broadcast", "e2e", "--timeout", "5s"}, at(tc.scheme, tc.token)...)...)
		if code := p.wait(t, 30*time.Second); code == 0 {
			t.Errorf("%s token: sub succeeded", tc.name)
		}
		// WebTransport sessions are closed with Unauthorized (6);
		// WebSocket upgrades are refused with 403 before any session.
		want := map[string]string{"https": "code 6", "ws": "got 403"}[tc.scheme]
		if msg := strings.Join(p.stderr.all(), " | "); !strings.Contains(msg, want) {
			t.Errorf("%s token: %q does not say %q", tc.name, msg, want)
		}
	}
	pub := start(t, "pub", nil, append(append([]string{"pub"}, at("ws", put)...), transferArgs["pub"]...)...)
	// Publishing only: the broadcast is never offered to this session.
	denied := start(t, "sub put-only", nil, append([]string{"sub", "--broadcast", "e2e", "--timeout", "3s"}, at("ws", put)...)...)
	sub := start(t, "sub", nil, append(append([]string{"sub", "--out", filepath.Join(t.TempDir(), "out")}, at("https", get)...), transferArgs["sub"]...)...)
	sub.mustSucceed(t, 60*time.Second)
	if got, want := lastSummary(t, "sub", sub.stdout.all()), pattern.Expect(100, 100, 256); got != want {
		t.Fatalf("sub summary %+v, want %+v", got, want)
	}
	if code := denied.wait(t, 30*time.Second); code == 0 {
		t.Error("a put-only token subscribed")
	}
	t.Logf("put-only: %s", strings.Join(denied.stderr.all(), " | "))
	pub.mustSucceed(t, 30*time.Second)
}

// TestRelayRefusalsOverWebTransport: subscribers refused one after another
// over WebTransport each read the relay's code (Unauthorized), never their
// own connection's close, and leave nothing counted against their address:
// each closes its QUIC connection before exiting, or after a few the relay
// would refuse the next as too many sessions waiting for admission (4 per
// address) until those connections timed out. Both failed about once in a
// hundred on a loaded machine.
func TestRelayRefusalsOverWebTransport(t *testing.T) {
	t.Parallel()
	secret, keyFile := hmacKeyFile(t, t.TempDir())
	_, addrs := startRelay(t, "relay", "--auth-key", keyFile, "--listen", "https://127.0.0.1:0")
	expired := sign(t, jwt.SigningMethodHS256, secret, map[string]any{"root": "room", "get": "", "exp": time.Now().Add(-time.Minute).Unix()})
	for i := range 30 {
		p := start(t, "sub", nil, "sub", "--broadcast", "e2e", "--timeout", "5s", "--connect", addrs["https"]+"room?jwt="+expired, "--insecure")
		if code := p.wait(t, 30*time.Second); code == 0 {
			t.Fatalf("sub %d succeeded with an expired token", i)
		}
		if msg := strings.Join(p.stderr.all(), " | "); !strings.Contains(msg, "code 6") {
			t.Fatalf("sub %d: %q does not name the relay's refusal (code 6)", i, msg)
		}
	}
}

// TestRelayAuthLink: a relay with --auth-key takes the broadcasts of a
// relay it links to itself (--connect moql://, a kept link) although the
// link carries no token and nothing is public: a session the relay dialed
// is its own, not a client's. A subscriber with a get token receives every
// frame published at the other relay.
func TestRelayAuthLink(t *testing.T) {
	t.Parallel()
	secret, keyFile := hmacKeyFile(t, t.TempDir())
	_, aa := startRelay(t, "relay A", "--listen", "moql://127.0.0.1:0")
	_, ba := startRelay(t, "relay B", "--auth-key", keyFile, "--listen", "ws://127.0.0.1:0", "--connect", aa["moql"], "--insecure")
	get := sign(t, jwt.SigningMethodHS256, secret, map[string]any{"root": "room", "get": "", "exp": future()})
	out := filepath.Join(t.TempDir(), "out")
	sub := start(t, "sub at B", nil, "sub", "--connect", ba["ws"]+"room?jwt="+get, "--out", out, "--broadcast", "e2e")
	pub := start(t, "pub at A", nil, append([]string{"pub", "--connect", aa["moql"], "--insecure"},
		"--broadcast", "room/e2e", "--frames", "10000", "--group-frames", "100", "--size", "256", "--wait")...)
	sub.mustSucceed(t, 60*time.Second)
	pub.interrupt(t)
	if got, want := lastSummary(t, "sub", sub.stdout.all()), pattern.Expect(100, 100, 256); got != want {
		t.Fatalf("sub summary %+v, want %+v\nsub: %s", got, want, sub.stderr.bytes())
	}
}

// TestRelayLinkRedials: relay B keeps its --connect moql:// link to relay
// A. A is killed (SIGKILL: its socket goes silent) and started again on
// the same port; B notices the loss within its dead-peer bound, redials,
// and a broadcast published at the new A reaches a subscriber at B.
func TestRelayLinkRedials(t *testing.T) {
	t.Parallel()
	dp := "--dead-peer-timeout=2s"
	a, aa := startRelay(t, "relay A", "--listen", "moql://127.0.0.1:0", dp)
	b, ba := startRelay(t, "relay B", "--listen", "moql://127.0.0.1:0", "--connect", aa["moql"], "--insecure", dp)
	// The link is up once B forwards what A carries: a short transfer.
	pub := start(t, "pub at A", nil, "pub", "--connect", aa["moql"], "--insecure", "--broadcast", "first", "--frames", "0", "--rate", "50")
	sub := start(t, "sub at B", nil, "sub", "--connect", ba["moql"], "--insecure", "--broadcast", "first", "--count", "20")
	sub.mustSucceed(t, 60*time.Second)
	pub.interrupt(t)
	if err := a.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	awaitLog(t, b, `msg="link lost; redialing"`, 30*time.Second)
	startRelay(t, "relay A again", "--listen", aa["moql"], dp)
	awaitLog(t, b, `msg="link restored"`, 30*time.Second) // said at the loss's level
	out := filepath.Join(t.TempDir(), "out")
	sub = start(t, "sub at B after", nil, append([]string{"sub", "--connect", ba["moql"], "--insecure", "--out", out}, transferArgs["sub"]...)...)
	pub = start(t, "pub at A again", nil, append([]string{"pub", "--connect", aa["moql"], "--insecure"}, transferArgs["pub"]...)...)
	sub.mustSucceed(t, 60*time.Second)
	pub.interrupt(t)
	if got, want := lastSummary(t, "sub", sub.stdout.all()), pattern.Expect(100, 100, 256); got != want {
		t.Fatalf("sub summary %+v, want %+v\nrelay B: %s", got, want, b.stderr.bytes())
	}
}

// awaitLog waits for a line of p's log (stderr) containing s.
func awaitLog(t *testing.T, p *proc, s string, d time.Duration) {
	t.Helper()
	deadline := time.NewTimer(d)
	defer deadline.Stop()
	for {
		p.stderr.mu.Lock()
		text, wake := p.stderr.buf.String(), p.stderr.wake
		p.stderr.mu.Unlock()
		if strings.Contains(text, s) {
			return
		}
		select {
		case <-wake:
		case <-deadline.C:
			t.Fatalf("%s: no log line with %q within %s; got:\n%s", p.name, s, d, text)
		}
	}
}

// TestRelayGomoqt: gomoqt v0.16 (moq-lite-04) publishes into relay A, and
// gomoqt v0.12 (moq-lite-03) subscribes at relay C, through A → B → C
// (libp2p links): every frame arrives.
func TestRelayGomoqt(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the gomoqt peers")
	}
	t.Parallel()
	pubBin, subBin := buildGomoqt(t, "gomoqt-lite04"), buildGomoqt(t, "gomoqt-lite03")
	_, a := startRelay(t, "relay A", "--listen", "moql://127.0.0.1:0", "--listen", "/ip4/127.0.0.1/udp/0/quic-v1")
	_, b := startRelay(t, "relay B", "--listen", "/ip4/127.0.0.1/udp/0/quic-v1", "--connect", a["p2p"])
	_, c := startRelay(t, "relay C", "--listen", "moql://127.0.0.1:0", "--connect", b["p2p"])
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	pub := exec.CommandContext(ctx, pubBin, "-role", "client", "-mode", "pub", "-addr", strings.TrimPrefix(a["moql"], "moql://"), "-timeout", "60s", "-linger", "10s")
	pubOut := newLines()
	pub.Stdout, pub.Stderr = pubOut, pubOut
	if err := pub.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = pub.Process.Kill(); _ = pub.Wait() }()
	sub := exec.CommandContext(ctx, subBin, "-role", "client", "-mode", "sub", "-announce", "-addr", strings.TrimPrefix(c["moql"], "moql://"), "-timeout", "60s")
	out, err := sub.CombinedOutput()
	if err != nil {
		t.Fatalf("gomoqt lite-03 subscriber: %v\n%s\npublisher:\n%s", err, out, pubOut.bytes())
	}
	if got, want := lastSummary(t, "gomoqt-lite03", strings.Split(strings.TrimSpace(string(out)), "\n")), pattern.Expect(100, 100, 1024); got != want {
		t.Fatalf("subscriber got %+v, want %+v", got, want)
	}
}

func TestRelayHelp(t *testing.T) {
	t.Parallel()
	p := start(t, "moq relay --help", nil, "relay", "--help")
	p.mustSucceed(t, 10*time.Second)
	out := string(p.stdout.bytes())
	for _, want := range []string{"usage: moq relay", "--auth-key", "--public", "?cost=N", "/announced/PREFIX"} {
		if !strings.Contains(out, want) {
			t.Errorf("moq relay --help does not mention %q:\n%s", want, out)
		}
	}
	p = start(t, "moq relay", nil, "relay")
	if code := p.wait(t, 10*time.Second); code != 2 {
		t.Errorf("moq relay without --listen: exit %d, want 2", code)
	}
}

// TestRelayAdvertise: moq relay --advertise joins the DHT through a moq
// node and records itself under the relay key; a DHT client that knows
// only the bootstrap node finds it there.
func TestRelayAdvertise(t *testing.T) {
	t.Parallel()
	_, boot := bootstrapNode(t)
	r := start(t, "relay --advertise", nil, "relay", "--advertise", "--bootstrap", boot, "--listen", loopbackQUIC)
	id := field(r.stdout.await(t, r.name, "peer: ", 20*time.Second))
	want, err := peer.Decode(id)
	if err != nil {
		t.Fatalf("relay printed peer %q: %v", id, err)
	}
	h, err := libp2p.New(libp2p.ListenAddrStrings("/ip4/127.0.0.1/udp/0/quic-v1"))
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = h.Close() }()
	d, err := discovery.NewDHT(h, dht.Mode(dht.ModeClient))
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = d.Close() }()
	bi, err := peer.AddrInfoFromString(boot)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := h.Connect(ctx, *bi); err != nil {
		t.Fatal(err)
	}
	for {
		for info := range discovery.FindRelays(ctx, d) {
			if info.ID == want {
				return
			}
			t.Fatalf("found relay %s, want only %s", info.ID, want)
		}
		select {
		case <-ctx.Done():
			t.Fatal("the relay is not in the DHT after 20 s")
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// TestRelayAuthMutualLinks: two --auth-key relays that --connect each other
// over libp2p, with nothing public. Whichever dial lands first is the link
// (the other side adopts it), so each relay must trust the peer it names
// in --connect whoever dialed: a token publisher at A reaches a token
// subscriber at B.
func TestRelayAuthMutualLinks(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	secret, keyFile := hmacKeyFile(t, dir)
	type relay struct{ idFile, p2p string }
	var rs [2]relay
	for i := range rs {
		rs[i].idFile = filepath.Join(dir, fmt.Sprintf("relay%d.key", i))
		k, err := identity.Load(rs[i].idFile) // created: the peer ID is known before the relay starts
		if err != nil {
			t.Fatal(err)
		}
		id, err := peer.IDFromPrivateKey(k)
		if err != nil {
			t.Fatal(err)
		}
		rs[i].p2p = fmt.Sprintf("/ip4/127.0.0.1/udp/%d/quic-v1/p2p/%s", freePort(t, "udp"), id)
	}
	listen := func(r relay) string { before, _, _ := strings.Cut(r.p2p, "/p2p/"); return before }
	_, aa := startRelay(t, "relay A", "--auth-key", keyFile, "--identity", rs[0].idFile, "--listen", "ws://127.0.0.1:0",
		"--listen", listen(rs[0]), "--connect", rs[1].p2p)
	_, ba := startRelay(t, "relay B", "--auth-key", keyFile, "--identity", rs[1].idFile, "--listen", "ws://127.0.0.1:0",
		"--listen", listen(rs[1]), "--connect", rs[0].p2p)
	put := sign(t, jwt.SigningMethodHS256, secret, map[string]any{"root": "room", "put": "", "exp": future()})
	get := sign(t, jwt.SigningMethodHS256, secret, map[string]any{"root": "room", "get": "", "exp": future()})
	out := filepath.Join(t.TempDir(), "out")
	sub := start(t, "sub at B", nil, "sub", "--connect", ba["ws"]+"room?jwt="+get, "--out", out, "--broadcast", "e2e")
	pub := start(t, "pub at A", nil, "pub", "--connect", aa["ws"]+"room?jwt="+put,
		"--broadcast", "e2e", "--frames", "10000", "--group-frames", "100", "--size", "256", "--wait")
	sub.mustSucceed(t, 60*time.Second)
	pub.interrupt(t)
	if got, want := lastSummary(t, "sub", sub.stdout.all()), pattern.Expect(100, 100, 256); got != want {
		t.Fatalf("sub summary %+v, want %+v\nsub: %s", got, want, sub.stderr.bytes())
	}
}

// TestRelayClusterUnknownTrack: a live sub at relay B asking for a track
// the publisher at relay A lacks ends at once with one line naming the
// track, as it does against the publisher directly, instead of
// resubscribing at B (which takes the subscription, then resets it when
// A refuses) forever.
func TestRelayClusterUnknownTrack(t *testing.T) {
	t.Parallel()
	_, aa := startRelay(t, "relay A", "--listen", "moql://127.0.0.1:0", "--listen", "/ip4/127.0.0.1/udp/0/quic-v1")
	b, ba := startRelay(t, "relay B", "--listen", "moql://127.0.0.1:0", "--connect", aa["p2p"], "--http", "127.0.0.1:0")
	start(t, "pub at A", nil, "pub", "--connect", aa["moql"], "--insecure", "--broadcast", "demo2", "--frames", "0")
	announced(t, relayHTTP(t, b), "", []string{"demo2"}) // B forwards it
	started := time.Now()
	expectOneLineError(t, `unknown track "nope"`, 20*time.Second,
		"sub", "--broadcast", "demo2", "--track", "nope", "--connect", ba["moql"], "--insecure", "--max-outage", "3s")
	t.Logf("sub ended after %v", time.Since(started).Round(time.Millisecond))
}
