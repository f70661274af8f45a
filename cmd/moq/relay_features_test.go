package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/moqp2p/moqp2p/broadcast"
	"github.com/moqp2p/moqp2p/internal/identity"
	"github.com/moqp2p/moqp2p/internal/pattern"
	"github.com/moqp2p/moqp2p/moq/server"
	"github.com/moqp2p/moqp2p/session"
	"github.com/moqp2p/moqp2p/transport"
)

// relayHTTP is the address the relay printed for --http ("http: URL").
func relayHTTP(t *testing.T, p *proc) string {
	t.Helper()
	return strings.TrimSuffix(field(p.stdout.await(t, p.name, "http: ", 20*time.Second)), "/")
}

// httpGet fetches url and returns the response (its body read) and body.
func httpGet(t *testing.T, url string) (*http.Response, []byte) {
	t.Helper()
	c := &http.Client{Timeout: 10 * time.Second}
	resp, err := c.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	return resp, body
}

// announced polls GET /announced/prefix until it lists want (sorted),
// checking the reply's headers on the way.
func announced(t *testing.T, base, prefix string, want []string) {
	t.Helper()
	var got []string
	deadline := time.Now().Add(20 * time.Second)
	for {
		resp, body := httpGet(t, base+"/announced/"+prefix)
		if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "application/json" {
			t.Fatalf("GET /announced/%s: %s, Content-Type %q: %s", prefix, resp.Status, resp.Header.Get("Content-Type"), body)
		}
		got = nil
		if err := json.Unmarshal(body, &got); err != nil || got == nil {
			t.Fatalf("GET /announced/%s: not a JSON list (%v): %s", prefix, err, body)
		}
		if slices.Equal(got, want) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("GET /announced/%s lists %q, want %q", prefix, got, want)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestRelayHTTP: moq-relay's HTTP endpoints on --http. /announced/PREFIX
// lists the broadcasts under PREFIX (a JSON list, full paths), and
// /fetch/BROADCAST/TRACK returns the track's latest group: its frames
// concatenated, byte for byte, with the group's number in X-Group.
func TestRelayHTTP(t *testing.T) {
	t.Parallel()
	r, addrs := startRelay(t, "relay", "--listen", "moql://127.0.0.1:0", "--http", "127.0.0.1:0")
	base := relayHTTP(t, r)
	const k, size = 5, 64
	for _, name := range []string{"room/a", "room/b", "other/c"} {
		start(t, "pub "+name, nil, "pub", "--connect", addrs["moql"], "--insecure", "--broadcast", name,
			"--frames", "0", "--rate", "100", "--group-frames", strconv.Itoa(k), "--size", strconv.Itoa(size))
	}
	announced(t, base, "room", []string{"room/a", "room/b"})
	announced(t, base, "", []string{"other/c", "room/a", "room/b"})
	announced(t, base, "nothing/here", []string{})

	var seqs []uint64
	for range 2 {
		resp, body := httpGet(t, base+"/fetch/room/a/data")
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("GET /fetch/room/a/data: %s: %s", resp.Status, body)
		}
		if ct, cors := resp.Header.Get("Content-Type"), resp.Header.Get("Access-Control-Allow-Origin"); ct != "application/octet-stream" || cors != "*" {
			t.Errorf("fetch headers: Content-Type %q, Access-Control-Allow-Origin %q", ct, cors)
		}
		g, err := strconv.ParseUint(resp.Header.Get("X-Group"), 10, 64)
		if err != nil {
			t.Fatalf("X-Group %q: %v", resp.Header.Get("X-Group"), err)
		}
		// Group g holds frames g·k … g·k+k-1 of the publisher's pattern.
		var want []byte
		for i := range uint64(k) {
			want = append(want, pattern.Payload(g*k+i, size)...)
		}
		if !bytes.Equal(body, want) {
			t.Fatalf("fetched group %d: %d bytes differing from the %d published", g, len(body), len(want))
		}
		seqs = append(seqs, g)
		time.Sleep(200 * time.Millisecond) // 20 frames: four groups later
	}
	if seqs[1] <= seqs[0] {
		t.Errorf("two fetches 200 ms apart returned groups %v: not the latest", seqs)
	}
	t.Logf("fetched groups %v", seqs)

	for _, tc := range []struct {
		path string
		code int
	}{
		{"/fetch/room/none/data", http.StatusNotFound},
		{"/fetch/room/a/nope", http.StatusNotFound}, // the publisher has no such track
		{"/fetch/room", http.StatusBadRequest},
		{"/elsewhere", http.StatusNotFound},
	} {
		if resp, body := httpGet(t, base+tc.path); resp.StatusCode != tc.code {
			t.Errorf("GET %s: %s (%s), want %d", tc.path, resp.Status, body, tc.code)
		}
	}
	resp, err := http.Post(base+"/announced/", "text/plain", strings.NewReader("x"))
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("POST /announced/: %s, want 405", resp.Status)
	}
}

