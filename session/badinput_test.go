package session

// Bad input from the network: one side is a real Session, the other a bare
// transport.Conn driven with hand-made bytes (wire encoders for the valid
// parts, literal bytes for the malformed ones). Every case checks the exact
// moq-lite code the session answers with, and, where only the stream is at
// fault, that the session keeps working afterwards.

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"math/rand"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/moqp2p/moqp2p/broadcast"
	"github.com/moqp2p/moqp2p/internal/testutil"
	"github.com/moqp2p/moqp2p/internal/wire"
	"github.com/moqp2p/moqp2p/transport"
)

// rawPeer is a Session connected over raw QUIC to a transport.Conn that the
// test drives by hand.
type rawPeer struct {
	sess   *Session
	raw    transport.Conn
	v      wire.Version
	track  *broadcast.TrackProducer // "cam"/"video", published by the session
	nextID uint64                   // next subscribe ID used by the raw side
	alive  int                      // probes sent by checkServing
}

// newRawPeer starts a Session on one end of a loopback QUIC pair and returns
// the other end raw. The session publishes broadcast "cam" with track
// "video". With sessDials the session is on the dialing side.
func newRawPeer(t *testing.T, alpn string, cfg Config, sessDials bool) *rawPeer {
	t.Helper()
	sc, cc := conns(t, alpn)
	sessConn, raw := sc, cc
	if sessDials {
		sessConn, raw = cc, sc
	}
	origin := broadcast.NewOrigin(0)
	b := broadcast.New(broadcast.Config{})
	tp, err := b.CreateTrack(broadcast.Track{Name: "video"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := origin.Publish("cam", b.Consume()); err != nil {
		t.Fatal(err)
	}
	cfg.Publish = origin
	cfg.Logger = testLogger()
	sess, err := New(sessConn, cfg)
	if err != nil {
		_ = raw.CloseWithError(0, "")
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = sess.Close(broadcast.CodeCancel, "test over")
		_ = raw.CloseWithError(0, "test over")
	})
	v, _ := wire.VersionForALPN(alpn)
	return &rawPeer{sess: sess, raw: raw, v: v, track: tp}
}

// awaitOrFail runs f on a goroutine and returns its result. If ctx ends first it
// calls unblock, which must make f return, joins the goroutine and fails.
func awaitOrFail[T any](t *testing.T, ctx context.Context, what string, unblock func(), f func() T) T {
	t.Helper()
	ch := make(chan T, 1)
	go func() { ch <- f() }()
	select {
	case v := <-ch:
		return v
	case <-ctx.Done():
		unblock()
		<-ch
		t.Fatalf("%s: %v", what, ctx.Err())
		var zero T
		return zero
	}
}

type readResult struct {
	data []byte
	err  error
}

// readAnnounce reads want, the ANNOUNCE expected first on st.
func readAnnounce(t *testing.T, ctx context.Context, st transport.Stream, want []byte) {
	t.Helper()
	got := awaitOrFail(t, ctx, "reading ANNOUNCE", func() { st.CancelRead(0) }, func() readResult {
		b := make([]byte, len(want))
		_, err := io.ReadFull(st, b)
		return readResult{b, err}
	})
	if got.err != nil || !bytes.Equal(got.data, want) {
		t.Fatalf("first ANNOUNCE: % x, %v; want % x", got.data, got.err, want)
	}
}

// readStream reads st until FIN (nil error) or a reset.
func readStream(t *testing.T, ctx context.Context, st transport.ReceiveStream) ([]byte, error) {
	t.Helper()
	r := awaitOrFail(t, ctx, "reading stream", func() { st.CancelRead(0) }, func() readResult {
		b, err := io.ReadAll(st)
		return readResult{b, err}
	})
	return r.data, r.err
}

// peerCode is the code of a reset or STOP_SENDING the peer sent.
func peerCode(err error) (uint32, bool) {
	var se *transport.StreamError
	if errors.As(err, &se) && se.Remote {
		return se.Code, true
	}
	return 0, false
}

// wantReset waits for the session to reset st and checks the code.
func wantReset(t *testing.T, ctx context.Context, st transport.ReceiveStream, code broadcast.Code) {
	t.Helper()
	data, err := readStream(t, ctx, st)
	if c, ok := peerCode(err); !ok || c != uint32(code) {
		t.Fatalf("stream ended with %v (after %d bytes), want a reset with code %d (%v)", err, len(data), code, code)
	}
}

// wantStopSending writes to st one byte at a time until the session's
// STOP_SENDING makes a write fail, and checks the code.
func wantStopSending(t *testing.T, ctx context.Context, st transport.SendStream, code broadcast.Code) {
	t.Helper()
	stop := make(chan struct{})
	err := awaitOrFail(t, ctx, "waiting for STOP_SENDING", func() { close(stop); st.CancelWrite(0) }, func() error {
		tick := time.NewTicker(time.Millisecond)
		defer tick.Stop()
		for {
			if _, err := st.Write([]byte{0}); err != nil {
				return err
			}
			select {
			case <-stop:
				return errors.New("gave up")
			case <-tick.C:
			}
		}
	})
	if c, ok := peerCode(err); !ok || c != uint32(code) {
		t.Fatalf("write failed with %v, want STOP_SENDING with code %d (%v)", err, code, code)
	}
}

// wantConnClosed waits for the session to close the connection and checks
// the code on both sides.
func (p *rawPeer) wantConnClosed(t *testing.T, ctx context.Context, code broadcast.Code) {
	t.Helper()
	select {
	case <-p.raw.Context().Done():
	case <-ctx.Done():
		t.Fatalf("session did not close the connection (want code %d): %v", code, ctx.Err())
	}
	var ce *transport.ConnError
	if err := context.Cause(p.raw.Context()); !errors.As(err, &ce) || ce.Code != uint32(code) || !ce.Remote {
		t.Fatalf("connection closed with %v, want code %d (%v) from the session", err, code, code)
	}
	select {
	case <-p.sess.Done():
	case <-ctx.Done():
		t.Fatal("session still running after closing its connection")
	}
	if err := p.sess.Err(); !errors.As(err, &ce) || ce.Code != uint32(code) {
		t.Fatalf("session ended with %v, want code %d", err, code)
	}
}

func (p *rawPeer) wantUp(t *testing.T) {
	t.Helper()
	if err := p.sess.Err(); err != nil {
		t.Fatalf("session ended: %v", err)
	}
	if err := context.Cause(p.raw.Context()); err != nil {
		t.Fatalf("connection closed: %v", err)
	}
}

func rawWrite(t *testing.T, st transport.SendStream, b []byte) {
	t.Helper()
	if _, err := st.Write(b); err != nil {
		t.Fatalf("write: %v", err)
	}
}

// openStream opens a bidi stream on the raw side and writes b (and FIN).
func (p *rawPeer) openStream(t *testing.T, ctx context.Context, b []byte, fin bool) transport.Stream {
	t.Helper()
	st, err := p.raw.OpenStream(ctx)
	if err != nil {
		t.Fatalf("open stream: %v", err)
	}
	rawWrite(t, st, b)
	if fin {
		_ = st.Close()
	}
	return st
}

// msg encodes one message for the peer's version.
func (p *rawPeer) msg(t *testing.T, m wire.Message) []byte {
	t.Helper()
	b, err := wire.AppendMessage(nil, p.v, m)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func rawCat(parts ...[]byte) []byte { return slices.Concat(parts...) }

func rawVarint(v uint64) []byte { return wire.AppendVarint(nil, v) }

// withTrailingByte re-frames one `length || body` message with an extra zero
// byte inside its declared length.
func withTrailingByte(t *testing.T, m []byte) []byte {
	t.Helper()
	size, n, err := wire.ParseVarint(m)
	if err != nil || uint64(len(m)-n) != size {
		t.Fatalf("not one message: % x", m)
	}
	return rawCat(rawVarint(size+1), m[n:], []byte{0})
}

func (p *rawPeer) subscribeMsg(t *testing.T, path, track string) (uint64, []byte) {
	t.Helper()
	id := p.nextID
	p.nextID++
	return id, rawCat(rawVarint(uint64(wire.StreamSubscribe)), p.msg(t, &wire.Subscribe{ID: id, Broadcast: path, Track: track, Priority: 100}))
}

// subscribe sends a valid SUBSCRIBE and waits for SUBSCRIBE_OK.
func (p *rawPeer) subscribe(t *testing.T, ctx context.Context, path, track string) (uint64, transport.Stream) {
	t.Helper()
	id, b := p.subscribeMsg(t, path, track)
	st := p.openStream(t, ctx, b, false)
	type res struct {
		m   wire.Message
		err error
	}
	r := awaitOrFail(t, ctx, "waiting for SUBSCRIBE_OK", func() { st.CancelRead(0) }, func() res {
		m, err := wire.ReadSubscribeResponse(bufio.NewReader(st), p.v, 1<<10)
		return res{m, err}
	})
	if r.err != nil {
		t.Fatalf("SUBSCRIBE %s/%s: %v", path, track, r.err)
	}
	if _, ok := r.m.(*wire.SubscribeOK); !ok {
		t.Fatalf("SUBSCRIBE %s/%s answered with %T, want SUBSCRIBE_OK", path, track, r.m)
	}
	return id, st
}

// parsedGroup is a group stream as the raw side received it.
type parsedGroup struct {
	hdr    wire.Group
	frames []string
}

func (p *rawPeer) parseGroup(data []byte) (parsedGroup, error) {
	r := bytes.NewReader(data)
	var g parsedGroup
	if typ, err := wire.ReadUniStreamType(r, p.v); err != nil || typ != wire.UniGroup {
		return g, fmt.Errorf("uni stream type %v: %v", typ, err)
	}
	if err := wire.ReadMessage(r, p.v, &g.hdr, 1<<10); err != nil {
		return g, err
	}
	for {
		if p.v.HasFrameTimestamps() { // lite-05: a timestamp delta first
			if _, err := wire.ReadVarint(r); errors.Is(err, io.EOF) {
				return g, nil
			} else if err != nil {
				return g, err
			}
		}
		size, err := wire.ReadVarint(r)
		if errors.Is(err, io.EOF) && !p.v.HasFrameTimestamps() {
			return g, nil
		}
		if err != nil {
			return g, err
		}
		f := make([]byte, size)
		if _, err := io.ReadFull(r, f); err != nil {
			return g, err
		}
		g.frames = append(g.frames, string(f))
	}
}

// checkServing proves the session still works as a publisher: a fresh
// SUBSCRIBE is accepted and a new group reaches the raw side.
func (p *rawPeer) checkServing(t *testing.T) {
	t.Helper()
	ctx := testCtx(t)
	p.wantUp(t)
	id, st := p.subscribe(t, ctx, "/cam", "video")
	defer reset(st, broadcast.CodeCancel)
	p.alive++
	want := fmt.Sprintf("alive %d", p.alive)
	if err := p.track.WriteFrame([]byte(want)); err != nil {
		t.Fatal(err)
	}
	for {
		rs, err := p.raw.AcceptUniStream(ctx)
		if err != nil {
			t.Fatalf("waiting for the group with %q: %v", want, err)
		}
		data, err := readStream(t, ctx, rs)
		if err != nil {
			continue // a group of an earlier subscription, cancelled
		}
		g, err := p.parseGroup(data)
		if err != nil {
			t.Fatalf("group stream from the session: %v (% x)", err, data)
		}
		if g.hdr.SubscribeID == id && slices.Contains(g.frames, want) {
			p.wantUp(t)
			return
		}
	}
}

// --- the session as subscriber ---

type subResult struct {
	tc  *broadcast.TrackConsumer
	err error
}

// subscribeAsync calls sess.Subscribe on a goroutine.
func (p *rawPeer) subscribeAsync(ctx context.Context, path, track string) <-chan subResult {
	return p.subscribeAsyncWith(ctx, path, track, SubscribeOptions{})
}

// subscribeAsyncWith is subscribeAsync with options.
func (p *rawPeer) subscribeAsyncWith(ctx context.Context, path, track string, opts SubscribeOptions) <-chan subResult {
	ch := make(chan subResult, 1)
	go func() {
		tc, err := p.sess.Subscribe(ctx, path, track, opts)
		ch <- subResult{tc, err}
	}()
	return ch
}

func waitSub(t *testing.T, ctx context.Context, ch <-chan subResult) subResult {
	t.Helper()
	select {
	case r := <-ch:
		if r.tc != nil {
			t.Cleanup(r.tc.Close)
		}
		return r
	case <-ctx.Done():
		t.Fatalf("Subscribe did not return: %v", ctx.Err())
		return subResult{}
	}
}

// acceptSubscribe accepts the session's subscribe stream and reads SUBSCRIBE.
func (p *rawPeer) acceptSubscribe(t *testing.T, ctx context.Context) (transport.Stream, wire.Subscribe) {
	t.Helper()
	st, err := p.raw.AcceptStream(ctx)
	if err != nil {
		t.Fatalf("accept the session's subscribe stream: %v", err)
	}
	type res struct {
		sub wire.Subscribe
		err error
	}
	r := awaitOrFail(t, ctx, "reading SUBSCRIBE", func() { st.CancelRead(0) }, func() (r res) {
		br := bufio.NewReader(st)
		typ, err := wire.ReadStreamType(br, p.v)
		if err == nil && typ != wire.StreamSubscribe {
			err = fmt.Errorf("stream type %v, want subscribe", typ)
		}
		if err == nil {
			err = wire.ReadMessage(br, p.v, &r.sub, 1<<10)
		}
		r.err = err
		return r
	})
	if r.err != nil {
		t.Fatal(r.err)
	}
	return st, r.sub
}

func (p *rawPeer) response(t *testing.T, m wire.Message) []byte {
	t.Helper()
	b, err := wire.AppendSubscribeResponse(nil, p.v, m)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// sessionSubscribe has the session subscribe to cam/video, answered with
// SUBSCRIBE_OK by the raw side.
func (p *rawPeer) sessionSubscribe(t *testing.T, ctx context.Context) (*broadcast.TrackConsumer, transport.Stream, wire.Subscribe) {
	t.Helper()
	return p.sessionSubscribeWith(t, ctx, SubscribeOptions{})
}

// sessionSubscribeWith is sessionSubscribe with options.
func (p *rawPeer) sessionSubscribeWith(t *testing.T, ctx context.Context, opts SubscribeOptions) (*broadcast.TrackConsumer, transport.Stream, wire.Subscribe) {
	t.Helper()
	res := p.subscribeAsyncWith(ctx, "cam", "video", opts)
	st, sub := p.acceptSubscribe(t, ctx)
	if sub.Broadcast != "/cam" || sub.Track != "video" {
		t.Fatalf("SUBSCRIBE %+v, want /cam video", sub)
	}
	rawWrite(t, st, p.response(t, &wire.SubscribeOK{}))
	r := waitSub(t, ctx, res)
	if r.err != nil {
		t.Fatalf("Subscribe: %v", r.err)
	}
	return r.tc, st, sub
}

// openGroup opens a group stream from the raw side and writes its header.
func (p *rawPeer) openGroup(t *testing.T, ctx context.Context, id, seq uint64) transport.SendStream {
	t.Helper()
	st, err := p.raw.OpenUniStream(ctx)
	if err != nil {
		t.Fatal(err)
	}
	rawWrite(t, st, rawCat(rawVarint(uint64(wire.UniGroup)), p.msg(t, &wire.Group{SubscribeID: id, Sequence: seq})))
	return st
}

func rawFrame(payload string) []byte { return rawCat(rawVarint(uint64(len(payload))), []byte(payload)) }

// groupFrames reads g to its end: the frames and the error that ended it
// (io.EOF for a clean finish).
func groupFrames(ctx context.Context, g *broadcast.GroupConsumer) ([]string, error) {
	var out []string
	for {
		f, err := g.ReadFrame(ctx)
		if err != nil {
			return out, err
		}
		out = append(out, string(f))
	}
}

// --- the session as announce subscriber ---

// acceptInterest accepts the session's announce stream and reads its
// ANNOUNCE_PLEASE.
func (p *rawPeer) acceptInterest(t *testing.T, ctx context.Context) (transport.Stream, wire.AnnouncePlease) {
	t.Helper()
	st, err := p.raw.AcceptStream(ctx)
	if err != nil {
		t.Fatalf("accept the session's announce stream: %v", err)
	}
	type res struct {
		m   wire.AnnouncePlease
		err error
	}
	r := awaitOrFail(t, ctx, "reading ANNOUNCE_PLEASE", func() { st.CancelRead(0) }, func() (r res) {
		br := bufio.NewReader(st)
		typ, err := wire.ReadStreamType(br, p.v)
		if err == nil && typ != wire.StreamAnnounce {
			err = fmt.Errorf("stream type %v, want announce", typ)
		}
		if err == nil {
			err = wire.ReadMessage(br, p.v, &r.m, 1<<10)
		}
		r.err = err
		return r
	})
	if r.err != nil {
		t.Fatal(r.err)
	}
	return st, r.m
}

func (p *rawPeer) announce(t *testing.T, active bool, suffix string, hops ...uint64) []byte {
	t.Helper()
	return p.msg(t, &wire.Announce{Active: active, Suffix: suffix, Hops: hops})
}

// wantRemote checks that Remote holds exactly paths.
func wantRemote(t *testing.T, s *Session, paths ...string) {
	t.Helper()
	got := slices.Sorted(maps.Keys(s.Remote().Active("")))
	if !slices.Equal(got, paths) {
		t.Fatalf("Remote holds %q, want %q", got, paths)
	}
}

// wantIgnored checks Stats.AnnouncementsIgnored.
func wantIgnored(t *testing.T, s *Session, n uint64) {
	t.Helper()
	if got := s.Stats().AnnouncementsIgnored; got != n {
		t.Fatalf("%d announcements ignored, want %d", got, n)
	}
}

// wantRemoteComplete checks RemoteIncomplete.
func wantRemoteComplete(t *testing.T, s *Session, complete bool) {
	t.Helper()
	select {
	case <-s.RemoteIncomplete():
		if complete {
			t.Fatal("RemoteIncomplete is closed, but no announcement was ignored")
		}
	default:
		if !complete {
			t.Fatal("RemoteIncomplete is open after an announcement was ignored")
		}
	}
}

// waitRemote waits until the session's Remote has path active.
func waitRemote(t *testing.T, s *Session, path string) {
	t.Helper()
	ctx := testCtx(t)
	for p, b := range s.Remote().Announced(ctx, "") {
		if p == path && b != nil {
			return
		}
	}
	t.Fatalf("%q never announced in Remote: %v", path, ctx.Err())
}

// ============================================================================

// Bidi streams the session must refuse. They all go to one session, which
// must keep serving after each.
func TestBadInputBidiStreams(t *testing.T) {
	forEach(t, lite0304, func(t *testing.T, alpn string) {
		p := newRawPeer(t, alpn, Config{Interest: []string{}, Limits: Limits{MaxMessageSize: 100}}, false)
		sub := rawVarint(uint64(wire.StreamSubscribe))
		annType := rawVarint(uint64(wire.StreamAnnounce))
		valid := p.msg(t, &wire.Subscribe{ID: 1000, Broadcast: "/cam", Track: "video"})
		cases := []struct {
			name  string
			only  wire.Version // 0 = both versions
			bytes []byte
			fin   bool
			want  broadcast.Code
			ok    bool // want a clean FIN instead of a reset
		}{
			{name: "unknown type 0x3f", bytes: []byte{0x3f}, fin: true, want: broadcast.CodeUnexpectedStream},
			{name: "unknown type 0x3f no fin", bytes: []byte{0x3f}, want: broadcast.CodeUnexpectedStream},
			{name: "unknown two-byte type", bytes: []byte{0x40, 0x40}, fin: true, want: broadcast.CodeUnexpectedStream},
			{name: "session type 0", bytes: []byte{0x00, 0x00}, fin: true, want: broadcast.CodeUnexpectedStream},
			{name: "client compat 0x20", bytes: []byte{0x20}, fin: true, want: broadcast.CodeUnexpectedStream},
			{name: "fetch", bytes: rawCat([]byte{0x03}, p.msg(t, &wire.Subscribe{})), fin: true, want: broadcast.CodeUnsupported},
			{name: "fetch no fin", bytes: []byte{0x03}, want: broadcast.CodeUnsupported},
			{name: "goaway", only: wire.Lite03, bytes: []byte{0x05, 0x00}, fin: true, want: broadcast.CodeUnexpectedStream},
			{name: "goaway", only: wire.Lite04, bytes: []byte{0x05, 0x01, 0x00}, fin: true, ok: true},
			{name: "goaway trailing byte", only: wire.Lite04, bytes: []byte{0x05, 0x02, 0x00, 0x00}, fin: true, want: broadcast.CodeDecode},
			// length 20, 5 body bytes, FIN
			{name: "subscribe truncated", bytes: rawCat(sub, []byte{20, 0x00, 0x01, '/', 0x01, 'v'}), fin: true, want: broadcast.CodeDecode},
			{name: "subscribe trailing byte", bytes: rawCat(sub, withTrailingByte(t, valid)), fin: true, want: broadcast.CodeDecode},
			// length 1000 > MaxMessageSize 100, and no body at all: the
			// session must refuse it on the length alone.
			{name: "subscribe over MaxMessageSize", bytes: rawCat(sub, rawVarint(1000)), want: broadcast.CodeBoundsExceeded},
			{name: "subscribe truncated length varint", bytes: rawCat(sub, []byte{0x40}), fin: true, want: broadcast.CodeDecode},
			{name: "subscribe bad utf-8", bytes: rawCat(sub, []byte{9, 0x00, 0x01, 0xff, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00}), fin: true, want: broadcast.CodeDecode},
			{name: "subscribe unknown broadcast", bytes: rawCat(sub, p.msg(t, &wire.Subscribe{ID: 1001, Broadcast: "/nope", Track: "video"})), want: broadcast.CodeUnroutable},
			{name: "subscribe unknown track", bytes: rawCat(sub, p.msg(t, &wire.Subscribe{ID: 1002, Broadcast: "/cam", Track: "nope"})), want: broadcast.CodeNotFound},
			{name: "announce please truncated", bytes: rawCat(annType, []byte{10, 0x01}), fin: true, want: broadcast.CodeDecode},
			{name: "announce please over MaxMessageSize", bytes: rawCat(annType, rawVarint(1000)), want: broadcast.CodeBoundsExceeded},
		}
		for _, c := range cases {
			if c.only != 0 && c.only != p.v {
				continue
			}
			t.Run(c.name, func(t *testing.T) {
				ctx := testCtx(t)
				st := p.openStream(t, ctx, c.bytes, c.fin)
				defer reset(st, broadcast.CodeCancel)
				if c.ok {
					if _, err := readStream(t, ctx, st); err != nil {
						t.Fatalf("want a clean FIN, got %v", err)
					}
				} else {
					wantReset(t, ctx, st, c.want)
				}
				p.checkServing(t)
			})
		}
	})
}

// Uni streams the session must refuse with STOP_SENDING.
func TestBadInputUniStreams(t *testing.T) {
	forEach(t, lite0304, func(t *testing.T, alpn string) {
		p := newRawPeer(t, alpn, Config{Interest: []string{}, Limits: Limits{MaxMessageSize: 100}}, false)
		p.sess.acceptGroups() // as our first subscription would
		uniGroup := rawVarint(uint64(wire.UniGroup))
		hdr := p.msg(t, &wire.Group{SubscribeID: 5, Sequence: 1})
		cases := []struct {
			name  string
			bytes []byte
			want  broadcast.Code
		}{
			{"unknown type 0x07", []byte{0x07}, broadcast.CodeUnexpectedStream},
			{"unknown type 0x3f", []byte{0x3f}, broadcast.CodeUnexpectedStream},
			{"group header trailing byte", rawCat(uniGroup, withTrailingByte(t, hdr)), broadcast.CodeDecode},
			{"group header over MaxMessageSize", rawCat(uniGroup, rawVarint(1000)), broadcast.CodeBoundsExceeded},
			// No subscription of the session has this ID: "not an error",
			// stopped with Cancel as Rust does.
			{"unknown subscribe id", rawCat(uniGroup, p.msg(t, &wire.Group{SubscribeID: 77, Sequence: 0}), rawFrame("x")), broadcast.CodeCancel},
		}
		for _, c := range cases {
			t.Run(c.name, func(t *testing.T) {
				ctx := testCtx(t)
				st, err := p.raw.OpenUniStream(ctx)
				if err != nil {
					t.Fatal(err)
				}
				rawWrite(t, st, c.bytes)
				wantStopSending(t, ctx, st, c.want)
				p.checkServing(t)
			})
		}
	})
}

// Peer subscriptions beyond Limits.MaxSubscriptions are refused one by one
// with BoundsExceeded; a slot freed by the peer can be used again.
func TestBadInputTooManySubscriptions(t *testing.T) {
	forEach(t, lite0304, func(t *testing.T, alpn string) {
		p := newRawPeer(t, alpn, Config{Interest: []string{}, Limits: Limits{MaxSubscriptions: 2}}, false)
		ctx := testCtx(t)
		_, first := p.subscribe(t, ctx, "/cam", "video")
		_, second := p.subscribe(t, ctx, "/cam", "video")
		defer reset(second, broadcast.CodeCancel)
		for range 2 {
			_, b := p.subscribeMsg(t, "/cam", "video")
			st := p.openStream(t, ctx, b, false)
			wantReset(t, ctx, st, broadcast.CodeBoundsExceeded)
			reset(st, broadcast.CodeCancel)
		}
		p.wantUp(t)
		reset(first, broadcast.CodeCancel) // frees a slot
		eventually(t, func() bool { return p.sess.served.Load() == 1 })
		p.checkServing(t)
	})
}

// The session as subscriber: a group stream that ends inside a frame is
// WrongSize, and the frames before it stay readable.
func TestBadInputGroupEndsInsideFrame(t *testing.T) {
	forEach(t, lite0304, func(t *testing.T, alpn string) {
		for _, c := range []struct {
			name string
			tail []byte
		}{
			{"payload short", rawCat(rawVarint(10), []byte("12345"))},
			{"size varint cut", []byte{0x40}},
		} {
			t.Run(c.name, func(t *testing.T) {
				p := newRawPeer(t, alpn, Config{Interest: []string{}}, true)
				ctx := testCtx(t)
				tc, _, sub := p.sessionSubscribe(t, ctx)
				gs := p.openGroup(t, ctx, sub.ID, 0)
				rawWrite(t, gs, rawCat(rawFrame("hello"), rawFrame(""), rawFrame("world"), c.tail))
				_ = gs.Close()

				g, err := tc.RecvGroup(ctx)
				if err != nil || g.Sequence() != 0 {
					t.Fatalf("RecvGroup: %v, %v", g, err)
				}
				// Read to the end first so the group has surely been
				// aborted, then read it again from the start.
				if _, err := groupFrames(ctx, g.Clone()); broadcast.CodeOf(err) != broadcast.CodeWrongSize {
					t.Fatalf("group ended with %v (code %d), want WrongSize (14)", err, broadcast.CodeOf(err))
				}
				frames, err := groupFrames(ctx, g)
				if want := []string{"hello", "", "world"}; !slices.Equal(frames, want) {
					t.Fatalf("frames before the bad one: %q, want %q", frames, want)
				}
				if !errors.Is(err, broadcast.ErrWrongSize) {
					t.Fatalf("after the accepted frames: %v, want WrongSize", err)
				}

				// The subscription goes on.
				gs = p.openGroup(t, ctx, sub.ID, 1)
				rawWrite(t, gs, rawFrame("next"))
				_ = gs.Close()
				g, err = tc.RecvGroup(ctx)
				if err != nil || g.Sequence() != 1 {
					t.Fatalf("next group: %v, %v", g, err)
				}
				if frames, err := groupFrames(ctx, g); !errors.Is(err, io.EOF) || !slices.Equal(frames, []string{"next"}) {
					t.Fatalf("next group: %q, %v", frames, err)
				}
				p.wantUp(t)
			})
		}
	})
}

// A frame over Limits.MaxFrameSize ends the group with FrameTooLarge and
// stops the stream with that code; smaller frames before it are kept.
func TestBadInputFrameTooLarge(t *testing.T) {
	forEach(t, lite0304, func(t *testing.T, alpn string) {
		p := newRawPeer(t, alpn, Config{Interest: []string{}, Limits: Limits{MaxFrameSize: 16}}, true)
		ctx := testCtx(t)
		tc, _, sub := p.sessionSubscribe(t, ctx)
		full := string(bytes.Repeat([]byte{'x'}, 16))
		gs := p.openGroup(t, ctx, sub.ID, 3)
		rawWrite(t, gs, rawCat(rawFrame("ok"), rawFrame(full), rawVarint(17), []byte("abc")))
		wantStopSending(t, ctx, gs, broadcast.CodeFrameTooLarge)

		g, err := tc.RecvGroup(ctx)
		if err != nil || g.Sequence() != 3 {
			t.Fatalf("RecvGroup: %v, %v", g, err)
		}
		frames, err := groupFrames(ctx, g)
		if want := []string{"ok", full}; !slices.Equal(frames, want) {
			t.Fatalf("frames: %q, want %q", frames, want)
		}
		if broadcast.CodeOf(err) != broadcast.CodeFrameTooLarge {
			t.Fatalf("group ended with %v, want FrameTooLarge (27)", err)
		}
		p.wantUp(t)
	})
}

// Group streams for a subscription the session does not have are stopped
// with code 0 also while it has others, which keep working.
func TestBadInputGroupForUnknownSubscription(t *testing.T) {
	forEach(t, lite0304, func(t *testing.T, alpn string) {
		p := newRawPeer(t, alpn, Config{Interest: []string{}}, true)
		ctx := testCtx(t)
		tc, _, sub := p.sessionSubscribe(t, ctx)
		gs := p.openGroup(t, ctx, sub.ID+1, 0)
		_, _ = gs.Write(rawFrame("stray")) // may fail already: the header alone earns the STOP_SENDING
		wantStopSending(t, ctx, gs, broadcast.CodeCancel)

		gs = p.openGroup(t, ctx, sub.ID, 0)
		rawWrite(t, gs, rawFrame("mine"))
		_ = gs.Close()
		g, err := tc.RecvGroup(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if frames, err := groupFrames(ctx, g); !errors.Is(err, io.EOF) || !slices.Equal(frames, []string{"mine"}) {
			t.Fatalf("group: %q, %v", frames, err)
		}
		p.checkServing(t)
	})
}

// The first response on a subscribe stream must be SUBSCRIBE_OK; a bad
// response fails the Subscribe call (only), with the code naming the problem.
func TestBadInputSubscribeResponse(t *testing.T) {
	forEach(t, lite0304, func(t *testing.T, alpn string) {
		v, _ := wire.VersionForALPN(alpn)
		ok, err := wire.AppendSubscribeResponse(nil, v, &wire.SubscribeOK{})
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range []struct {
			name  string
			bytes []byte
			fin   bool
			reset broadcast.Code // the raw side resets instead, if set
			want  broadcast.Code
		}{
			// No FIN after a bad response: the session must act on the
			// response itself, not on the end of the stream.
			{name: "drop first", bytes: []byte{0x01, 0x03, 0x00, 0x00, 0x00}, want: broadcast.CodeProtocol},
			{name: "fin before ok", fin: true, want: broadcast.CodeProtocol},
			{name: "unknown response type", bytes: []byte{0x02, 0x00}, want: broadcast.CodeDecode},
			{name: "ok trailing byte", bytes: rawCat(ok[:1], withTrailingByte(t, ok[1:])), want: broadcast.CodeDecode},
			{name: "ok truncated", bytes: rawCat(ok[:1], []byte{0x05, 0x00}), fin: true, want: broadcast.CodeDecode},
			{name: "ok over MaxMessageSize", bytes: rawCat(ok[:1], rawVarint(70000)), want: broadcast.CodeBoundsExceeded},
			{name: "reset with NotFound", reset: broadcast.CodeNotFound, want: broadcast.CodeNotFound},
			{name: "reset with Unroutable", reset: broadcast.CodeUnroutable, want: broadcast.CodeUnroutable},
		} {
			t.Run(c.name, func(t *testing.T) {
				p := newRawPeer(t, alpn, Config{Interest: []string{}}, true)
				ctx := testCtx(t)
				res := p.subscribeAsync(ctx, "cam", "video")
				st, _ := p.acceptSubscribe(t, ctx)
				if c.reset != 0 {
					reset(st, c.reset)
				} else {
					rawWrite(t, st, c.bytes)
					if c.fin {
						_ = st.Close()
					}
				}
				r := waitSub(t, ctx, res)
				if r.err == nil || broadcast.CodeOf(r.err) != c.want {
					t.Fatalf("Subscribe: %v (code %d), want code %d (%v)", r.err, broadcast.CodeOf(r.err), c.want, c.want)
				}
				if notFound := c.want == broadcast.CodeNotFound || c.want == broadcast.CodeUnroutable; errors.Is(r.err, broadcast.ErrNotFound) != notFound {
					t.Fatalf("errors.Is(%v, ErrNotFound) = %v", r.err, !notFound)
				}
				// The subscribe stream is abandoned by the session...
				if _, err := readStream(t, ctx, st); err == nil {
					t.Errorf("the session finished a failed subscribe stream cleanly")
				}
				// ...and, once it is cleaned up, a new Subscribe starts a new
				// wire subscription. (An immediate retry is
				// TestBadInputSubscribeRetryAfterRefusal.)
				eventually(t, func() bool {
					p.sess.mu.Lock()
					defer p.sess.mu.Unlock()
					return len(p.sess.subs) == 0 && len(p.sess.shared) == 0
				})
				res = p.subscribeAsync(ctx, "cam", "video")
				st2, sub2 := p.acceptSubscribe(t, ctx)
				rawWrite(t, st2, p.response(t, &wire.SubscribeOK{}))
				if r := waitSub(t, ctx, res); r.err != nil {
					t.Fatalf("Subscribe after the bad response: %v", r.err)
				}
				if sub2.ID == 0 {
					t.Errorf("subscribe ID reused")
				}
				p.checkServing(t)
			})
		}
	})
}

// A SUBSCRIBE_DROP after SUBSCRIBE_OK is tolerated.
func TestBadInputDropAfterOK(t *testing.T) {
	forEach(t, lite0304, func(t *testing.T, alpn string) {
		p := newRawPeer(t, alpn, Config{Interest: []string{}}, true)
		ctx := testCtx(t)
		tc, st, sub := p.sessionSubscribe(t, ctx)
		rawWrite(t, st, p.response(t, &wire.SubscribeDrop{Start: 0, End: 4, Error: 2}))
		gs := p.openGroup(t, ctx, sub.ID, 5)
		rawWrite(t, gs, rawFrame("after drop"))
		_ = gs.Close()
		g, err := tc.RecvGroup(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if frames, err := groupFrames(ctx, g); !errors.Is(err, io.EOF) || !slices.Equal(frames, []string{"after drop"}) {
			t.Fatalf("group: %q, %v", frames, err)
		}
		if err := tc.Err(); err != nil {
			t.Fatalf("track ended: %v", err)
		}
		p.wantUp(t)
	})
}

// Announce violations by the publisher close the whole session.
func TestBadInputAnnounce(t *testing.T) {
	const hop = 0x5eed
	forEach(t, lite0304, func(t *testing.T, alpn string) {
		startWith := func(t *testing.T, lim Limits) (*rawPeer, context.Context, transport.Stream) {
			p := newRawPeer(t, alpn, Config{HopID: hop, Limits: lim}, true)
			ctx := testCtx(t)
			st, please := p.acceptInterest(t, ctx)
			want := wire.AnnouncePlease{Prefix: "/"}
			if p.v == wire.Lite04 {
				want.ExcludeHop = hop
			}
			if please != want {
				t.Fatalf("ANNOUNCE_PLEASE %+v, want %+v", please, want)
			}
			return p, ctx, st
		}
		start := func(t *testing.T) (*rawPeer, context.Context, transport.Stream) { return startWith(t, Limits{}) }
		hops := func(n int) []uint64 {
			h := make([]uint64, n)
			for i := range h {
				h[i] = uint64(i + 1)
			}
			return h
		}

		t.Run("active twice", func(t *testing.T) {
			p, ctx, st := start(t)
			rawWrite(t, st, rawCat(p.announce(t, true, "a", 7), p.announce(t, true, "a", 7)))
			p.wantConnClosed(t, ctx, broadcast.CodeDuplicate)
		})
		t.Run("active twice, other spelling", func(t *testing.T) {
			p, ctx, st := start(t)
			rawWrite(t, st, rawCat(p.announce(t, true, "a/b", 7), p.announce(t, true, "/a//b/", 7)))
			p.wantConnClosed(t, ctx, broadcast.CodeDuplicate)
		})
		t.Run("33 hops", func(t *testing.T) {
			p, ctx, st := start(t)
			body := []byte{0x01, 0x01, 'x', 33} // active, "x", 33 hops
			if p.v == wire.Lite04 {
				for _, h := range hops(33) {
					body = wire.AppendVarint(body, h)
				}
			}
			rawWrite(t, st, rawCat(rawVarint(uint64(len(body))), body))
			p.wantConnClosed(t, ctx, broadcast.CodeDecode)
		})
		t.Run("32 hops accepted", func(t *testing.T) {
			p, _, st := start(t)
			rawWrite(t, st, p.announce(t, true, "far", hops(32)...))
			waitRemote(t, p.sess, "far")
			p.wantUp(t)
		})
		t.Run("ended never announced", func(t *testing.T) {
			p, _, st := start(t)
			rawWrite(t, st, rawCat(p.announce(t, false, "ghost"), p.announce(t, true, "real", 7)))
			waitRemote(t, p.sess, "real")
			if p.sess.Remote().Get("ghost") != nil {
				t.Fatal("ghost is in Remote")
			}
			p.wantUp(t)
		})
		t.Run("status 2", func(t *testing.T) {
			p, ctx, st := start(t)
			rawWrite(t, st, []byte{0x04, 0x02, 0x01, 'x', 0x00}) // status 2, "x", no hops
			p.wantConnClosed(t, ctx, broadcast.CodeDecode)
		})
		t.Run("truncated then fin", func(t *testing.T) {
			p, ctx, st := start(t)
			rawWrite(t, st, []byte{0x09, 0x01, 0x01})
			_ = st.Close()
			p.wantConnClosed(t, ctx, broadcast.CodeDecode)
		})
		t.Run("over MaxMessageSize", func(t *testing.T) {
			p, ctx, st := start(t)
			rawWrite(t, st, rawVarint(1<<20))
			p.wantConnClosed(t, ctx, broadcast.CodeBoundsExceeded)
		})
		t.Run("own hop", func(t *testing.T) {
			p, _, st := start(t)
			rawWrite(t, st, rawCat(p.announce(t, true, "loop", 9, hop, 11), p.announce(t, true, "other", 9)))
			waitRemote(t, p.sess, "other")
			got := p.sess.Remote().Get("loop") != nil
			if p.v == wire.Lite04 && got {
				t.Fatal("an announcement whose hops hold our own ID is in Remote")
			}
			if p.v == wire.Lite03 && !got {
				t.Fatal("lite-03 carries only a hop count, so nothing is a loop; the announcement is missing")
			}
			p.wantUp(t)
		})
		// Announcements over MaxAnnounced are ignored and counted, not
		// remembered; the session goes on.
		t.Run("over MaxAnnounced", func(t *testing.T) {
			p, _, st := startWith(t, Limits{MaxAnnounced: 2})
			rawWrite(t, st, rawCat(p.announce(t, true, "a", 7), p.announce(t, true, "b", 7),
				p.announce(t, false, "a"), p.announce(t, true, "c", 7)))
			waitRemote(t, p.sess, "c") // an ended one frees its place
			p.wantUp(t)
			wantRemoteComplete(t, p.sess, true)
			// d is over: ignored. Its end matches nothing, so it frees no
			// place and e is over too. Ending b frees one: f takes it.
			rawWrite(t, st, rawCat(p.announce(t, true, "d", 7), p.announce(t, false, "d"),
				p.announce(t, true, "e", 7), p.announce(t, false, "b"), p.announce(t, true, "f", 7)))
			waitRemote(t, p.sess, "f")
			wantRemote(t, p.sess, "c", "f")
			wantIgnored(t, p.sess, 2)
			wantRemoteComplete(t, p.sess, false)
			// A path ignored before is taken as new once there is room.
			rawWrite(t, st, rawCat(p.announce(t, false, "c"), p.announce(t, true, "e", 7)))
			waitRemote(t, p.sess, "e")
			wantRemote(t, p.sess, "e", "f")
			p.wantUp(t)
		})
		if alpn == "moq-lite-04" {
			// A looped announcement is refused, but remembered until it
			// ends: it takes a place under MaxAnnounced like any other,
			// and ending it frees the place.
			t.Run("own hop is counted", func(t *testing.T) {
				p, _, st := startWith(t, Limits{MaxAnnounced: 1})
				rawWrite(t, st, rawCat(p.announce(t, true, "loop", hop), p.announce(t, false, "loop"), p.announce(t, true, "other", 9)))
				waitRemote(t, p.sess, "other")
				if p.sess.Remote().Get("loop") != nil {
					t.Fatal("looped announcement in Remote")
				}
				p.wantUp(t)
				// Over the bound, a loop is ignored like any other
				// announcement, and its end frees nothing.
				rawWrite(t, st, rawCat(p.announce(t, true, "loop", hop), p.announce(t, false, "loop"),
					p.announce(t, true, "over", 9), p.announce(t, false, "other"), p.announce(t, true, "next", 9)))
				waitRemote(t, p.sess, "next")
				wantRemote(t, p.sess, "next")
				wantIgnored(t, p.sess, 2)
				p.wantUp(t)
			})
			t.Run("own hop twice", func(t *testing.T) {
				p, ctx, st := start(t)
				rawWrite(t, st, rawCat(p.announce(t, true, "loop", hop), p.announce(t, true, "loop", hop)))
				p.wantConnClosed(t, ctx, broadcast.CodeDuplicate)
			})
		}
		t.Run("over MaxAnnouncedBytes", func(t *testing.T) {
			p, _, st := startWith(t, Limits{MaxAnnouncedBytes: 10})
			rawWrite(t, st, rawCat(p.announce(t, true, "abcd", 7), p.announce(t, true, "efgh", 7)))
			waitRemote(t, p.sess, "efgh") // 8 bytes of paths: within
			p.wantUp(t)
			// 11 bytes: ignored; 10 fit.
			rawWrite(t, st, rawCat(p.announce(t, true, "ijk", 7), p.announce(t, true, "xy", 7)))
			waitRemote(t, p.sess, "xy")
			wantRemote(t, p.sess, "abcd", "efgh", "xy")
			wantIgnored(t, p.sess, 1)
			p.wantUp(t)
		})
		// The publisher may end its announce stream: what it announced
		// ends, and the session goes on.
		for _, end := range []string{"fin", "reset"} {
			t.Run("publisher ends the stream with "+end, func(t *testing.T) {
				p, ctx, st := start(t)
				rawWrite(t, st, p.announce(t, true, "a", 7))
				waitRemote(t, p.sess, "a")
				if end == "fin" {
					_ = st.Close()
				} else {
					reset(st, broadcast.CodeCancel)
				}
				for path, b := range p.sess.Remote().Announced(ctx, "") {
					if path == "a" && b == nil {
						break
					}
				}
				if p.sess.Remote().Get("a") != nil {
					t.Fatalf("a still in Remote after its announce stream ended: %v", ctx.Err())
				}
				p.wantUp(t)
				p.checkServing(t)
			})
		}
	})
}

// The subscriber of an announce stream must send nothing after its interest;
// a stray byte is UnexpectedMessage on that stream only.
func TestBadInputAnnounceInterestExtraByte(t *testing.T) {
	forEach(t, lite0304, func(t *testing.T, alpn string) {
		p := newRawPeer(t, alpn, Config{Interest: []string{}}, false)
		please := rawCat(rawVarint(uint64(wire.StreamAnnounce)), p.msg(t, &wire.AnnouncePlease{Prefix: "/"}))
		active := p.msg(t, &wire.Announce{Active: true, Suffix: "cam", Hops: []uint64{p.sess.hop}})

		t.Run("same write", func(t *testing.T) {
			ctx := testCtx(t)
			st := p.openStream(t, ctx, rawCat(please, []byte{0x00}), false)
			defer reset(st, broadcast.CodeCancel)
			wantReset(t, ctx, st, broadcast.CodeUnexpectedMsg)
			p.checkServing(t)
		})
		t.Run("after the first announce", func(t *testing.T) {
			ctx := testCtx(t)
			st := p.openStream(t, ctx, please, false)
			defer reset(st, broadcast.CodeCancel)
			readAnnounce(t, ctx, st, active)
			rawWrite(t, st, []byte{0x00})
			// Nobody reads an idle interest stream: the session finds the
			// byte when it next announces on it. Announce until it does.
			stop, done := make(chan struct{}), make(chan struct{})
			var unpublish []func()
			go func() {
				defer close(done)
				tick := time.NewTicker(20 * time.Millisecond)
				defer tick.Stop()
				for i := 0; ; i++ {
					select {
					case <-stop:
						return
					case <-tick.C:
					}
					if u, err := p.sess.publish.Publish(fmt.Sprintf("more%d", i), broadcast.New(broadcast.Config{}).Consume()); err == nil {
						unpublish = append(unpublish, u)
					}
				}
			}()
			wantReset(t, ctx, st, broadcast.CodeUnexpectedMsg)
			close(stop)
			<-done
			for _, u := range unpublish {
				u()
			}
			p.checkServing(t)
		})
		t.Run("fin after the first announce", func(t *testing.T) {
			ctx := testCtx(t)
			st := p.openStream(t, ctx, please, false)
			defer reset(st, broadcast.CodeCancel)
			readAnnounce(t, ctx, st, active)
			g0 := p.sess.interests.Load()
			_ = st.Close() // the idle stream's end is noticed without a read
			if data, err := readStream(t, ctx, st); err != nil || len(data) != 0 {
				t.Fatalf("after our FIN: % x, %v; want the session's FIN", data, err)
			}
			eventually(t, func() bool { return p.sess.interests.Load() == g0-1 })
			p.checkServing(t)
		})
		t.Run("reset after the first announce", func(t *testing.T) {
			ctx := testCtx(t)
			st := p.openStream(t, ctx, please, false)
			readAnnounce(t, ctx, st, active)
			g0 := p.sess.interests.Load()
			st.CancelWrite(uint32(broadcast.CodeCancel)) // our reading side stays open
			if data, err := readStream(t, ctx, st); err == nil {
				t.Fatalf("after our reset: % x then FIN; want the session's reset", data)
			} else if _, ok := peerCode(err); !ok {
				t.Fatalf("after our reset: %v; want the session's reset", err)
			}
			eventually(t, func() bool { return p.sess.interests.Load() == g0-1 })
			st.CancelRead(0)
			p.checkServing(t)
		})
		t.Run("fin is fine", func(t *testing.T) {
			ctx := testCtx(t)
			st := p.openStream(t, ctx, please, true)
			data, err := readStream(t, ctx, st)
			if err != nil || !bytes.Equal(data, active) {
				t.Fatalf("announce stream: % x, %v; want % x then FIN", data, err, active)
			}
			p.checkServing(t)
		})
	})
}

// Random bytes on many bidi and uni streams: the session answers each with
// a reset, STOP_SENDING or FIN, never crashes, and serves afterwards.
func TestBadInputRandomStreams(t *testing.T) {
	forEach(t, lite0304, func(t *testing.T, alpn string) {
		p := newRawPeer(t, alpn, Config{Interest: []string{}}, false)
		ctx := testCtx(t)
		// The session also subscribes, so that group streams with a valid
		// header reach its frame reader.
		res := p.subscribeAsync(ctx, "cam", "video")
		sst, sub := p.acceptSubscribe(t, ctx)
		rawWrite(t, sst, p.response(t, &wire.SubscribeOK{}))
		r := waitSub(t, ctx, res)
		if r.err != nil {
			t.Fatal(r.err)
		}
		tc := r.tc

		seed := int64(20260901 + len(alpn))
		if p.v == wire.Lite04 {
			seed++
		}
		rng := rand.New(rand.NewSource(seed))
		random := func(n int) []byte {
			b := make([]byte, rng.Intn(n+1))
			rng.Read(b)
			return b
		}
		allowed := map[uint32]bool{0: true, 5: true, 10: true, 11: true, 13: true, 16: true, 17: true}
		outcomes := map[string]int{}
		deadline := time.Now().Add(5 * time.Second)
		n := 0
		for ; n < 200 && time.Now().Before(deadline); n++ {
			// Bidi: random bytes, half the time after a valid stream type
			// and a plausible length.
			b := random(64)
			if rng.Intn(2) == 0 {
				body := random(20)
				b = rawCat(rawVarint(uint64(1+rng.Intn(5))), rawVarint(uint64(max(0, len(body)+rng.Intn(3)-1))), body)
			}
			st := p.openStream(t, ctx, b, true)
			_, err := readStream(t, ctx, st)
			if err == nil {
				outcomes["fin"]++
			} else if c, ok := peerCode(err); ok && allowed[c] {
				outcomes[fmt.Sprintf("reset %d", c)]++
			} else {
				t.Errorf("bidi % x: ended with %v", b, err)
			}
			reset(st, broadcast.CodeCancel)

			// Uni: random bytes, or a group header then random frames,
			// for the live subscription or an unknown one.
			u := random(64)
			switch rng.Intn(3) {
			case 0:
				u = rawCat(rawVarint(uint64(wire.UniGroup)), u)
			case 1:
				u = rawCat(rawVarint(uint64(wire.UniGroup)), p.msg(t, &wire.Group{SubscribeID: sub.ID, Sequence: uint64(rng.Intn(1000))}), u)
			}
			us, err := p.raw.OpenUniStream(ctx)
			if err != nil {
				t.Fatal(err)
			}
			_, _ = us.Write(u) // garbage may be refused before it is all written
			_ = us.Close()
		}
		t.Logf("seed %d: %d iterations, bidi outcomes %v", seed, n, outcomes)
		if n < 50 {
			t.Errorf("only %d iterations in time", n)
		}

		// The subscription still delivers...
		const final = 123456789
		gs := p.openGroup(t, ctx, sub.ID, final)
		rawWrite(t, gs, rawFrame("final"))
		_ = gs.Close()
		for {
			g, err := tc.RecvGroup(ctx)
			if err != nil {
				t.Fatalf("waiting for the final group: %v", err)
			}
			if g.Sequence() != final {
				continue
			}
			if frames, err := groupFrames(ctx, g); !errors.Is(err, io.EOF) || !slices.Equal(frames, []string{"final"}) {
				t.Fatalf("final group: %q, %v", frames, err)
			}
			break
		}
		// ...and the session still serves.
		p.checkServing(t)
	})
}

// After SUBSCRIBE the subscriber may send SUBSCRIBE_UPDATE (accepted and
// ignored); anything malformed resets the subscription with Decode.
func TestBadInputSubscribeUpdate(t *testing.T) {
	forEach(t, lite0304, func(t *testing.T, alpn string) {
		p := newRawPeer(t, alpn, Config{Interest: []string{}}, false)
		update := p.msg(t, &wire.SubscribeUpdate{Priority: 3, Ordered: true, End: wire.GroupAt(1 << 20)})
		for _, c := range []struct {
			name  string
			bytes []byte
			want  broadcast.Code
		}{
			{"trailing byte", withTrailingByte(t, update), broadcast.CodeDecode},
			{"truncated", rawCat(update, []byte{0x09, 0x01}), broadcast.CodeDecode},
			{"over MaxMessageSize", rawCat(update, rawVarint(1<<20)), broadcast.CodeBoundsExceeded},
		} {
			t.Run(c.name, func(t *testing.T) {
				ctx := testCtx(t)
				_, st := p.subscribe(t, ctx, "/cam", "video")
				defer reset(st, broadcast.CodeCancel)
				rawWrite(t, st, c.bytes)
				if c.name == "truncated" {
					_ = st.Close()
				}
				wantReset(t, ctx, st, c.want)
				eventually(t, func() bool { return p.sess.served.Load() == 0 })
				p.checkServing(t)
			})
		}
		t.Run("valid update is ignored", func(t *testing.T) {
			ctx := testCtx(t)
			id, st := p.subscribe(t, ctx, "/cam", "video")
			defer reset(st, broadcast.CodeCancel)
			rawWrite(t, st, rawCat(update, update))
			// The subscription still delivers.
			if err := p.track.WriteFrame([]byte("updated")); err != nil {
				t.Fatal(err)
			}
			for {
				rs, err := p.raw.AcceptUniStream(ctx)
				if err != nil {
					t.Fatal(err)
				}
				data, err := readStream(t, ctx, rs)
				if err != nil {
					continue
				}
				g, err := p.parseGroup(data)
				if err != nil {
					t.Fatal(err)
				}
				if g.hdr.SubscribeID == id && slices.Contains(g.frames, "updated") {
					break
				}
			}
			p.wantUp(t)
		})
	})
}

// A second group stream with a sequence the subscription already has is
// refused; the first copy of the group is not disturbed.
func TestBadInputDuplicateGroup(t *testing.T) {
	forEach(t, lite0304, func(t *testing.T, alpn string) {
		p := newRawPeer(t, alpn, Config{Interest: []string{}}, true)
		ctx := testCtx(t)
		tc, _, sub := p.sessionSubscribe(t, ctx)
		first := p.openGroup(t, ctx, sub.ID, 4)
		rawWrite(t, first, rawFrame("one"))
		g, err := tc.RecvGroup(ctx)
		if err != nil || g.Sequence() != 4 {
			t.Fatalf("RecvGroup: %v, %v", g, err)
		}
		second := p.openGroup(t, ctx, sub.ID, 4)
		// The header alone names the duplicate: the session may stop the
		// stream before this write, which then fails with its code.
		_, _ = second.Write(rawFrame("impostor"))
		wantStopSending(t, ctx, second, broadcast.CodeDuplicate)
		rawWrite(t, first, rawFrame("two"))
		_ = first.Close()
		if frames, err := groupFrames(ctx, g); !errors.Is(err, io.EOF) || !slices.Equal(frames, []string{"one", "two"}) {
			t.Fatalf("group 4: %q, %v", frames, err)
		}
		p.wantUp(t)
	})
}

// Group streams may arrive before SUBSCRIBE_OK (they are separate streams);
// their frames are kept.
func TestBadInputGroupBeforeSubscribeOK(t *testing.T) {
	forEach(t, lite0304, func(t *testing.T, alpn string) {
		p := newRawPeer(t, alpn, Config{Interest: []string{}}, true)
		ctx := testCtx(t)
		res := p.subscribeAsync(ctx, "cam", "video")
		st, sub := p.acceptSubscribe(t, ctx)
		gs := p.openGroup(t, ctx, sub.ID, 0)
		rawWrite(t, gs, rawCat(rawFrame("early"), rawFrame("bird")))
		_ = gs.Close()
		p.sess.mu.Lock()
		s := p.sess.subs[sub.ID]
		p.sess.mu.Unlock()
		if s == nil {
			t.Fatal("subscription not registered before SUBSCRIBE was sent")
		}
		eventually(t, func() bool {
			s.mu.Lock()
			defer s.mu.Unlock()
			return s.receiving == 0 && p.sess.Stats().GroupsReceived > 0
		})
		rawWrite(t, st, p.response(t, &wire.SubscribeOK{}))
		r := waitSub(t, ctx, res)
		if r.err != nil {
			t.Fatal(r.err)
		}
		g, err := r.tc.RecvGroup(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if frames, err := groupFrames(ctx, g); !errors.Is(err, io.EOF) || !slices.Equal(frames, []string{"early", "bird"}) {
			t.Fatalf("early group: %q, %v", frames, err)
		}
	})
}

// A frame's declared size is a claim, not data: a peer that sends a group
// header and a size varint (a few bytes) must not make the session allocate
// the whole frame up front. Otherwise about 8 bytes per stream pin
// MaxFrameSize (16 MiB by default) each, and the peer may open thousands of
// streams.
func TestBadInputDeclaredFrameSizeIsNotAllocated(t *testing.T) {
	p := newRawPeer(t, "moq-lite-04", Config{Interest: []string{}}, true)
	ctx := testCtx(t)
	_, _, sub := p.sessionSubscribe(t, ctx)
	p.sess.mu.Lock()
	s := p.sess.subs[sub.ID]
	p.sess.mu.Unlock()

	before := testutil.HeapAlloc()
	const streams = 8
	size := uint64(p.sess.lim.MaxFrameSize) // the largest size allowed
	var open []transport.SendStream
	for i := range streams {
		gs := p.openGroup(t, ctx, sub.ID, uint64(i))
		rawWrite(t, gs, rawCat(rawVarint(size), []byte("x")))
		open = append(open, gs)
	}
	defer func() {
		for _, gs := range open {
			gs.CancelWrite(0)
		}
	}()
	eventually(t, func() bool { // every stream is inside readFrames
		s.mu.Lock()
		defer s.mu.Unlock()
		return s.receiving == streams
	})
	var grew int64
	for range 20 { // give the readers time to get to the payload
		time.Sleep(10 * time.Millisecond)
		grew = testutil.HeapAlloc() - before
	}
	sent := streams * (len(rawVarint(size)) + 1)
	if limit := int64(8 << 20); grew > limit {
		t.Errorf("%d bytes of frame sizes and payload pinned %d MiB of heap (want < %d MiB): frame buffers are allocated at the declared size before the payload arrives",
			sent, grew>>20, limit>>20)
	}
}

// A Subscribe retried as soon as the previous one to the same track was
// refused must start a new wire subscription and get its answer, not the
// previous refusal. (The window is short: the retry races the clean-up of
// the refused subscription, so the test makes many attempts.)
func TestBadInputSubscribeRetryAfterRefusal(t *testing.T) {
	forEach(t, lite0304, func(t *testing.T, alpn string) {
		p := newRawPeer(t, alpn, Config{Interest: []string{}}, true)
		for i := range 100 {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			defer cancel()
			// The raw side refuses the first SUBSCRIBE and accepts the next.
			ok := p.response(t, &wire.SubscribeOK{})
			answered := make(chan error, 1)
			go func() {
				answered <- func() error {
					for n := 0; ; n++ {
						st, err := p.raw.AcceptStream(ctx)
						if err != nil {
							return err
						}
						if n == 0 {
							reset(st, broadcast.CodeNotFound)
							continue
						}
						if _, err := st.Write(ok); err != nil {
							return err
						}
						_, err = io.Copy(io.Discard, st) // until the session unsubscribes
						return err
					}
				}()
			}()
			_, err := p.sess.Subscribe(ctx, "cam", "video", SubscribeOptions{})
			if !errors.Is(err, broadcast.ErrNotFound) {
				t.Fatalf("attempt %d: %v, want NotFound", i, err)
			}
			tc, err := p.sess.Subscribe(ctx, "cam", "video", SubscribeOptions{}) // retry at once
			if err != nil {
				cancel()
				<-answered
				t.Fatalf("attempt %d: the retry failed with %v (the raw side would have accepted it)", i, err)
			}
			tc.Close() // unsubscribes: the session resets the stream
			if err := <-answered; err == nil {
				t.Fatalf("attempt %d: the session finished the retry's stream instead of resetting it", i)
			}
			eventually(t, func() bool {
				p.sess.mu.Lock()
				defer p.sess.mu.Unlock()
				return len(p.sess.subs) == 0
			})
		}
		p.wantUp(t)
	})
}

// A peer whose connection goes away is reported as a lost session, not as
// the unannouncement of its broadcasts; a peer's reset carries its number
// next to our name for it.
func TestLostPeerIsNotUnannounce(t *testing.T) {
	ctx := testCtx(t)
	p := newRawPeer(t, wire.ALPNLite04, Config{}, false)
	st, _ := p.acceptInterest(t, ctx)
	rawWrite(t, st, p.announce(t, true, "live"))
	waitRemote(t, p.sess, "live")
	b := p.sess.Remote().Get("live")
	_ = p.raw.CloseWithError(uint32(broadcast.CodeApp+3), "power cut")
	select {
	case <-b.Done():
	case <-ctx.Done():
		t.Fatal("the lost peer's broadcast never ended")
	}
	err := b.Err()
	if strings.Contains(err.Error(), "unannounced") || !strings.Contains(err.Error(), "code 67") || !strings.Contains(err.Error(), "power cut") {
		t.Fatalf("broadcast of a lost peer ended with %q, want the session's end with its code", err)
	}
	if got := remoteErr(&transport.StreamError{Code: 13, Remote: true}).Error(); !strings.Contains(got, "not found") || !strings.Contains(got, "13") {
		t.Fatalf("a peer's NotFound reset reads %q, want our name and its number", got)
	}
}
