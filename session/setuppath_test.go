package session

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/moqp2p/moqp2p/broadcast"
	"github.com/moqp2p/moqp2p/internal/wire"
	"github.com/moqp2p/moqp2p/transport"
	"github.com/moqp2p/moqp2p/transport/cert"
	"github.com/moqp2p/moqp2p/transport/rawquic"
)

// setupPathListener is a raw QUIC listener on loopback and a TLS config
// that trusts it.
func setupPathListener(t *testing.T) (*rawquic.Endpoint, *tls.Config) {
	t.Helper()
	crt, err := cert.SelfSigned()
	if err != nil {
		t.Fatal(err)
	}
	ep, err := rawquic.Listen("127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{crt}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ep.Close() })
	return ep, cert.PinnedConfig(cert.Fingerprint(crt))
}

// A lite-05 client over raw QUIC sends its URL's path and query in SETUP
// (raw QUIC has no request URI), and nothing when the URL has neither; a
// Config.SetupPath wins over the connection's.
func TestSetupPathRawQUIC(t *testing.T) {
	ep, tc := setupPathListener(t)
	base := "moql://" + ep.Addr().String()
	for _, tc2 := range []struct {
		url, cfg string
		want     wire.Setup
	}{
		{"/some/path?x=1", "", wire.Setup{Path: "/some/path?x=1", HasPath: true}},
		{"/room", "", wire.Setup{Path: "/room", HasPath: true}},
		{"/", "", wire.Setup{Path: "/", HasPath: true}},
		{"", "", wire.Setup{}},
		{"?jwt=abc#pos", "", wire.Setup{Path: "?jwt=abc", HasPath: true}},
		{"/room", "/other?jwt=1", wire.Setup{Path: "/other?jwt=1", HasPath: true}},
	} {
		t.Run(fmt.Sprintf("%q %q", tc2.url, tc2.cfg), func(t *testing.T) {
			ctx := testCtx(t)
			c, err := rawquic.DialURL(ctx, base+tc2.url, tc, nil)
			if err != nil {
				t.Fatal(err)
			}
			cs, err := New(c, Config{Client: true, SetupPath: tc2.cfg, Interest: []string{}, Logger: testLogger()})
			if err != nil {
				t.Fatal(err)
			}
			defer cs.Close(broadcast.CodeCancel, "test over")
			sc, err := ep.Accept(ctx)
			if err != nil {
				t.Fatal(err)
			}
			ss, err := New(sc, Config{Interest: []string{}, Logger: testLogger()})
			if err != nil {
				t.Fatal(err)
			}
			defer ss.Close(broadcast.CodeCancel, "test over")
			if ss.Version() != "moq-lite-05" {
				t.Fatalf("version %s", ss.Version())
			}
			got := awaitPeerSetup(t, ss)
			got.Origin, got.EagerStart = 0, false
			if got != tc2.want {
				t.Fatalf("server saw SETUP %+v, want %+v", got, tc2.want)
			}
			// The server sends none back.
			if got := awaitPeerSetup(t, cs); got.HasPath {
				t.Fatalf("client saw a path from the server: %+v", got)
			}
		})
	}
}

func awaitPeerSetup(t *testing.T, s *Session) wire.Setup {
	t.Helper()
	s.acceptGroups() // the SETUP is read with the group streams
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(time.Millisecond) {
		if m, ok := s.PeerSetup(); ok {
			return m
		}
		if time.Now().After(deadline) {
			t.Fatal("no peer SETUP")
		}
	}
}

// A server that reads the client's SETUP first (AcceptSetup) to route the
// session by its path hands it to New, which serves as usual and takes a
// second SETUP stream as the violation it is.
func TestAcceptSetupThenServe(t *testing.T) {
	ep, tc := setupPathListener(t)
	ctx := testCtx(t)
	origin := broadcast.NewOrigin(0)
	b := broadcast.New(broadcast.Config{})
	tp, _ := b.CreateTrack(broadcast.Track{Name: "video"})
	if _, err := origin.Publish("clock", b.Consume()); err != nil {
		t.Fatal(err)
	}
	c, err := rawquic.DialURL(ctx, "moql://"+ep.Addr().String()+"/room?jwt=t", tc, nil)
	if err != nil {
		t.Fatal(err)
	}
	cs, err := New(c, Config{Client: true, Logger: testLogger()})
	if err != nil {
		t.Fatal(err)
	}
	defer cs.Close(broadcast.CodeCancel, "test over")
	sc, err := ep.Accept(ctx)
	if err != nil {
		t.Fatal(err)
	}
	m, err := AcceptSetup(ctx, sc, Limits{})
	if err != nil {
		t.Fatal(err)
	}
	if m.Path != "/room?jwt=t" || !m.HasPath {
		t.Fatalf("SETUP %+v", m)
	}
	ss, err := New(sc, Config{Publish: origin, PeerSetup: m, Logger: testLogger()})
	if err != nil {
		t.Fatal(err)
	}
	defer ss.Close(broadcast.CodeCancel, "test over")
	if got, ok := ss.PeerSetup(); !ok || got != *m {
		t.Fatalf("PeerSetup %+v %v", got, ok)
	}
	tr, err := cs.Subscribe(ctx, "clock", "video", SubscribeOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Close()
	g, _ := tp.AppendGroup()
	_ = g.WriteFrame([]byte("tick"))
	_ = g.Finish()
	rg, err := tr.NextGroup(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if f, err := rg.ReadFrame(ctx); err != nil || string(f) != "tick" {
		t.Fatalf("frame %q %v", f, err)
	}
	// A second SETUP stream from the client is a violation, seen once the
	// server reads the client's uni streams (from its first subscription).
	ss.acceptGroups()
	st, err := c.OpenUniStream(ctx)
	if err != nil {
		t.Fatal(err)
	}
	buf, _ := wire.AppendMessage(wire.AppendUniStreamType(nil, wire.UniSetup), wire.Lite05, &wire.Setup{})
	_, _ = st.Write(buf)
	_ = st.Close()
	select {
	case <-ss.Context().Done():
	case <-ctx.Done():
		t.Fatal("second SETUP stream accepted")
	}
	var ce *transport.ConnError
	if err := context.Cause(ss.Context()); !errors.As(err, &ce) || ce.Code != uint32(broadcast.CodeProtocol) {
		t.Fatalf("session ended with %v, want Protocol", err)
	}
}

// AcceptSetup needs a version with a SETUP stream.
func TestAcceptSetupNeedsLite05(t *testing.T) {
	_, err := AcceptSetup(testCtx(t), fakeProtoConn{p: "moq-lite-04"}, Limits{})
	if err == nil {
		t.Fatal("AcceptSetup on lite-04 succeeded")
	}
}

type fakeProtoConn struct {
	transport.Conn
	p string
}

func (f fakeProtoConn) Protocol() string { return f.p }