// TestRelayPublic: with --auth-key and --public open, a client without a
// token publishes and subscribes under open; at any other path its
// connection is refused (WebSocket: 403; WebTransport: Unauthorized, code
// 6), and what it announces outside open from the root is not taken. The
// HTTP endpoints show anonymous callers the public broadcasts only.
func TestRelayPublic(t *testing.T) {
	t.Parallel()
	secret, keyFile := hmacKeyFile(t, t.TempDir())
	r, addrs := startRelay(t, "relay", "--auth-key", keyFile, "--public", "open", "--http", "127.0.0.1:0",
		"--listen", "ws://127.0.0.1:0", "--listen", "https://127.0.0.1:0")
	base := relayHTTP(t, r)
	live := []string{"--frames", "0", "--rate", "100", "--group-frames", "5", "--size", "64"}

	// Anonymous, under the public prefix: a transfer, byte for byte.
	out := filepath.Join(t.TempDir(), "out")
	sub := start(t, "anonymous sub at open", nil, append([]string{"sub", "--connect", addrs["ws"] + "open", "--out", out}, transferArgs["sub"]...)...)
	pub := start(t, "anonymous pub at open", nil, append([]string{"pub", "--connect", addrs["ws"] + "open"}, transferArgs["pub"]...)...)
	sub.mustSucceed(t, 60*time.Second)
	if got, want := lastSummary(t, "sub", sub.stdout.all()), pattern.Expect(100, 100, 256); got != want {
		t.Fatalf("anonymous sub summary %+v, want %+v\n%s", got, want, sub.stderr.bytes())
	}
	pub.mustSucceed(t, 30*time.Second)

	// Anonymous, outside it: refused before any session.
	for _, tc := range []struct{ name, scheme, role, want string }{
		{"sub over WebSocket", "ws", "sub", "got 403"},
		{"pub over WebSocket", "ws", "pub", "got 403"},
		{"sub over WebTransport", "https", "sub", "code 6"},
		{"pub over WebTransport", "https", "pub", "code 6"},
	} {
		args := []string{tc.role, "--connect", addrs[tc.scheme] + "secret", "--broadcast", "x", "--timeout", "5s"}
		if tc.scheme == "https" {
			args = append(args, "--insecure")
		}
		if tc.role == "pub" {
			args = append(args, live...)
		}
		p := start(t, "anonymous "+tc.name+" at secret", nil, args...)
		if code := p.wait(t, 30*time.Second); code == 0 {
			t.Errorf("anonymous %s at secret: exit 0", tc.name)
		}
		if msg := strings.Join(p.stderr.all(), " | "); !strings.Contains(msg, tc.want) {
			t.Errorf("anonymous %s at secret: %q does not say %q", tc.name, msg, tc.want)
		}
	}

	// From the root (which holds open) an anonymous client is admitted,
	// with the public grants only: its broadcast under open is forwarded,
	// the one outside it is not. A token's publication outside open is,
	// but anonymous HTTP callers do not see it.
	start(t, "anonymous pub of open/cam at the root", nil, append([]string{"pub", "--connect", addrs["ws"], "--broadcast", "open/cam"}, live...)...)
	start(t, "anonymous pub of secret/cam at the root", nil, append([]string{"pub", "--connect", addrs["ws"], "--broadcast", "secret/cam"}, live...)...)
	put := sign(t, jwt.SigningMethodHS256, secret, map[string]any{"root": "", "put": "", "get": "", "exp": future()})
	start(t, "token pub of secret/tok", nil, append([]string{"pub", "--connect", addrs["ws"] + "?jwt=" + put, "--broadcast", "secret/tok"}, live...)...)
	announced(t, base, "", []string{"open/cam"})
	announced(t, base, "?jwt="+put, []string{"open/cam", "secret/tok"})
	time.Sleep(500 * time.Millisecond) // the anonymous secret/cam had time to be (wrongly) taken
	announced(t, base, "?jwt="+put, []string{"open/cam", "secret/tok"})
	if resp, body := httpGet(t, base+"/fetch/secret/tok/data"); resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("anonymous GET /fetch/secret/tok/data: %s (%d bytes), want 401", resp.Status, len(body))
	}
	if resp, body := httpGet(t, base+"/fetch/secret/tok/data?jwt="+put); resp.StatusCode != http.StatusOK || len(body) != 5*64 {
		t.Errorf("GET /fetch/secret/tok/data with a token: %s (%d bytes), want 200 and one group", resp.Status, len(body))
	}
}

