// Package p2pquic runs moq-lite on raw QUIC connections that share a go-libp2p
// host's UDP socket and identity: the connection negotiates a moq-lite ALPN
// (not libp2p's), is demultiplexed from the host's own QUIC traffic by that
// ALPN, and authenticates both ends with libp2p's TLS certificates, so the
// remote peer ID is proven inside the handshake.
//
// Sharing the socket means a moq-lite dial leaves from the host's listening
// port: the NAT binding (or hole punch) that libp2p opened for a peer carries
// moq-lite too.
//
// Constraints, all from go-libp2p v0.51.0's quicreuse package:
//
//   - The host must be built with [Transport.Option] and must listen for QUIC
//     on unspecified addresses (/ip4/0.0.0.0/udp/P/quic-v1, /ip6/::/udp/P/quic-v1).
//     libp2p serves every ALPN on a socket with one server quic.Config that
//     grants 5 concurrent uni streams, far too few for moq-lite's stream per
//     group; the only way around it is to own the socket and lend it to
//     libp2p, and quicreuse accepts lent sockets only on unspecified IPs.
//   - On the accepting side only the stream limits of [Config.QUIC] apply;
//     the other settings are libp2p's, shared with its own connections (which
//     get the raised stream limits too).
//   - moq-lite connections count against the host's resource manager like
//     libp2p's own (by default at most 8 connections per peer, libp2p's and
//     moq-lite's together), and the host's connection gater applies to them.
package p2pquic

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
	p2ptls "github.com/libp2p/go-libp2p/p2p/security/tls"
	"github.com/libp2p/go-libp2p/p2p/transport/quicreuse"
	ma "github.com/multiformats/go-multiaddr"
	"github.com/quic-go/quic-go"

	"github.com/moqp2p/moqp2p/internal/wire"
	"github.com/moqp2p/moqp2p/transport"
	"github.com/moqp2p/moqp2p/transport/rawquic"
)

// alpns are offered when dialing and served when listening, most preferred
// first (a TLS server picks by its own order): lite-05, whose missing
// SUBSCRIBE_OK moqp2p's publishers make up for with an eager
// SUBSCRIBE_START (see the session package), then lite-04 and lite-03 for
// older peers.
var alpns = []string{wire.ALPNLite05, wire.ALPNLite04, wire.ALPNLite03}

// moq-lite codes this package closes connections with (connection close codes
// go on the wire unmapped, as in rawquic).
const (
	codeUnauthorized   = 6  // the connection gater refused the peer
	codeBoundsExceeded = 11 // the resource manager refused the connection
	codeProtocol       = 15 // the peer's certificate names no peer ID
	codeClosed         = 25 // the transport or its host is shutting down
)

// ErrClosed is returned by Accept, Dial and Listen once the transport, or the
// host it is bound to, has been closed.
var ErrClosed = errors.New("p2pquic: transport closed")

// errNotBound is returned when the host was not built with this transport's
// Option, so there is no ConnManager or identity to use.
var errNotBound = errors.New("p2pquic: host was not built with this Transport's Option()")

// Config configures a Transport.
type Config struct {
	// QUIC is used for dialed connections; nil means
	// rawquic.ConfigDeadPeer(DeadPeerTimeout). Its MaxIncomingStreams and
	// MaxIncomingUniStreams also raise the limits of the host's shared
	// listening sockets (never lower them).
	QUIC *quic.Config
	// DeadPeerTimeout is how long a peer may stay silent before a
	// connection is given up, when QUIC is nil (see rawquic.ConfigDeadPeer;
	// 0 means 3 s). Dialed connections get it as QUIC's idle timeout and
	// keep-alives. The listening sockets, which libp2p's own connections
	// share, keep libp2p's settings (a shorter idle timeout there made the
	// host's DHT connections churn under load), so accepted connections are
	// held to it by a watch of their own (silence.go): one that receives
	// nothing for three quarters of it is closed with Timeout (3). A moqp2p
	// dialer sends keep-alives every quarter of its own bound, so nodes
	// that connect should not set bounds more than three times apart: a
	// dialer whose bound is over three times the acceptor's is given up
	// while idle.
	DeadPeerTimeout time.Duration
	// Logger receives connection events; nil means slog.Default().
	Logger *slog.Logger
}

