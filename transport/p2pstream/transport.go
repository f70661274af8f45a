package p2pstream

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"

	"github.com/moqp2p/moqp2p/internal/wire"
	"github.com/moqp2p/moqp2p/transport"
)

// The libp2p protocol IDs, one per moq-lite version; multistream-select
// picks the version as the ALPN does on QUIC.
const (
	ProtocolLite05 protocol.ID = "/moq-lite/05"
	ProtocolLite04 protocol.ID = "/moq-lite/04"
	ProtocolLite03 protocol.ID = "/moq-lite/03"
)

// Protocols are the protocol IDs offered, most preferred first: lite-05
// as on QUIC (its streams carry no datagrams, so groups all go on streams).
var Protocols = []protocol.ID{ProtocolLite05, ProtocolLite04, ProtocolLite03}

// alpnOf names a protocol ID as the session package expects (the ALPN).
func alpnOf(p protocol.ID) string {
	switch p {
	case ProtocolLite05:
		return wire.ALPNLite05
	case ProtocolLite04:
		return wire.ALPNLite04
	case ProtocolLite03:
		return wire.ALPNLite03
	}
	return string(p)
}

const (
	// DefaultMaxPendingStreams is Config.MaxPendingStreams when zero.
	DefaultMaxPendingStreams = 1024
	// DefaultMaxSessionsPerPeer is Config.MaxSessionsPerPeer when zero.
	DefaultMaxSessionsPerPeer = 8
	// DefaultMaxStreamsPerSession is Config.MaxStreamsPerSession when zero.
	DefaultMaxStreamsPerSession = DefaultStreamsPerPeer
	// acceptBacklog is how many incoming sessions wait for Accept before
	// further dialers wait for their ACCEPT (back-pressure, never a drop).
	acceptBacklog = 16
	// headerTimeout bounds the wait for a new stream's header, so a peer
	// cannot hold handler goroutines with silent streams.
	headerTimeout = 10 * time.Second
)

// Config configures a Transport. The zero value is usable.
type Config struct {
	// Logger receives session events; nil means slog.Default().
	Logger *slog.Logger
	// MaxPendingStreams bounds, per session and per direction kind, the
	// streams that arrived but were not yet accepted. A stream beyond it is
	// reset with BoundsExceeded (11). Zero means DefaultMaxPendingStreams.
	// Each session allocates room for that many up front (2 × 8 bytes each:
	// 16 KiB per session by default).
	MaxPendingStreams int
	// MaxSessionsPerPeer bounds the sessions one remote peer has opened to
	// this host at once, both the accepted ones and those still waiting for
	// Accept (each of which holds a libp2p handler goroutine while the
	// accept queue is full). A control stream beyond it is answered with
	// CLOSE BoundsExceeded (11) instead of ACCEPT. Sessions this host
	// dialed are not counted. Zero means DefaultMaxSessionsPerPeer (8).
	// Worst case for one hostile peer: this many sessions, each holding a
	// control-reader goroutine (plus a handler goroutine while it waits),
	// about 20 KiB of its own, and up to MaxStreamsPerSession streams.
	MaxSessionsPerPeer int
	// MaxStreamsPerSession bounds the streams the peer has opened in one
	// session that are open at once (accepted or not yet); a stream beyond
	// it is reset with BoundsExceeded (11). libp2p's resource manager, with
	// Limits applied, also caps a peer's inbound streams of these protocols
	// at DefaultStreamsPerPeer across its sessions, and usually binds first;
	// this limit holds on hosts without it. Zero means
	// DefaultMaxStreamsPerSession (1024).
	MaxStreamsPerSession int
	// DeadPeerTimeout bounds how long the peer may stay silent: a libp2p
	// ping unanswered (pings go out every third of it, on one stream per
	// session) and nothing read on the session's streams for that long
	// ends the session with a cause matching ErrConnLost.
	// Zero means 3 s; negative sends no pings, leaving a vanished peer to
	// libp2p's connection keep-alives (tens of seconds).
	DeadPeerTimeout time.Duration
}

func (c Config) withDefaults() Config {
	def := func(v *int, d int) {
		if *v <= 0 {
			*v = d
		}
	}
	def(&c.MaxPendingStreams, DefaultMaxPendingStreams)
	def(&c.MaxSessionsPerPeer, DefaultMaxSessionsPerPeer)
	def(&c.MaxStreamsPerSession, DefaultMaxStreamsPerSession)
	return c
}

// Transport carries moq-lite sessions over libp2p streams of one host.
type Transport struct {
	h        host.Host
	cfg      Config
	log      *slog.Logger
	incoming chan *Conn
	done     chan struct{}
	once     sync.Once

	mu       sync.Mutex
	closed   bool
	sessions map[sessionKey]*Conn
	peers    map[peer.ID]*peerCount // sessions each remote peer opened to us
	wg       sync.WaitGroup         // one per registered session: its control reader
}

// peerCount is what one remote peer holds of a Transport.
type peerCount struct {
	sessions int // sessions it opened, still registered
	pending  int // of those, not yet returned by Accept
}

// New registers stream handlers for Protocols on h and returns the
// Transport that serves them. Only one Transport per host: a second one
// replaces the first one's handlers.
func New(h host.Host, cfg Config) *Transport {
	cfg = cfg.withDefaults()
	t := &Transport{
		h:        h,
		cfg:      cfg,
		log:      cfg.Logger,
		incoming: make(chan *Conn, acceptBacklog),
		done:     make(chan struct{}),
		sessions: map[sessionKey]*Conn{},
		peers:    map[peer.ID]*peerCount{},
	}
	if t.log == nil {
		t.log = slog.Default()
	}
	for _, p := range Protocols {
		h.SetStreamHandler(p, t.handle)
	}
	return t
}

