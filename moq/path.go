package moq

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/event"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/moqp2p/moqp2p/transport/p2pquic"
	"github.com/moqp2p/moqp2p/transport/p2pstream"
)

// PathKind is how a session's packets travel between the peers.
type PathKind uint8

const (
	// PathUnknown: not a libp2p session (a server.Server's client).
	PathUnknown PathKind = iota
	// PathDirect: straight between the peers' addresses.
	PathDirect
	// PathHolePunched: direct, on a path DCUtR hole punching opened
	// through the peers' NATs.
	PathHolePunched
	// PathRelayed: through a circuit relay node.
	PathRelayed
)

func (k PathKind) String() string {
	switch k {
	case PathDirect:
		return "direct"
	case PathHolePunched:
		return "hole-punched"
	case PathRelayed:
		return "relayed"
	default:
		return "unknown"
	}
}

// Path describes the path a session runs on, and why.
type Path struct {
	Kind PathKind
	// Transport is "raw QUIC" or "libp2p streams" (or the server's
	// transport for PathUnknown).
	Transport string
	// Limited is true for a circuit the relay cuts after its time or data
	// limit (go-libp2p's default: 2 minutes or 128 KiB each way): fine for
	// the hole-punching handshake, not for media. Sessions on such circuits
	// move to a direct path when one appears (see Session.Subscribe).
	Limited bool
	// Reason says why the session is on this path.
	Reason string
}

func (p Path) String() string { return p.Kind.String() + " (" + p.Reason + ")" }

// Path reports the path the session runs on, and why.
func (s *Session) Path() Path {
	switch c := s.s.Conn().(type) {
	case *p2pquic.Conn:
		p := Path{Kind: PathDirect, Transport: "raw QUIC", Reason: "raw QUIC on a direct connection"}
		if ev, ok := s.m.paths.punch(s.RemotePeer()); ok && ev.Success && !ev.Direct {
			p.Kind = PathHolePunched
			p.Reason = fmt.Sprintf("raw QUIC on the host's socket, through the NAT mapping DCUtR hole punching opened in %s", ev.Elapsed.Round(time.Millisecond))
		}
		return p
	case *p2pstream.Conn:
		p := Path{Kind: PathDirect, Transport: "libp2p streams", Limited: c.Limited(),
			Reason: "libp2p streams on a direct connection (no direct QUIC path)"}
		if !strings.Contains(c.RemoteAddr().String(), "/p2p-circuit") {
			return p
		}
		p.Kind = PathRelayed
		if p.Limited {
			p.Reason = "libp2p streams through a limited circuit relay"
		} else {
			p.Reason = "libp2p streams through an unlimited circuit relay"
		}
		p.Reason += "; " + s.m.punchStory(s.RemotePeer())
		return p
	default:
		return Path{Kind: PathUnknown, Transport: fmt.Sprintf("%T", c), Reason: "a client without a libp2p identity"}
	}
}

// punchStory says what hole punching with p did, for a relayed session's
// Path.Reason.
func (m *Moq) punchStory(p peer.ID) string {
	if !m.holePunches() {
		return "this node does not hole-punch (HostConfig.NAT.HolePunching is off)"
	}
	st, ok := m.paths.state(p)
	switch {
	case !ok:
		return "no hole punching attempt seen yet"
	case st.pending:
		return fmt.Sprintf("hole punching under way (attempt %d)", st.attempts)
	case st.last.Success && st.last.Direct:
		return "a direct dial succeeded (the session moves to the direct path)"
	case st.last.Success:
		return fmt.Sprintf("hole punching opened a direct path in %s (the session moves to it)", st.last.Elapsed.Round(time.Millisecond))
	case st.attempts == 0:
		return "hole punching failed before any attempt: " + st.last.Error
	default:
		return fmt.Sprintf("hole punching attempted %d times and failed: %s", st.attempts, st.last.Error)
	}
}

// maxPunchRecords bounds the hole-punching histories a node remembers
// (one per peer, about 150 bytes each); past it the oldest is forgotten.
const maxPunchRecords = 1024