// openSession opens a session of the test's own to url (https://, the
// certificate not checked), closed at the test's end.
func openSession(t *testing.T, url string) *session.Session {
	t.Helper()
	dial, err := server.Dialer(url, &tls.Config{InsecureSkipVerify: true})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := dial(ctx)
	if err != nil {
		t.Fatal(err)
	}
	s, err := session.New(conn, session.Config{Client: true})
	if err != nil {
		_ = conn.CloseWithError(0, "")
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close(broadcast.CodeCancel, "test over") })
	return s
}

// TestRelayPutOnlySubscribe: a token that may only publish cannot
// subscribe: the relay answers its SUBSCRIBE at once with NotFound, as
// moq-relay does for a broadcast outside the session's get scope (the
// broadcast is not in what the session may see), while a get token's
// subscription to the same broadcast is served.
func TestRelayPutOnlySubscribe(t *testing.T) {
	t.Parallel()
	addrs, secret := roomRelay(t, "https://127.0.0.1:0")
	get := sign(t, jwt.SigningMethodHS256, secret, map[string]any{"root": "room", "get": "", "exp": future()})
	getter := openSession(t, addrs["https"]+"room?jwt="+get)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for path, b := range getter.Remote().Announced(ctx, "cam") { // the relay has the broadcast
		if path == "cam" && b != nil {
			break
		}
	}
	tc, err := getter.Subscribe(ctx, "cam", "data", session.SubscribeOptions{})
	if err != nil {
		t.Fatalf("get token: %v", err)
	}
	if _, err := tc.RecvGroup(ctx); err != nil {
		t.Fatalf("get token: %v", err)
	}
	tc.Close()

	put := sign(t, jwt.SigningMethodHS256, secret, map[string]any{"root": "room", "put": "", "exp": future()})
	putter := openSession(t, addrs["https"]+"room?jwt="+put)
	asked := time.Now()
	tc, err = putter.Subscribe(ctx, "cam", "data", session.SubscribeOptions{})
	if err == nil {
		tc.Close()
		t.Fatal("a put-only token subscribed")
	}
	if !errors.Is(err, broadcast.ErrNotFound) {
		t.Fatalf("put-only token's subscription: %v, want NotFound", err)
	}
	t.Logf("put-only token refused in %v: %v", time.Since(asked), err)
	if len(putter.Remote().Active("")) != 0 {
		t.Errorf("a put-only session was announced %v", putter.Remote().Active(""))
	}
}

// roomRelay starts a relay with an HMAC key (the secret it returns, to
// sign tokens with), listening on listen and ws://, and a live publisher
// of room/cam over WebSocket with a put token for room.
func roomRelay(t *testing.T, listen string) (addrs map[string]string, secret []byte) {
	t.Helper()
	secret, keyFile := hmacKeyFile(t, t.TempDir())
	_, addrs = startRelay(t, "relay", "--auth-key", keyFile, "--listen", listen, "--listen", "ws://127.0.0.1:0")
	put := sign(t, jwt.SigningMethodHS256, secret, map[string]any{"root": "room", "put": "", "exp": future()})
	start(t, "pub", nil, "pub", "--connect", addrs["ws"]+"room?jwt="+put, "--broadcast", "cam",
		"--frames", "0", "--rate", "100", "--group-frames", "5", "--size", "64")
	return addrs, secret
}