// Accept returns the next incoming session. Sessions whose dialer gave up
// while they waited are skipped.
func (t *Transport) Accept(ctx context.Context) (*Conn, error) {
	for {
		select {
		case c := <-t.incoming:
			t.unpend(c)
			if c.ctx.Err() == nil {
				return c, nil
			}
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-t.done:
			return nil, ErrClosed
		}
	}
}

// Dial opens a session to p over the host's connection to it, connecting
// first if there is none (the peerstore must then hold p's addresses).
// Limited (relayed) connections are used too. It returns once the peer
// acknowledged the session, so the peer is ready for its streams.
func (t *Transport) Dial(ctx context.Context, p peer.ID) (*Conn, error) {
	if t.isClosed() {
		return nil, ErrClosed
	}
	s, err := t.h.NewStream(network.WithAllowLimitedConn(ctx, "moq"), p, Protocols...)
	if err != nil {
		return nil, err
	}
	c, err := t.register(s.Conn().RemotePeer(), 0, false, func(id uint64) *Conn { return newConn(t, s, id) })
	if err != nil {
		_ = s.ResetWithError(network.StreamErrorCode(codeCancel))
		return nil, err
	}
	// Cancelling ctx resets the control stream, which ends the wait below
	// and tells the listener we gave up.
	stop := context.AfterFunc(ctx, func() { _ = s.ResetWithError(network.StreamErrorCode(codeCancel)) })
	br := bufio.NewReaderSize(s, 64)
	err = c.handshake(br)
	if !stop() {
		err = ctx.Err()
	}
	if err != nil {
		if ce := (*transport.ConnError)(nil); errors.As(err, &ce) {
			c.shutdown(ce, ctlFinish) // the listener refused with CLOSE
		} else {
			c.shutdown(fmt.Errorf("%w: %w", ErrConnLost, err), ctlReset)
		}
		t.wg.Done() // no control reader will run
		return nil, err
	}
	c.ready.Store(true)
	go c.readControl(br)
	c.log.Debug("session dialed", "limited", c.Limited())
	return c, nil
}

// handshake writes the control stream header and waits for ACCEPT (or a
// CLOSE refusing the session).
func (c *Conn) handshake(br *bufio.Reader) error {
	if _, err := c.ctl.Write(appendHeader(nil, kindControl, c.key.id)); err != nil {
		return err
	}
	typ, err := wire.ReadVarint(br)
	if err != nil {
		return decodeErr(err, false)
	}
	switch typ {
	case msgAccept:
		return nil
	case msgClose:
		code, reason, err := readCloseBody(br)
		if err != nil {
			return err
		}
		return &transport.ConnError{Code: code, Reason: reason, Remote: true}
	}
	return fmt.Errorf("%w: control message type %d before ACCEPT", errDecode, typ)
}

// Close removes the stream handlers, ends Accept and closes every session
// still open with code 0 (they cannot receive streams without the
// handlers). It waits for the sessions' goroutines and is idempotent.
func (t *Transport) Close() error {
	t.once.Do(func() {
		for _, p := range Protocols {
			t.h.RemoveStreamHandler(p)
		}
		t.mu.Lock()
		t.closed = true
		sessions := slices.Collect(maps.Values(t.sessions))
		t.mu.Unlock()
		close(t.done)
		for _, c := range sessions {
			_ = c.CloseWithError(codeCancel, "transport closed")
		}
		t.wg.Wait()
	})
	return nil
}

func (t *Transport) isClosed() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.closed
}

// errDuplicate refuses a listener's session whose ID the peer already uses.
var errDuplicate = errors.New("p2pstream: duplicate session ID")

// errTooManySessions refuses a listener's session beyond the peer's limits.
var errTooManySessions = errors.New("p2pstream: too many sessions from this peer")

// register adds the session mk builds for peer p. A dialer passes id 0 to
// get a fresh random ID; a listener passes the dialer's and accepted, which
// counts the session against the peer's limits. Each registered session owes
// one t.wg.Done, from its control reader.
func (t *Transport) register(p peer.ID, id uint64, accepted bool, mk func(id uint64) *Conn) (*Conn, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		return nil, ErrClosed
	}
	if id == 0 {
		for id == 0 || t.sessions[sessionKey{p, id}] != nil {
			id = newSessionID()
		}
	} else if t.sessions[sessionKey{p, id}] != nil {
		return nil, errDuplicate
	}
	if accepted {
		pc := t.peers[p]
		if pc == nil {
			pc = &peerCount{}
			t.peers[p] = pc
		}
		if pc.sessions >= t.cfg.MaxSessionsPerPeer {
			return nil, fmt.Errorf("%w: %d open, %d of them waiting for Accept", errTooManySessions, pc.sessions, pc.pending)
		}
		pc.sessions++
		pc.pending++
	}
	c := mk(id)
	c.accepted, c.pending = accepted, accepted
	t.sessions[c.key] = c
	t.wg.Add(1)
	return c, nil
}

// unpend records that Accept took c off the queue.
func (t *Transport) unpend(c *Conn) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if c.pending {
		c.pending = false
		t.peers[c.key.peer].pending--
	}
}

func (t *Transport) lookup(k sessionKey) *Conn {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.sessions[k]
}

func (t *Transport) forget(c *Conn) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.sessions[c.key] != c {
		return
	}
	delete(t.sessions, c.key)
	if !c.accepted {
		return
	}
	pc := t.peers[c.key.peer]
	pc.sessions--
	if c.pending {
		c.pending = false
		pc.pending--
	}
	if pc.sessions == 0 {
		delete(t.peers, c.key.peer)
	}
}
