package moq

import (
	"context"
	"errors"
	"fmt"
	"iter"
	"slices"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/moqp2p/moqp2p/actor"
	"github.com/moqp2p/moqp2p/broadcast"
	"github.com/moqp2p/moqp2p/transport"
)

// LinkState is where a kept link (Moq.Keep) stands.
type LinkState int

// The states of a kept link, in the order a link usually goes through them.
const (
	// LinkConnecting: the first session is being dialed.
	LinkConnecting LinkState = iota
	// LinkConnected: a session is up (LinkChange.Session).
	LinkConnected
	// LinkReconnecting: the session was lost; redialing with backoff.
	LinkReconnecting
	// LinkDetached: Detach was called, or the node shut down; final.
	LinkDetached
)

func (s LinkState) String() string {
	switch s {
	case LinkConnecting:
		return "connecting"
	case LinkConnected:
		return "connected"
	case LinkReconnecting:
		return "reconnecting"
	case LinkDetached:
		return "detached"
	}
	return fmt.Sprintf("LinkState(%d)", int(s))
}

// LinkChange is a kept link entering a state.
type LinkChange struct {
	State LinkState
	// Session is the live session in LinkConnected, else nil.
	Session *Session
	// Err says why the previous session ended (LinkReconnecting) or why
	// the last attempt failed, when known. Every failed attempt is
	// reported so: the link's current state (LinkConnecting or
	// LinkReconnecting) again, with the attempt's error.
	Err error
	At  time.Time
}

// KeepOptions tune how a kept link redials. Zero fields take the defaults
// named.
type KeepOptions struct {
	// MinBackoff is the pause before the second attempt (100 ms); pauses
	// double up to MaxBackoff (500 ms). Attempts overlap: a new one starts
	// after each pause while earlier ones still run, at most MaxAttempts
	// (4) at once (the oldest is given up for the new one), so an attempt
	// stuck in a handshake that began during a partition, whose
	// retransmissions QUIC spaces out more and more, does not delay the
	// first one that can succeed once it heals: that takes at most
	// MaxBackoff plus a handshake.
	MinBackoff, MaxBackoff time.Duration
	MaxAttempts            int
	// AttemptTimeout bounds one dial (5 s).
	AttemptTimeout time.Duration
	// Open applies to every session a KeepOpen link opens (ignored by Keep).
	Open OpenOptions
}

// Dialer dials a server without a libp2p identity, for a session the node
// opens over the connection (as Open does): rawquic.Dial for moql://,
// webtransport.Dial or websocket.Dial (wrapped: it returns its own type).
// A kept link or a resilient track calls it again after every loss, so it
// must dial afresh each time, within ctx.
type Dialer func(ctx context.Context) (transport.Conn, error)

func (o KeepOptions) withDefaults() KeepOptions {
	def := func(v *time.Duration, d time.Duration) {
		if *v <= 0 {
			*v = d
		}
	}
	def(&o.MinBackoff, 100*time.Millisecond)
	def(&o.MaxBackoff, 500*time.Millisecond)
	def(&o.AttemptTimeout, 5*time.Second)
	if o.MaxAttempts <= 0 {
		o.MaxAttempts = 4
	}
	return o
}

// Link keeps a session to one peer (Keep), or to one server without a
// libp2p identity (KeepOpen): it dials, and redials with backoff whenever
// the session is lost (the peer closed it, went away or stopped answering:
// see WithDeadPeerTimeout), until Detach or Shutdown. Every publication
// reaches the peer over whichever session is up, as with Connect (or
// Open). Its methods are safe for concurrent use.
type Link struct {
	m      *Moq
	addr   peer.AddrInfo
	dial   Dialer // KeepOpen's; nil for a peer
	opts   KeepOptions
	ctx    context.Context
	cancel context.CancelFunc
	done   chan struct{}
	feed   *eventLog[LinkChange]
}

// Keep starts keeping a session to addr (its addresses are re-added to the
// peerstore at every attempt, so they do not expire during a long outage)
// and returns at once; follow it with Link.Changes. A session to the peer
// that exists already (either side opened it) counts as connected.
func (m *Moq) Keep(addr peer.AddrInfo, opts KeepOptions) *Link {
	return m.keep(&Link{addr: addr}, opts)
}