// punchState is what a node heard of its hole punching with one peer.
type punchState struct {
	last     HolePunchEvent // the last outcome (not a start)
	ended    bool           // last is set
	attempts int            // attempts started
	pending  bool           // the last attempt started has not ended yet
	heard    time.Time      // the last event of any kind, start included
	seen     [8]uint64      // the latest events' seq, so none counts twice
	next     int            // where seen takes the next
}

// pathWatch follows the host's hole-punching outcomes and its peers'
// connectedness: what explains a session's path, and what starts moving a
// relayed session onto a direct one.
type pathWatch struct {
	mu    sync.Mutex
	peers map[peer.ID]*punchState
	order []peer.ID // oldest first, for eviction
}

// heardLately reports whether p's punching made any event within d.
func (w *pathWatch) heardLately(p peer.ID, d time.Duration) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	st, ok := w.peers[p]
	return ok && time.Since(st.heard) < d
}

// punch returns the last outcome of punching with p.
func (w *pathWatch) punch(p peer.ID) (HolePunchEvent, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	st, ok := w.peers[p]
	if !ok || !st.ended {
		return HolePunchEvent{}, false
	}
	return st.last, true
}

// state returns a copy of what was heard of punching with p.
func (w *pathWatch) state(p peer.ID) (punchState, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	st, ok := w.peers[p]
	if !ok {
		return punchState{}, false
	}
	return *st, true
}

// record keeps ev: a start counts an attempt, anything else is an
// outcome.
func (w *pathWatch) record(ev HolePunchEvent) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.peers == nil {
		w.peers = map[peer.ID]*punchState{}
	}
	st, ok := w.peers[ev.Peer]
	if !ok {
		st = &punchState{}
		w.peers[ev.Peer] = st
		w.order = append(w.order, ev.Peer)
		if len(w.order) > maxPunchRecords {
			delete(w.peers, w.order[0])
			w.order = w.order[1:]
		}
	}
	if ev.seq != 0 {
		if slices.Contains(st.seen[:], ev.seq) {
			return // already recorded (by awaitDirect, or the watcher)
		}
		st.seen[st.next] = ev.seq
		st.next = (st.next + 1) % len(st.seen)
	}
	st.heard = time.Now()
	if ev.Started {
		st.attempts++
		st.pending = true
		return
	}
	st.last, st.ended, st.pending = ev, true, false
}

// watchPaths runs until the node shuts down: it records hole-punching
// outcomes and, when a peer's connectedness becomes Connected (a direct
// connection next to a relayed one), hands the peer to upgrade.
func (m *Moq) watchPaths(sub event.Subscription) {
	defer sub.Close()
	for {
		select {
		case <-m.ctx.Done():
			return
		case e, ok := <-sub.Out():
			if !ok {
				return
			}
			switch ev := e.(type) {
			case HolePunchEvent:
				m.paths.record(ev)
				switch {
				case ev.Started:
					m.log.Debug("hole punching started", "peer", ev.Peer)
				case ev.Success:
					m.log.Debug("hole punching succeeded", "peer", ev.Peer, "direct_dial", ev.Direct, "elapsed", ev.Elapsed)
				default:
					m.log.Debug("hole punching failed", "peer", ev.Peer, "elapsed", ev.Elapsed, "err", ev.Error)
				}
			case event.EvtPeerConnectednessChanged:
				if ev.Connectedness == network.Connected {
					m.upgradeLater(ev.Peer)
				}
			}
		}
	}
}

// startPathWatch subscribes to the host's events; New calls it.
func (m *Moq) startPathWatch() error {
	sub, err := m.h.EventBus().Subscribe([]any{new(HolePunchEvent), new(event.EvtPeerConnectednessChanged)})
	if err != nil {
		return err
	}
	m.wg.Go(func() { m.watchPaths(sub) })
	return nil
}

// holePunches reports whether the host runs DCUtR (a NewHost host with
// HostConfig.NAT.HolePunching), as New found.
func (m *Moq) holePunches() bool { return m.punching }

