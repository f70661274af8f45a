package actor

import (
	"context"
	"crypto/tls"
	"log/slog"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
	"go.uber.org/goleak"

	"github.com/moqp2p/moqp2p/broadcast"
	"github.com/moqp2p/moqp2p/internal/testutil"
	"github.com/moqp2p/moqp2p/session"
	"github.com/moqp2p/moqp2p/transport"
	"github.com/moqp2p/moqp2p/transport/cert"
	"github.com/moqp2p/moqp2p/transport/rawquic"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func testCtx(t testing.TB) context.Context { return testutil.Context(t, 10*time.Second) }

// peerConn is a real QUIC connection labelled with the peer at its other end.
type peerConn struct {
	transport.Conn
	remote peer.ID
}

func (c peerConn) RemotePeer() peer.ID { return c.remote }

// node is an actor with a QUIC listener. The dialer names itself in the TLS
// server name, standing in for libp2p's authenticated identity.
type node struct {
	id    peer.ID
	a     *Actor
	ln    *rawquic.Endpoint // listens, and dials from the same socket
	dials atomic.Int32
	// dialHook, if set, runs before each dial (to delay, fail or panic).
	dialHook func(ctx context.Context, to peer.ID) error
	// wrapDialed, if set, wraps each dialed connection.
	wrapDialed func(Conn) Conn
}

type network struct {
	mu    sync.Mutex
	nodes map[peer.ID]*node
	cert  tls.Certificate
}

func newNetwork(t *testing.T) *network {
	crt, err := cert.SelfSigned()
	if err != nil {
		t.Fatal(err)
	}
	return &network{nodes: map[peer.ID]*node{}, cert: crt}
}

func newPeerID(t *testing.T) peer.ID {
	_, pub, err := crypto.GenerateEd25519Key(nil)
	if err != nil {
		t.Fatal(err)
	}
	id, err := peer.IDFromPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	return id
}

func quiet() *slog.Logger { return testutil.Logger() }

func (nw *network) add(t *testing.T) *node { return nw.addWith(t, nil) }

// addWith adds a node whose Config tune may change first.
func (nw *network) addWith(t *testing.T, tune func(*Config)) *node {
	n := &node{id: newPeerID(t)}
	ln, err := rawquic.Listen("127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{nw.cert}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	n.ln = ln
	cfg := Config{
		Dial:          func(ctx context.Context, addr peer.AddrInfo) (Conn, error) { return nw.dial(ctx, n, addr.ID) },
		Session:       session.Config{Logger: quiet()},
		HopID:         broadcast.NewHopID(),
		ShutdownGrace: time.Second,
		Logger:        quiet(),
	}
	if tune != nil {
		tune(&cfg)
	}
	n.a = New(cfg)
	nw.mu.Lock()
	nw.nodes[n.id] = n
	nw.mu.Unlock()
	go func() { // accept loop: every connection is registered as incoming
		for {
			c, err := ln.Accept(context.Background())
			if err != nil {
				return
			}
			from, err := peer.Decode(rawquicServerName(c))
			if err != nil {
				_ = c.CloseWithError(6, "who are you")
				continue
			}
			_, _ = n.a.Register(context.Background(), peerConn{c, from}, false)
		}
	}()
	t.Cleanup(func() {
		_ = n.a.Shutdown(context.Background())
		_ = ln.Close()
	})
	return n
}

func rawquicServerName(c transport.Conn) string {
	qc, _ := rawquic.QUIC(c)
	return qc.ConnectionState().TLS.ServerName
}

func (nw *network) dial(ctx context.Context, from *node, to peer.ID) (Conn, error) {
	from.dials.Add(1)
	if from.dialHook != nil {
		if err := from.dialHook(ctx, to); err != nil {
			return nil, err
		}
	}
	nw.mu.Lock()
	target := nw.nodes[to]
	nw.mu.Unlock()
	tc := &tls.Config{InsecureSkipVerify: true, ServerName: from.id.String()}
	c, err := from.ln.Dial(ctx, target.ln.Addr().String(), tc)
	if err != nil {
		return nil, err
	}
	var conn Conn = peerConn{c, to}
	if from.wrapDialed != nil {
		conn = from.wrapDialed(conn)
	}
	return conn, nil
}

func (n *node) connect(t *testing.T, to *node) *Session {
	t.Helper()
	s, err := n.a.Connect(testCtx(t), peer.AddrInfo{ID: to.id})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

var eventually = testutil.Eventually

// sessionsTo returns n's live sessions with p.
func (n *node) sessionsTo(t *testing.T, p peer.ID) []*Session {
	all, err := n.a.Sessions(testCtx(t))
	if err != nil {
		t.Fatal(err)
	}
	var out []*Session
	for _, s := range all {
		if s.RemotePeer() == p {
			out = append(out, s)
		}
	}
	return out
}

// announced reports whether s's peer currently announces path to it.
func announced(s *Session, path string) bool { return s.Remote().Get(path) != nil }