// TestRelayTokenOverMoQL: a moql:// client's path and ?jwt= ride its
// lite-05 SETUP (raw QUIC has no request URL), and the relay scopes and
// authorizes the session by them as it does a WebTransport URL: a get
// token for room reads room/cam as cam (a session of our own, and moq sub
// --connect moql://…/room?jwt=), and the same path without a token is
// refused with Unauthorized.
func TestRelayTokenOverMoQL(t *testing.T) {
	t.Parallel()
	addrs, secret := roomRelay(t, "moql://127.0.0.1:0")
	get := sign(t, jwt.SigningMethodHS256, secret, map[string]any{"root": "room", "get": "", "exp": future()})
	moql := strings.TrimSuffix(addrs["moql"], "/")
	getter := openSession(t, moql+"/room?jwt="+get)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for path, b := range getter.Remote().Announced(ctx, "cam") { // the relay has the broadcast
		if path == "cam" && b != nil {
			break
		}
	}
	if getter.Version() != "moq-lite-05" {
		t.Fatalf("version %s", getter.Version())
	}
	tc, err := getter.Subscribe(ctx, "cam", "data", session.SubscribeOptions{})
	if err != nil {
		t.Fatalf("get token over moql: %v", err)
	}
	if _, err := tc.RecvGroup(ctx); err != nil {
		t.Fatalf("get token over moql: %v", err)
	}
	tc.Close()

	// The CLI's moql:// URL carries them the same way.
	sub := start(t, "sub", nil, "sub", "--connect", moql+"/room?jwt="+get, "--insecure", "--broadcast", "cam", "--count", "20")
	if code := sub.wait(t, 30*time.Second); code != 0 {
		t.Fatalf("sub --connect moql://…/room?jwt= exited %d: %s", code, sub.stderr.bytes())
	}
	if got := lastSummary(t, "sub", sub.stdout.all()); got.Frames < 20 {
		t.Errorf("sub over moql with a get token received %d frames, want 20", got.Frames)
	}

	anon := openSession(t, moql+"/room")
	select {
	case <-anon.Context().Done():
	case <-ctx.Done():
		t.Fatal("a moql session without a token stays open")
	}
	var ce *transport.ConnError
	if err := context.Cause(anon.Context()); !errors.As(err, &ce) || ce.Code != uint32(broadcast.CodeUnauthorized) {
		t.Fatalf("tokenless moql session closed with %v, want Unauthorized", err)
	}
}

// TestRelayTokenExpiry: a token's exp holds for the whole session. A
// session whose token expires two seconds after it connected is closed by
// the relay with Unauthorized (code 6) within its check interval of the
// expiry (our own session over WebTransport, the CLI's over WebSocket); a
// subscriber with such a token receives frames until then and
// then exits naming the refusal, without redialing until its outage bound
// (the same token would be refused again).
func TestRelayTokenExpiry(t *testing.T) {
	t.Parallel()
	addrs, secret := roomRelay(t, "https://127.0.0.1:0")
	// exp is in whole seconds: now+2 s rounded up, so at least 2 s away.
	exp := time.Unix(time.Now().Add(2*time.Second).Unix()+1, 0)
	get := sign(t, jwt.SigningMethodHS256, secret, map[string]any{"root": "room", "get": "", "exp": exp.Unix()})

	// A session of our own with that token, to read the close code off
	// the wire.
	s := openSession(t, addrs["https"]+"room?jwt="+get)

	sub := start(t, "sub", nil, "sub", "--connect", addrs["ws"]+"room?jwt="+get, "--broadcast", "cam",
		"--count", "1000000", "--max-outage", "60s", "--timeout", "5s")

	select {
	case <-s.Context().Done():
	case <-time.After(30 * time.Second):
		t.Fatal("the session outlived its token by 30 s")
	}
	closed := time.Now()
	var ce *transport.ConnError
	if !errors.As(s.Err(), &ce) || !ce.Remote || ce.Code != uint32(broadcast.CodeUnauthorized) {
		t.Fatalf("session ended with %v, want closed by the relay with Unauthorized (code 6)", s.Err())
	}
	t.Logf("session closed %v after the token's exp: %v", closed.Sub(exp), s.Err())
	// The relay checks every 250 ms; the rest is the close reaching us on
	// a loaded machine.
	if closed.Before(exp) || closed.After(exp.Add(1500*time.Millisecond)) {
		t.Errorf("session closed at exp%+v, want within [0, 1.5 s] after it", closed.Sub(exp))
	}

	// The subscriber's session is closed the same way; it stops at that
	// refusal, long before its outage bound (60 s), and says why.
	if code := sub.wait(t, 30*time.Second); code == 0 {
		t.Error("the subscriber exited 0 after its token expired")
	}
	if msg := string(sub.stderr.bytes()); !strings.Contains(msg, "refused the session") || !strings.Contains(msg, "code 6") || !strings.Contains(msg, "token expired") {
		t.Errorf("the subscriber did not exit naming the relay's refusal of its expired token: %s", msg)
	} else if strings.Contains(msg, "resubscribing") || strings.Contains(msg, get) {
		t.Errorf("the subscriber said it resubscribes after a refusal, or printed its token: %s", msg)
	}
	if got := lastSummary(t, "sub", sub.stdout.all()); got.Frames < 100 {
		t.Errorf("the subscriber received %d frames before the expiry (2 s at 100 frames/s)", got.Frames)
	}
}

