package session

import (
	"context"
	"crypto/tls"
	"log/slog"
	"testing"
	"time"

	"github.com/quic-go/quic-go"
	"go.uber.org/goleak"

	"github.com/moqp2p/moqp2p/broadcast"
	"github.com/moqp2p/moqp2p/internal/testutil"
	"github.com/moqp2p/moqp2p/transport"
	"github.com/moqp2p/moqp2p/transport/cert"
	"github.com/moqp2p/moqp2p/transport/rawquic"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func testCtx(t testing.TB) context.Context { return testutil.Context(t, 10*time.Second) }

func testLogger() *slog.Logger { return testutil.Logger() }

// conns returns a connected pair of raw QUIC connections on loopback: the
// server's and the client's, both speaking alpn.
func conns(t testing.TB, alpn string, qc ...*quic.Config) (server, client transport.Conn) {
	t.Helper()
	var cfg *quic.Config
	if len(qc) > 0 {
		cfg = qc[0]
	}
	crt, err := cert.SelfSigned()
	if err != nil {
		t.Fatal(err)
	}
	ln, err := rawquic.Listen("127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{crt}, NextProtos: []string{alpn}}, cfg)
	if err != nil {
		t.Fatal(err)
	}
	dialer, err := rawquic.NewEndpoint("127.0.0.1:0", cfg)
	if err != nil {
		t.Fatal(err)
	}
	// Registered before any session's cleanup, so it runs after them: the
	// sockets go only once the sessions have closed.
	t.Cleanup(func() { _ = dialer.Close(); _ = ln.Close() })
	accepted := make(chan transport.Conn, 1)
	go func() {
		c, err := ln.Accept(testCtx(t))
		if err != nil {
			t.Error(err)
		}
		accepted <- c
	}()
	tc := cert.PinnedConfig(cert.Fingerprint(crt))
	tc.NextProtos = []string{alpn}
	client, err = dialer.Dial(testCtx(t), ln.Addr().String(), tc)
	if err != nil {
		t.Fatal(err)
	}
	server = <-accepted
	if server == nil {
		t.FailNow()
	}
	return server, client
}

// pair is a publisher session and a subscriber session connected over QUIC.
type pair struct {
	origin   *broadcast.Origin // the publisher's
	pub, sub *Session
}

// versions are the ALPNs the tests run under; "moql" negotiates lite-02
// through the compat SETUP.
var versions = []string{"moq-lite-03", "moq-lite-04", "moq-lite-05", "moql"}

// newPair connects a publishing server session to a subscribing client session.
func newPair(t testing.TB, alpn string, pubCfg, subCfg Config, qc ...*quic.Config) *pair {
	t.Helper()
	sc, cc := conns(t, alpn, qc...)
	if pubCfg.Publish == nil {
		pubCfg.Publish = broadcast.NewOrigin(0)
	}
	pubCfg.Logger, subCfg.Logger = testLogger(), testLogger()
	subCfg.Client = true // the subscriber dialed
	pub, err := New(sc, pubCfg)
	if err != nil {
		t.Fatal(err)
	}
	sub, err := New(cc, subCfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = sub.Close(broadcast.CodeCancel, "test over")
		_ = pub.Close(broadcast.CodeCancel, "test over")
	})
	return &pair{origin: pubCfg.Publish, pub: pub, sub: sub}
}

// lite0304 are the versions fixed by ALPN, with no compat SETUP: the raw
// peers of the bad-input tests speak these, and only they carry features
// such as max latency on the wire.
var lite0304 = []string{"moq-lite-03", "moq-lite-04"}

func forVersions(t *testing.T, f func(t *testing.T, alpn string)) { forEach(t, versions, f) }

func forEach(t *testing.T, vs []string, f func(t *testing.T, alpn string)) {
	for _, v := range vs {
		t.Run(v, func(t *testing.T) { f(t, v) })
	}
}