// Transport accepts and dials moq-lite connections over one libp2p host's
// QUIC sockets. It is bound to the host by Option and is safe for concurrent
// use.
type Transport struct {
	qconf *quic.Config
	log   *slog.Logger

	done     chan struct{} // closed by Close
	incoming chan *Conn    // authenticated connections waiting for Accept
	acceptWG sync.WaitGroup

	hostCtx    context.Context // cancelled when the host shuts down, to end dials
	hostCancel context.CancelFunc
	dialWG     sync.WaitGroup

	silence silenceBound // what accepted connections are held to (silence.go)

	mu         sync.Mutex
	b          *binding // set by the QUICReuse constructor during libp2p.New
	listening  bool
	closed     bool
	hostClosed bool
	conns      map[*Conn]struct{} // live connections, closed with the host
}

// New returns a transport to bind to a host with Option.
func New(cfg Config) *Transport {
	qc := cfg.QUIC
	if qc == nil {
		qc = rawquic.ConfigDeadPeer(cfg.DeadPeerTimeout)
	} else {
		qc = qc.Clone()
	}
	log := cfg.Logger
	if log == nil {
		log = slog.Default()
	}
	hostCtx, hostCancel := context.WithCancel(context.Background())
	t := &Transport{
		qconf:      qc,
		log:        log.With("transport", "p2pquic"),
		done:       make(chan struct{}),
		incoming:   make(chan *Conn, 16),
		hostCtx:    hostCtx,
		hostCancel: hostCancel,
		conns:      map[*Conn]struct{}{},
	}
	t.silence.set(qc)
	return t
}

// SetDeadPeerTimeout changes the dead-peer bound of the connections the
// transport dials and accepts from now on (see Config.DeadPeerTimeout).
// Call it before dialing: it is not synchronised with Dial.
func (t *Transport) SetDeadPeerTimeout(d time.Duration) {
	ref := rawquic.ConfigDeadPeer(d)
	qc := t.qconf.Clone()
	qc.MaxIdleTimeout, qc.KeepAlivePeriod = ref.MaxIdleTimeout, ref.KeepAlivePeriod
	t.qconf = qc
	t.silence.set(qc)
}

// register wraps qc and keeps it until it closes, so that the host's shutdown
// can close it with a code instead of silently dropping its socket; release
// (if not nil) runs once qc has closed, from the same hook. It returns nil,
// having closed qc and run release, once the host is shutting down.
func (t *Transport) register(qc *quic.Conn, p peer.ID, release func()) *Conn {
	c := &Conn{qc: qc, peer: p}
	t.mu.Lock()
	if t.hostClosed {
		t.mu.Unlock()
		_ = qc.CloseWithError(codeClosed, "host closing")
		if release != nil {
			release()
		}
		return nil
	}
	t.conns[c] = struct{}{}
	t.mu.Unlock()
	// Wrapped once it is in conns: a connection closed already runs the
	// hook at once, which must find it there to delete it.
	c.Conn = rawquic.WrapFunc(qc, func() {
		t.mu.Lock()
		delete(t.conns, c)
		t.mu.Unlock()
		if release != nil {
			release()
		}
	})
	return c
}