// KeepOpen keeps a session to the server that dial reaches (moql://,
// WebTransport or WebSocket), as Keep does for a peer: it calls dial, opens
// the session over the connection as OpenWith does (with opts.Open), and
// dials again with backoff whenever the session is lost, until Detach or
// Shutdown. It returns at once; follow it with Link.Changes. Its sessions
// have no peer ID (Link.Peer is empty), and a session to the server opened
// otherwise is not this link's.
func (m *Moq) KeepOpen(dial Dialer, opts KeepOptions) *Link {
	return m.keep(&Link{dial: dial}, opts)
}

func (m *Moq) keep(l *Link, opts KeepOptions) *Link {
	l.m, l.opts, l.done, l.feed = m, opts.withDefaults(), make(chan struct{}), newEventLog[LinkChange]()
	l.ctx, l.cancel = context.WithCancel(m.ctx)
	l.set(LinkChange{State: LinkConnecting})
	m.mu.Lock()
	if m.ctx.Err() != nil {
		m.mu.Unlock()
		l.cancel()
		l.set(LinkChange{State: LinkDetached, Err: ErrShutdown})
		l.feed.close()
		close(l.done)
		return l
	}
	m.wg.Go(l.run)
	m.mu.Unlock()
	return l
}

// Peer is the peer the link keeps a session to (empty for KeepOpen's).
func (l *Link) Peer() peer.ID { return l.addr.ID }

// State is the link's current state.
func (l *Link) State() LinkChange {
	c, _ := l.feed.last()
	return c
}

// Changes yields the link's current state, then every change, until the
// link is detached (LinkDetached is the last value) or ctx ends. A loop
// that falls far behind skips to the 64 latest changes.
func (l *Link) Changes(ctx context.Context) iter.Seq[LinkChange] { return l.feed.seq(ctx, true) }

// Session waits for the link's session, up to ctx; after Detach it
// returns ErrDetached.
func (l *Link) Session(ctx context.Context) (*Session, error) {
	for c := range l.Changes(ctx) {
		if c.State == LinkConnected && c.Session.Err() == nil {
			return c.Session, nil
		}
		if c.State == LinkDetached {
			return nil, ErrDetached
		}
	}
	return nil, ctx.Err()
}

// ErrDetached is returned by a Link's Session after Detach.
var ErrDetached = errors.New("moq: link detached")

// Detach stops keeping the link and waits for its goroutines; the session
// up at that moment stays open (close it, or let the peer, to end it).
func (l *Link) Detach() {
	l.cancel()
	<-l.done
}

func (l *Link) set(c LinkChange) {
	c.At = time.Now()
	l.feed.push(c)
}

func (l *Link) run() {
	defer close(l.done)
	defer l.feed.close()
	state := LinkConnecting
	var hold time.Duration // before redialing a session that ended at once
	for {
		s, err := l.connect(state)
		if err != nil { // detached or shut down
			l.set(LinkChange{State: LinkDetached, Err: err})
			return
		}
		up := time.Now()
		l.set(LinkChange{State: LinkConnected, Session: s})
		select {
		case <-s.Closed():
			state = LinkReconnecting
			l.set(LinkChange{State: state, Err: s.Err()})
		case <-l.ctx.Done():
			l.set(LinkChange{State: LinkDetached})
			return
		}
		// A peer that takes the session and ends it at once (it refuses
		// us, or is restarting) would otherwise be redialed as fast as
		// handshakes go: such sessions back off as failed dials do, and
		// one that lasted a while (2 × MaxBackoff) resets the pause.
		if time.Since(up) >= 2*l.opts.MaxBackoff {
			hold = 0
			continue
		}
		hold = min(max(2*hold, l.opts.MinBackoff), l.opts.MaxBackoff)
		select {
		case <-time.After(hold):
		case <-l.ctx.Done():
			l.set(LinkChange{State: LinkDetached})
			return
		}
	}
}