// hasDirect reports whether the host has an unlimited, unrelayed QUIC
// connection to p.
func (m *Moq) hasDirect(p peer.ID) bool {
	return slices.ContainsFunc(m.h.Network().ConnsToPeer(p), directQUIC)
}

// directQUIC reports whether c is an unlimited, unrelayed QUIC connection:
// one whose address raw QUIC can dial (a circuit's is the relay's, whose
// identity is not the peer's).
func directQUIC(c network.Conn) bool {
	return !c.Stat().Limited && isQUIC(c.RemoteMultiaddr()) && !isCircuit(c)
}

func isCircuit(c network.Conn) bool {
	return strings.Contains(c.RemoteMultiaddr().String(), "/p2p-circuit")
}

// awaitDirect gives hole punching a chance before a session settles on a
// relayed connection: when the host runs DCUtR and has only relayed
// connections to p, it waits up to the node's hole-punch wait for a direct
// one (the peer starts punching as soon as our relayed connection reaches
// it). It returns at once otherwise.
func (m *Moq) awaitDirect(ctx context.Context, p peer.ID) {
	if m.quic == nil || m.punchWait <= 0 || m.hasDirect(p) || !m.holePunches() {
		return
	}
	sub, err := m.h.EventBus().Subscribe([]any{new(HolePunchEvent), new(event.EvtPeerConnectednessChanged)})
	if err != nil {
		return
	}
	defer sub.Close()
	t := time.NewTimer(m.punchWait)
	defer t.Stop()
	kick := time.NewTimer(min(punchKickAfter, m.punchWait/2))
	defer kick.Stop()
	heard := false // of a punching attempt with p
	for !m.hasDirect(p) {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			m.log.Debug("no direct path yet; the session starts relayed", "peer", p)
			return
		case <-kick.C:
			// Not while an attempt may still run (one from an earlier
			// connection: go-libp2p runs one per peer at a time).
			if !heard && !m.paths.heardLately(p, punchBusy) {
				m.redialRelayed(ctx, p)
			}
		case e := <-sub.Out():
			// go-libp2p reports each of its attempts; the timer ends the
			// wait if none succeeds.
			if ev, ok := e.(HolePunchEvent); ok && ev.Peer == p {
				heard = true
				m.paths.record(ev)
			}
		}
	}
	// The direct connection appeared while only relayed ones existed: hole
	// punching made it, and reports so just after. Record that report
	// before the session asks for its path (the node's own watcher may
	// see it later).
	if ev, ok := m.paths.punch(p); ok && ev.Success {
		return
	}
	settle := time.NewTimer(punchReportWait)
	defer settle.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-settle.C:
			return
		case e := <-sub.Out():
			if ev, ok := e.(HolePunchEvent); ok && ev.Peer == p && ev.Success && !ev.Started {
				m.paths.record(ev)
				return
			}
		}
	}
}

// punchBusy is how long after an event of a peer's punching another
// attempt may still be running (go-libp2p: 3 attempts of up to its direct
// dial timeout, 5 s by default).
const punchBusy = 20 * time.Second

// punchKickAfter is how long awaitDirect waits for the peer to start
// punching before it makes the relayed connection again (once).
const punchKickAfter = time.Second

// redialRelayed closes the relayed connections to p and makes one anew.
// The peer punches when a relayed connection reaches it, but only if its
// punching service already runs, which go-libp2p starts once a peer told
// the host a public address of its own: a connection that arrived just
// before that is never punched, a new one is.
func (m *Moq) redialRelayed(ctx context.Context, p peer.ID) {
	closed := false
	for _, c := range m.h.Network().ConnsToPeer(p) {
		if isCircuit(c) {
			_ = c.Close()
			closed = true
		}
	}
	if !closed {
		return
	}
	m.log.Debug("no hole punching yet; making the relayed connection again", "peer", p)
	if err := m.h.Connect(ctx, peer.AddrInfo{ID: p}); err != nil {
		m.log.Debug("making the relayed connection again failed", "peer", p, "err", err)
	}
}

// punchReportWait bounds how long a dial waits for hole punching's report
// on a direct connection that appeared during awaitDirect.
const punchReportWait = time.Second