// TestRelayUntrustedPeer: a relay with --auth-key and nothing public
// admits only the libp2p peers it trusts (--trust-peer; --connect peers
// too): a trusted peer publishes, another subscribes and receives, and an
// untrusted peer's connection is closed with Unauthorized (code 6) before
// any session.
func TestRelayUntrustedPeer(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	_, keyFile := hmacKeyFile(t, dir)
	// Identities made before the relay starts: their peer IDs are trusted.
	ids := map[string]string{}
	args := []string{"--auth-key", keyFile, "--listen", "/ip4/127.0.0.1/udp/0/quic-v1"}
	for _, who := range []string{"pub", "sub"} {
		ids[who] = filepath.Join(dir, who+".key")
		k, err := identity.Load(ids[who])
		if err != nil {
			t.Fatal(err)
		}
		id, err := peer.IDFromPrivateKey(k)
		if err != nil {
			t.Fatal(err)
		}
		args = append(args, "--trust-peer", id.String())
	}
	_, addrs := startRelay(t, "relay", args...)
	start(t, "trusted pub", nil, "pub", "--identity", ids["pub"], "--connect", addrs["p2p"], "--broadcast", "cam",
		"--frames", "0", "--rate", "100", "--group-frames", "5", "--size", "64")
	sub := start(t, "trusted sub", nil, "sub", "--identity", ids["sub"], "--connect", addrs["p2p"], "--broadcast", "cam", "--count", "50")
	sub.mustSucceed(t, 60*time.Second)
	denied := start(t, "untrusted sub", nil, "sub", "--connect", addrs["p2p"], "--broadcast", "cam", "--count", "50", "--timeout", "5s")
	if code := denied.wait(t, 30*time.Second); code == 0 {
		t.Fatal("an untrusted peer subscribed")
	}
	if msg := strings.Join(denied.stderr.all(), " | "); !strings.Contains(msg, "code 6") || !strings.Contains(msg, "is not trusted") {
		t.Errorf("the untrusted peer's refusal does not carry Unauthorized (code 6): %s", msg)
	}
}

// TestRelayCost: relay C links to relay A at ?cost=10 first, then (once B
// is up) to relay B at the default cost 1; both carry the publisher's
// broadcast over one hop. The cheaper route wins although it came second:
// a subscriber at C is served through B, and A forwards nothing.
func TestRelayCost(t *testing.T) {
	t.Parallel()
	pub, connect := listenFor(t, "pub", "moql://127.0.0.1:0", true,
		"--broadcast", "cam", "--frames", "0", "--rate", "100", "--group-frames", "5", "--size", "64")
	_ = pub
	a, aa := startRelay(t, "relay A", append([]string{"--listen", "moql://127.0.0.1:0"}, connect...)...)
	bAddr := fmt.Sprintf("moql://127.0.0.1:%d", freePort(t, "udp"))
	c, ca := startRelay(t, "relay C", "-v", "--http", "127.0.0.1:0", "--listen", "moql://127.0.0.1:0",
		"--connect", aa["moql"]+"?cost=10", "--connect", bAddr, "--insecure")
	announced(t, relayHTTP(t, c), "", []string{"cam"}) // through A: B is not up yet
	b, _ := startRelay(t, "relay B", append([]string{"--listen", bAddr}, connect...)...)
	awaitLog(t, c, `msg=linked peer=`+bAddr, 30*time.Second)
	time.Sleep(time.Second) // B's announcement reaches C: the route switches
	sub := start(t, "sub at C", nil, "sub", "--connect", ca["moql"], "--insecure", "--broadcast", "cam", "--count", "100")
	sub.mustSucceed(t, 60*time.Second)
	sums := map[string]nodeSummary{}
	for name, r := range map[string]*proc{"A": a, "B": b} {
		r.interrupt(t)
		r.mustSucceed(t, 10*time.Second)
		var sum nodeSummary
		jsonLine(t, "relay "+name, r.stdout.all(), &sum)
		sums[name] = sum
	}
	t.Logf("relay A %+v, relay B %+v", sums["A"], sums["B"])
	if sums["B"].FramesSent < 100 || sums["A"].FramesSent != 0 {
		t.Fatalf("frames forwarded: %d by A (cost 10), %d by B (cost 1); want none by A and every one by B", sums["A"].FramesSent, sums["B"].FramesSent)
	}
}