// connect returns a live session to the peer: one that exists, or the
// first of overlapping dials to succeed, until the link's context ends.
// Each failed attempt is reported as state again, with its error.
func (l *Link) connect(state LinkState) (*Session, error) {
	ctx, cancel := context.WithCancel(l.ctx)
	type result struct {
		id  int
		c   actor.Conn
		err error
	}
	type attempt struct {
		id   int
		stop context.CancelFunc
	}
	// Room for every attempt running plus one that was told to stop and
	// has not reported yet.
	results := make(chan result, 2*l.opts.MaxAttempts+1)
	running := 0
	var stops []attempt // the attempts running, oldest first
	ids := 0
	defer func() {
		cancel()
		for ; running > 0; running-- {
			if r := <-results; r.c != nil {
				_ = r.c.CloseWithError(0, "superseded")
			}
		}
	}()
	backoff := l.opts.MinBackoff
	pause := time.NewTimer(0)
	defer pause.Stop()
	var last error
	for {
		if l.dial == nil {
			// The oldest, as Connect hands out: the link then watches this very one.
			if s := l.m.liveSession(l.addr.ID); s != nil {
				return s, nil
			}
		}
		select {
		case <-pause.C:
			if len(stops) >= l.opts.MaxAttempts {
				// The oldest attempt's handshake backs off the longest
				// (QUIC doubles its retransmission timer): replace it.
				stops[0].stop()
				stops = stops[1:]
			}
			running++
			ids++
			id := ids
			actx, acancel := context.WithTimeout(ctx, l.opts.AttemptTimeout)
			stops = append(stops, attempt{id, acancel})
			go func() {
				defer acancel()
				c, err := l.attempt(actx)
				results <- result{id, c, err}
			}()
			pause.Reset(backoff)
			backoff = min(2*backoff, l.opts.MaxBackoff)
		case r := <-results:
			running--
			n := len(stops)
			stops = slices.DeleteFunc(stops, func(a attempt) bool { return a.id == r.id })
			if r.err != nil {
				// One given up for a newer attempt did not fail: not reported.
				if len(stops) < n && l.ctx.Err() == nil {
					last = r.err
					l.set(LinkChange{State: state, Err: r.err})
				}
				continue
			}
			s, err := l.register(ctx, r.c)
			if err != nil {
				if errors.Is(err, actor.ErrTooManySessions) {
					continue // a session exists after all: liveSession finds it
				}
				last = err
				if l.ctx.Err() == nil {
					l.set(LinkChange{State: state, Err: err})
				}
				continue
			}
			return &Session{s: s, m: l.m}, nil
		case <-l.ctx.Done():
			if last == nil {
				last = context.Cause(l.ctx)
			}
			if l.dial != nil {
				return nil, fmt.Errorf("moq: kept link to a server: %w", last)
			}
			return nil, fmt.Errorf("moq: link to %s: %w", l.addr.ID, last)
		}
	}
}

// attempt dials once: the peer, or the server through the link's Dialer.
func (l *Link) attempt(ctx context.Context) (actor.Conn, error) {
	if l.dial == nil {
		return l.m.redialPeer(ctx, l.addr)
	}
	c, err := l.dial(ctx)
	if err != nil {
		return nil, err
	}
	return anonConn{c}, nil
}

// register makes a dialed connection one of the node's sessions.
func (l *Link) register(ctx context.Context, c actor.Conn) (*actor.Session, error) {
	if l.dial == nil {
		return l.m.a.Register(ctx, c, true)
	}
	s, err := l.m.a.RegisterWith(ctx, c, actor.RegisterOptions{Dialed: true, Client: true, Cost: l.opts.Open.Cost})
	if err != nil {
		_ = c.CloseWithError(uint32(broadcast.CodeCancel), "no session")
	}
	return s, err
}

// liveSession returns the oldest live session with p, or nil.
func (m *Moq) liveSession(p peer.ID) *Session {
	list, err := m.a.Sessions(m.ctx)
	if err != nil {
		return nil
	}
	for _, s := range list {
		if s.RemotePeer() == p && s.Context().Err() == nil {
			return &Session{s: s, m: m}
		}
	}
	return nil
}

// redialPeer dials p for a redial: like the actor's dial, but ignoring
// libp2p's dial backoff (the previous attempts failed during the outage
// being recovered from) and bounded by ctx alone.
func (m *Moq) redialPeer(ctx context.Context, addr peer.AddrInfo) (actor.Conn, error) {
	ctx = network.WithForceDirectDial(ctx, "moq: redial")
	c, err := m.dial(ctx, addr)
	if err != nil {
		return nil, err
	}
	if c.RemotePeer() != addr.ID {
		_ = c.CloseWithError(0, "unexpected peer")
		return nil, fmt.Errorf("moq: dialed %s but reached %s", addr.ID, c.RemotePeer())
	}
	return c, nil
}
