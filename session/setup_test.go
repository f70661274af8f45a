package session

// The compat SETUP path ("moql" or no protocol → lite-01/02), checked byte by
// byte against a hand-driven peer, as @moq/lite's WebSocket client drives it.

import (
	"bufio"
	"bytes"
	"encoding/hex"
	"strings"
	"testing"
	"time"

	"github.com/moqp2p/moqp2p/broadcast"
	"github.com/moqp2p/moqp2p/internal/wire"
	"github.com/moqp2p/moqp2p/transport"
)

func unhex(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(strings.ReplaceAll(s, " ", ""))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// readExactly reads n bytes from st, failing the test on timeout or error.
func readExactly(t *testing.T, st transport.ReceiveStream, n int) []byte {
	t.Helper()
	buf := make([]byte, n)
	r := awaitOrFail(t, testCtx(t), "reading", func() { st.CancelRead(0) }, func() readResult {
		_, err := readFull(st, buf)
		return readResult{buf, err}
	})
	if r.err != nil {
		t.Fatalf("read %d bytes: %v", n, r.err)
	}
	return r.data
}

func readFull(r transport.ReceiveStream, b []byte) (int, error) {
	n := 0
	for n < len(b) {
		m, err := r.Read(b[n:])
		n += m
		if err != nil {
			return n, err
		}
	}
	return n, nil
}

// The session as server answers @moq/lite's CLIENT_SETUP with lite-02, then
// speaks lite-02: ANNOUNCE_INIT, the one-byte SUBSCRIBE_OK, group streams.
func TestSetupServerSpeaksLite02(t *testing.T) {
	p := newRawPeer(t, "moql", Config{Interest: []string{}}, false)
	ctx := testCtx(t)
	// CLIENT_SETUP as @moq/lite 0.2.2 sends it (docs/wire.md#vectors).
	setup := p.openStream(t, ctx, unhex(t, "20 00 2c 03 c0 00 00 00 ff 0d ad 02 c0 00 00 00 ff 0d ad 01 c0 00 00 00 ff 00 00 0e 02 02 80 00 a4 55 07 0b 6d 6f 71 2d 6c 69 74 65 2d 6a 73"), false)
	if got, want := readExactly(t, setup, 12), unhex(t, "21 00 09 c0 00 00 00 ff 0d ad 02 00"); !bytes.Equal(got, want) {
		t.Fatalf("SERVER_SETUP % x, want % x", got, want)
	}
	select {
	case <-p.sess.Ready():
	case <-ctx.Done():
		t.Fatal("session never became ready")
	}
	if v := p.sess.Version(); v != "moq-lite-02" {
		t.Fatalf("version %q", v)
	}
	p.v = wire.Lite02

	ann := p.openStream(t, ctx, unhex(t, "01 01 00"), false) // ANNOUNCE_PLEASE "" (JS sends it unrooted)
	if got, want := readExactly(t, ann, 6), unhex(t, "05 01 03 63 61 6d"); !bytes.Equal(got, want) {
		t.Fatalf("ANNOUNCE_INIT % x, want % x (count 1, \"cam\")", got, want)
	}
	_, sub := p.subscribe(t, ctx, "cam", "video") // reads the untyped SUBSCRIBE_OK
	_ = p.track.WriteFrame([]byte("hello"))
	rs, err := p.raw.AcceptUniStream(ctx)
	if err != nil {
		t.Fatal(err)
	}
	data, err := readStream(t, ctx, rs)
	if err != nil {
		t.Fatal(err)
	}
	g, err := p.parseGroup(data)
	if err != nil || len(g.frames) != 1 || g.frames[0] != "hello" {
		t.Fatalf("group %+v, %v", g, err)
	}

	// A broadcast published later arrives as ANNOUNCE (status, suffix; no hops).
	unpub, _ := p.sess.publish.Publish("later", broadcast.New(broadcast.Config{}).Consume())
	if got, want := readExactly(t, ann, 8), unhex(t, "07 01 05 6c 61 74 65 72"); !bytes.Equal(got, want) {
		t.Fatalf("ANNOUNCE % x, want % x", got, want)
	}
	unpub()
	if got, want := readExactly(t, ann, 8), unhex(t, "07 00 05 6c 61 74 65 72"); !bytes.Equal(got, want) {
		t.Fatalf("ANNOUNCE ended % x, want % x", got, want)
	}
	reset(sub, broadcast.CodeCancel)
	p.wantUp(t)

	// Ending the session stream ends the session, as in moq-dev's Rust.
	_ = setup.Close()
	p.wantConnClosed(t, ctx, broadcast.CodeCancel)
}

// The session as client offers lite-02 and lite-01, accepts the server's
// choice and reads ANNOUNCE_INIT; a path listed twice is fatal (Duplicate).
func TestSetupClientAndAnnounceInit(t *testing.T) {
	p := newRawPeer(t, "moql", Config{Client: true}, true)
	ctx := testCtx(t)
	st, err := p.raw.AcceptStream(ctx)
	if err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(st)
	var offer wire.ClientSetup
	if err := wire.ReadClientSetup(br, &offer); err != nil {
		t.Fatal(err)
	}
	if len(offer.Versions) != 2 || offer.Versions[0] != wire.Lite02 || offer.Versions[1] != wire.Lite01 {
		t.Fatalf("offered %v", offer.Versions)
	}
	if impl, _ := offer.Params.Implementation(); impl != "moqp2p" {
		t.Fatalf("implementation %q", impl)
	}
	reply, _ := wire.AppendServerSetup(nil, &wire.ServerSetup{Version: wire.Lite02})
	rawWrite(t, st, reply)
	p.v = wire.Lite02
	ann, please := p.acceptInterest(t, ctx)
	if please.Prefix != "/" {
		t.Fatalf("prefix %q", please.Prefix)
	}
	rawWrite(t, ann, p.msg(t, &wire.AnnounceInit{Suffixes: []string{"a", "b"}}))
	waitRemote(t, p.sess, "a")
	waitRemote(t, p.sess, "b")
	rawWrite(t, ann, p.announce(t, false, "a"))
	eventually(t, func() bool { return p.sess.Remote().Get("a") == nil })
	rawWrite(t, ann, p.announce(t, true, "b")) // b is active already
	p.wantConnClosed(t, ctx, broadcast.CodeDuplicate)
}

func TestSetupBadInput(t *testing.T) {
	t.Run("first stream is not SETUP", func(t *testing.T) {
		p := newRawPeer(t, "moql", Config{}, false)
		p.openStream(t, testCtx(t), unhex(t, "01 01 00"), false)
		p.wantConnClosed(t, testCtx(t), broadcast.CodeDecode)
	})
	t.Run("no common version", func(t *testing.T) {
		p := newRawPeer(t, "moql", Config{}, false)
		b, _ := wire.AppendClientSetup(nil, &wire.ClientSetup{Versions: []wire.Version{0xff00000e, 0xff0dad09}})
		p.openStream(t, testCtx(t), b, false)
		p.wantConnClosed(t, testCtx(t), broadcast.CodeVersion)
	})
	t.Run("server selects a version not offered", func(t *testing.T) {
		p := newRawPeer(t, "moql", Config{Client: true}, true)
		st, err := p.raw.AcceptStream(testCtx(t))
		if err != nil {
			t.Fatal(err)
		}
		var offer wire.ClientSetup
		if err := wire.ReadClientSetup(bufio.NewReader(st), &offer); err != nil {
			t.Fatal(err)
		}
		b, _ := wire.AppendServerSetup(nil, &wire.ServerSetup{Version: wire.Lite04})
		rawWrite(t, st, b)
		p.wantConnClosed(t, testCtx(t), broadcast.CodeVersion)
	})
	t.Run("truncated SETUP then FIN", func(t *testing.T) {
		p := newRawPeer(t, "moql", Config{}, false)
		p.openStream(t, testCtx(t), unhex(t, "20 00 2c 03"), true)
		p.wantConnClosed(t, testCtx(t), broadcast.CodeDecode)
	})
	t.Run("silent client times out", func(t *testing.T) {
		p := newRawPeer(t, "moql", Config{Limits: Limits{SetupTimeout: 100 * time.Millisecond}}, false)
		p.wantConnClosed(t, testCtx(t), broadcast.CodeTimeout)
	})
	t.Run("subscribe before SETUP completes waits for it", func(t *testing.T) {
		p := newRawPeer(t, "moql", Config{Client: true, Limits: Limits{SetupTimeout: 200 * time.Millisecond}}, true)
		res := make(chan error, 1)
		go func() {
			_, err := p.sess.Subscribe(testCtx(t), "x", "y", SubscribeOptions{})
			res <- err
		}()
		// The server never answers: the subscription fails with the session.
		select {
		case err := <-res:
			if err == nil {
				t.Fatal("subscribe succeeded without a session")
			}
		case <-time.After(5 * time.Second):
			t.Fatal("subscribe still waiting after the setup timed out")
		}
		p.wantConnClosed(t, testCtx(t), broadcast.CodeTimeout)
	})
}