// Accept waits for the next authenticated incoming connection.
func (t *Transport) Accept(ctx context.Context) (*Conn, error) {
	for {
		select {
		case <-t.done:
			return nil, ErrClosed
		case <-t.hostCtx.Done():
			return nil, ErrClosed
		default:
		}
		select {
		case c := <-t.incoming:
			if c.qc.Context().Err() != nil {
				continue // closed while queued (by the peer, or the host's shutdown)
			}
			return c, nil
		case <-t.done:
			return nil, ErrClosed
		case <-t.hostCtx.Done():
			return nil, ErrClosed
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

// remotePeer is the peer ID in the certificate the handshake verified. The
// key the TLS config's check extracted comes on keyCh; re-deriving it from
// the certificate chain (the fallback) costs another signature verification.
func remotePeer(qc *quic.Conn, keyCh <-chan crypto.PubKey) (peer.ID, error) {
	select {
	case pub, ok := <-keyCh:
		if ok && pub != nil {
			return peer.IDFromPublicKey(pub)
		}
	default:
	}
	pub, err := p2ptls.PubKeyFromCertChain(qc.ConnectionState().TLS.PeerCertificates)
	if err != nil {
		return "", err
	}
	return peer.IDFromPublicKey(pub)
}

// maddrs gives the connection gater a connection's endpoints.
type maddrs struct{ local, remote ma.Multiaddr }

func (m maddrs) LocalMultiaddr() ma.Multiaddr  { return m.local }
func (m maddrs) RemoteMultiaddr() ma.Multiaddr { return m.remote }

func connAddrs(qc *quic.Conn) maddrs {
	l, _ := quicreuse.ToQuicMultiaddr(qc.LocalAddr(), quic.Version1)
	r, _ := quicreuse.ToQuicMultiaddr(qc.RemoteAddr(), quic.Version1)
	return maddrs{local: l, remote: r}
}

// Close stops accepting: new moq-lite handshakes fail, and connections whose
// handshake was already under way are closed on arrival. Established
// connections stay open (they close with the host). Calling it again does
// nothing.
//
// The moq-lite ALPNs stay registered on the host's sockets until the host
// closes, refusing. Removing them would race with handshakes in flight: when
// a connection completes for an ALPN no longer registered, quicreuse stops
// the whole shared listener, and the host silently stops accepting libp2p's
// QUIC connections too.
func (t *Transport) Close() error {
	t.mu.Lock()
	if t.closed {
		t.mu.Unlock()
		return nil
	}
	t.closed = true
	close(t.done)
	t.mu.Unlock()
	t.drainIncoming()
	return nil
}

// drainIncoming closes the connections nobody will accept.
func (t *Transport) drainIncoming() {
	for {
		select {
		case c := <-t.incoming:
			_ = c.qc.CloseWithError(codeClosed, "not accepting")
		default:
			return
		}
	}
}

// hostStopped runs when the host shuts down, after its swarm: it closes the
// moq-lite connections with a code (closing the sockets would drop them
// silently, leaving the peer to time out), then the ConnManager and finally
// the lent sockets, which the ConnManager has given back by then.
func (t *Transport) hostStopped(b *binding) error {
	t.mu.Lock()
	t.hostClosed = true
	conns := make([]*Conn, 0, len(t.conns))
	for c := range t.conns {
		conns = append(conns, c)
	}
	t.mu.Unlock()
	t.hostCancel()
	t.dialWG.Wait()
	var wg sync.WaitGroup
	for _, c := range conns {
		wg.Go(func() { _ = c.qc.CloseWithError(codeClosed, "host closing") })
	}
	wg.Wait()
	err := b.cm.Close()
	closeSockets(b.sockets)
	t.acceptWG.Wait() // the accept loops end with the sockets' listeners
	return err
}

// Conn is a moq-lite connection to an authenticated peer.
type Conn struct {
	transport.Conn
	qc   *quic.Conn
	peer peer.ID
}

// TryAcceptUniStream takes a uni stream the peer has already opened, if
// any, without waiting: the session accepts its group streams in batches
// with it (forwarded by hand, as Stats is: the connection does not Unwrap,
// so as not to offer the session rawquic's other optional interfaces).
func (c *Conn) TryAcceptUniStream() (transport.ReceiveStream, bool) {
	if ta, ok := c.Conn.(interface {
		TryAcceptUniStream() (transport.ReceiveStream, bool)
	}); ok {
		return ta.TryAcceptUniStream()
	}
	return nil, false
}

// OnClose implements transport.CloseHooker (forwarded by hand, as
// TryAcceptUniStream is).
func (c *Conn) OnClose(f func(cause error)) { transport.OnClose(c.Conn, f) }

// Stats reports the QUIC connection's counters (see transport.StatsConn).
func (c *Conn) Stats() transport.Stats {
	st := transport.Stats{}
	if sc, ok := c.Conn.(transport.StatsConn); ok {
		st = sc.Stats()
	}
	st.Transport = "p2pquic"
	return st
}

// RemotePeer is the peer at the other end, proven by its TLS certificate.
func (c *Conn) RemotePeer() peer.ID { return c.peer }
