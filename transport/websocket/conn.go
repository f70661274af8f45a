package websocket

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"

	"github.com/moqp2p/moqp2p/internal/keepalive"
	"github.com/moqp2p/moqp2p/transport"
)

// closeGrace bounds how long a closing connection keeps writing: the
// message in flight and the close frame. A peer that stopped reading cannot
// hold a closing connection (or CloseWithError) longer than that plus
// coder/websocket's own close-handshake timeouts.
const closeGrace = 2 * time.Second

// defaultUrgency is RFC 9218's default, for streams nobody prioritised.
const defaultUrgency = 3

// Conn is one moq-lite connection over a WebSocket. It implements
// transport.Conn (and transport.StatsConn) and is safe for concurrent use.
type Conn struct {
	ws          *websocket.Conn
	framing     Framing
	app         string
	subprotocol string
	server      bool
	cfg         *config
	log         *slog.Logger
	local       net.Addr
	remote      net.Addr
	tcp         *net.TCPConn // under the WebSocket, if known: its ACKs are signs of life
	congestion  string       // the TCP congestion control in use, "" if unknown

	ctx     context.Context // done when the connection ends; the cause says why
	cancel  context.CancelCauseFunc
	wctx    context.Context // aborts a write stuck on a peer that stopped reading
	wcancel context.CancelFunc
	done    chan struct{} // closed when the read and write loops have returned
	running atomic.Int32  // loops not yet returned

	bytesSent, bytesReceived atomic.Uint64
	rtt                      rttStats // from pings answered (Ping, keep-alives)

	mu sync.Mutex // guards everything below, and all stream state
	// Closing: cause is set once; the writer then sends closeFrame (if
	// any) and closes the WebSocket with wsStatus.
	cause      error
	closeFrame *frame
	wsStatus   websocket.StatusCode
	wsReason   string
	abort      *time.Timer // fires wcancel closeGrace after the close began

	streams     map[uint64]*stream // streams not yet finished in both directions
	nextLocal   [2]uint64          // index of the next stream we open, [bidi, uni]
	localLive   [2]int             // streams we opened, not yet finished
	openSig     [2]notify          // stream credit arrived, or a local stream finished
	peerOpened  [2]uint64          // the peer has opened every index below this
	peerLive    [2]int             // peer streams not yet finished
	acceptQ     [2][]*stream       // peer streams not yet accepted
	acceptSig   [2]notify
	readLoop    notify // legacy: buffer space or a stream slot became free
	readPauses  int    // times the read loop waited for room (legacy)
	readWaiting bool   // it is waiting now

	// qmux-00 flow control (see flow.go); legacy uses only buffered.
	paramsSent      bool
	peerParams      *transportParams // nil until the peer's arrive
	sendMaxData     uint64           // the peer's MAX_DATA
	sentData        uint64           // stream bytes sent on all streams
	peerMaxStreams  [2]uint64        // the peer's MAX_STREAMS
	recvMaxData     uint64           // MAX_DATA we granted
	recvData        uint64           // stream bytes received on all streams
	recvConsumed    uint64           // of those, read by the app or discarded
	maxDataDirty    bool             // recvMaxData must be sent
	grantStreams    [2]uint64        // MAX_STREAMS we granted
	maxStreamsDirty [2]bool
	buffered        int // legacy: bytes held in receive buffers

	pongDue bool   // qmux-01+: a QX_PING request awaits its response
	pongSeq uint64 // the sequence number to echo

	finWriting *stream // the stream whose FIN is in the message being written

	sched  scheduler // streams with data to send, by urgency
	ctrlQ  []*stream // streams with control frames to send
	writer notify    // something to send, or closing
}

var (
	_ transport.Conn      = (*Conn)(nil)
	_ transport.StatsConn = (*Conn)(nil)
)

// newConn starts the read and write loops on an upgraded WebSocket.
// netConn, if not nil, is the connection under ws.
func newConn(ws *websocket.Conn, o offer, subprotocol string, server bool, cfg *config, local, remote net.Addr, netConn net.Conn) *Conn {
	ws.SetReadLimit(int64(cfg.MaxMessageSize))
	c := &Conn{
		ws:          ws,
		framing:     o.framing,
		app:         o.app,
		subprotocol: subprotocol,
		server:      server,
		cfg:         cfg,
		local:       local,
		remote:      remote,
		tcp:         tcpConnOf(netConn),
		done:        make(chan struct{}),
		streams:     map[uint64]*stream{},
	}
	side := "client"
	if server {
		side = "server"
	}
	c.log = cfg.log.With("transport", "websocket", "side", side, "remote", remote.String(),
		"framing", string(o.framing), "protocol", o.app)
	var err error
	if c.congestion, err = setCongestion(c.tcp, cfg.CongestionControl); err != nil {
		c.log.Debug("TCP congestion control not set", "want", cfg.CongestionControl, "in use", c.congestion, "err", err)
	}
	c.ctx, c.cancel = context.WithCancelCause(context.Background())
	c.wctx, c.wcancel = context.WithCancel(context.Background())
	c.sched.init()
	if c.qmux() {
		c.recvMaxData = uint64(cfg.ConnWindow)
		c.grantStreams = [2]uint64{uint64(cfg.MaxIncomingStreams), uint64(cfg.MaxIncomingUniStreams)}
	}
	c.running.Store(3)
	go c.readLoopRun()
	go c.writeLoopRun()
	go c.keepAliveRun()
	c.log.Debug("connection open")
	return c
}

// CongestionControl returns the TCP congestion control of the connection's
// socket (Config.CongestionControl, or the system's where that could not
// be set), or "" where it is not known: not Linux, or not over TCP.
func (c *Conn) CongestionControl() string { return c.congestion }

func (c *Conn) qmux() bool { return c.framing != FramingLegacy }

// records reports whether the framing is qmux-01 or later.
func (c *Conn) records() bool { return c.framing.records() }

// loopDone is called by each loop as it returns.
func (c *Conn) loopDone() {
	if c.running.Add(-1) == 0 {
		close(c.done)
	}
}

// OpenStream opens a bidirectional stream, waiting (with ctx) for the
// peer's stream credit on qmux-00, or on legacy until fewer than
// Config.MaxIncomingStreams of ours are unfinished.
func (c *Conn) OpenStream(ctx context.Context) (transport.Stream, error) {
	s, err := c.open(ctx, false)
	if err != nil {
		return nil, err
	}
	return &bidiStream{sendStream{s}, recvStream{s}}, nil
}

// OpenUniStream opens a unidirectional stream, waiting (with ctx) for the
// peer's stream credit on qmux-00, or on legacy until fewer than
// Config.MaxIncomingUniStreams of ours are unfinished.
func (c *Conn) OpenUniStream(ctx context.Context) (transport.SendStream, error) {
	s, err := c.open(ctx, true)
	if err != nil {
		return nil, err
	}
	return &sendStream{s}, nil
}

// AcceptStream waits for the peer's next bidirectional stream.
func (c *Conn) AcceptStream(ctx context.Context) (transport.Stream, error) {
	s, err := c.accept(ctx, false)
	if err != nil {
		return nil, err
	}
	return &bidiStream{sendStream{s}, recvStream{s}}, nil
}

// AcceptUniStream waits for the peer's next unidirectional stream.
func (c *Conn) AcceptUniStream(ctx context.Context) (transport.ReceiveStream, error) {
	s, err := c.accept(ctx, true)
	if err != nil {
		return nil, err
	}
	return &recvStream{s}, nil
}

// CloseWithError sends the close frame with the moq-lite code and reason
// (unmapped), closes the WebSocket and waits until both loops have
// returned. Data not yet sent is dropped, as on QUIC. Reasons longer than
// 1 KiB are cut on the wire. Closing a closed connection does nothing.
func (c *Conn) CloseWithError(code uint32, reason string) error {
	wireReason := reason
	if len(wireReason) > maxReasonLen {
		wireReason = wireReason[:maxReasonLen]
	}
	c.mu.Lock()
	c.terminateLocked(&transport.ConnError{Code: code, Reason: reason},
		&frame{kind: kindClose, code: uint64(code), reason: wireReason}, websocket.StatusNormalClosure, "")
	c.mu.Unlock()
	<-c.done
	return nil
}

// Context is done when the connection has ended. Its cause is a
// *transport.ConnError for a close frame from either side or a WebSocket
// close by the peer, an error matching ErrProtocol when the peer broke the
// framing rules, or one matching ErrConnLost.
func (c *Conn) Context() context.Context { return c.ctx }

// Protocol is the negotiated application protocol: the part of the
// subprotocol after "qmux-00." or "webtransport.", or "" when only a bare
// framing was negotiated (moq-lite then runs the compat SETUP).
func (c *Conn) Protocol() string { return c.app }

// Framing is the negotiated wire format.
func (c *Conn) Framing() Framing { return c.framing }

// Subprotocol is the Sec-WebSocket-Protocol value negotiated, or "" if the
// server answered without one.
func (c *Conn) Subprotocol() string { return c.subprotocol }

// LocalAddr is the local end of the underlying TCP connection.
func (c *Conn) LocalAddr() net.Addr { return c.local }

// RemoteAddr is the remote end of the underlying TCP connection, as seen
// by the HTTP server or client (a proxy's address behind a proxy).
func (c *Conn) RemoteAddr() net.Addr { return c.remote }

// Stats reports the WebSocket payload bytes sent and received; TCP hides
// the rest (RTT, congestion window, losses).
func (c *Conn) Stats() transport.Stats {
	st := transport.Stats{Transport: "websocket", BytesSent: c.bytesSent.Load(), BytesReceived: c.bytesReceived.Load()}
	st.RTT, st.MinRTT, st.LatestRTT, st.RTTVar = c.rtt.read()
	return st
}

// Ping sends a WebSocket ping and waits for the pong, or for ctx or the
// connection to end. A WebSocket carries messages in order and a peer
// answers a ping when its WebSocket layer reaches it, so the pong means
// the peer has taken in every message written before the ping (with
// stream Flushed: every frame of those streams). Browsers answer pings
// below the page, so there it says the data reached the browser.
func (c *Conn) Ping(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stop := context.AfterFunc(c.ctx, cancel)
	defer stop()
	start := time.Now()
	if err := c.ws.Ping(ctx); err != nil {
		if cause := context.Cause(c.ctx); cause != nil {
			return cause
		}
		return err
	}
	c.rtt.add(time.Since(start))
	return nil
}

// keepAliveRun pings the peer until the connection ends, and ends the
// connection when a ping goes unanswered for Config.DeadPeerTimeout. It
// counts as a loop, so CloseWithError waits for it.
func (c *Conn) keepAliveRun() {
	defer c.loopDone()
	ping := func(ctx context.Context) error {
		c.mu.Lock()
		before, waiting := c.readPauses, c.readWaiting
		c.mu.Unlock()
		err := c.Ping(ctx)
		c.mu.Lock()
		paused := waiting || c.readWaiting || c.readPauses != before
		c.mu.Unlock()
		if err != nil && paused && c.ctx.Err() == nil {
			// Our own read loop held the pong back (the legacy framing
			// stops reading while its buffers are full): the peer is not
			// to blame. (A pong queued behind the peer's own messages is
			// covered by keepalive.Run counting them as signs of life.)
			return nil
		}
		return err
	}
	// What the peer sent is a sign of life, and so is TCP's acknowledging
	// what we sent: a peer that only receives (a subscriber) answers our
	// pings late when they queue behind our own backlog in the kernel's
	// send buffer (on a lossy link it drains slowly), yet its TCP acks
	// that backlog all along (peerAcks counts acks only while there is
	// one). Bytes merely written to the socket would not do: the kernel's
	// buffer takes them from a partitioned peer too.
	heard := c.bytesReceived.Load
	if acks := peerAcks(c.tcp); acks != nil {
		heard = func() uint64 { return c.bytesReceived.Load() + acks() }
	}
	keepalive.Run(c.ctx, keepalive.Resolve(c.cfg.DeadPeerTimeout), ping, heard, func(err error) {
		c.log.Info("peer unresponsive: closing", "err", err)
		c.mu.Lock()
		c.terminateLocked(fmt.Errorf("%w: %w", ErrConnLost, err), nil, websocket.StatusGoingAway, "peer unresponsive")
		c.mu.Unlock()
	})
}

// terminateLocked starts closing the connection once: it records the
// cause, ends Context (waking every waiter) and hands closeFrame and the
// WebSocket status to the writer. Later calls change nothing.
func (c *Conn) terminateLocked(cause error, closeFrame *frame, status websocket.StatusCode, wsReason string) {
	if c.cause != nil {
		return
	}
	c.cause = cause
	for _, s := range c.streams {
		s.settleSendLocked() // nothing more will be sent
	}
	c.closeFrame = closeFrame
	c.wsStatus = status
	c.wsReason = wsReason
	c.cancel(cause)
	c.abort = time.AfterFunc(closeGrace, c.wcancel)
	c.writer.wake()
	c.log.Debug("connection closing", "cause", cause)
}

// open allocates the next stream ID of a kind, waiting for credit.
func (c *Conn) open(ctx context.Context, uni bool) (*stream, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	k := kindIndex(uni)
	c.mu.Lock()
	defer c.mu.Unlock()
	for {
		if c.cause != nil {
			return nil, c.cause
		}
		// qmux-00: the peer's credit. Legacy has none, so our own limit
		// bounds what a writer can queue while the peer reads slowly.
		if c.qmux() && c.nextLocal[k] < c.peerMaxStreams[k] ||
			!c.qmux() && c.localLive[k] < c.incomingLimit(k) {
			break
		}
		if err := c.waitLocked(&c.openSig[k], ctx); err != nil {
			return nil, err
		}
	}
	idx := c.nextLocal[k]
	c.nextLocal[k]++
	c.localLive[k]++
	s := c.newStreamLocked(streamID(idx, c.server, uni))
	return s, nil
}

func (c *Conn) accept(ctx context.Context, uni bool) (*stream, error) {
	k := kindIndex(uni)
	c.mu.Lock()
	defer c.mu.Unlock()
	for {
		if c.cause != nil {
			return nil, c.cause
		}
		if q := c.acceptQ[k]; len(q) > 0 {
			s := q[0]
			q[0] = nil
			c.acceptQ[k] = q[1:]
			s.accepted = true
			c.maybeDoneLocked(s)
			return s, nil
		}
		if err := c.waitLocked(&c.acceptSig[k], ctx); err != nil {
			return nil, err
		}
	}
}

// waitLocked releases the lock until n wakes, the connection ends or ctx
// (which may be nil) is done; it returns ctx's error in the last case.
// Callers re-check their condition and c.cause afterwards.
func (c *Conn) waitLocked(n *notify, ctx context.Context) error {
	ch := n.wait()
	var ctxDone <-chan struct{}
	if ctx != nil {
		ctxDone = ctx.Done()
	}
	c.mu.Unlock()
	var err error
	select {
	case <-ch:
	case <-c.ctx.Done():
	case <-ctxDone:
		err = ctx.Err()
	}
	c.mu.Lock()
	return err
}

// Stream IDs follow QUIC: bit 0 set = server-initiated, bit 1 set =
// unidirectional, the index in the bits above.
func streamID(idx uint64, server, uni bool) uint64 {
	id := idx << 2
	if server {
		id |= 1
	}
	if uni {
		id |= 2
	}
	return id
}

func isUni(id uint64) bool { return id&2 != 0 }

// kindIndex indexes the per-kind arrays: 0 bidirectional, 1 unidirectional.
func kindIndex(uni bool) int {
	if uni {
		return 1
	}
	return 0
}

// isLocal reports whether we opened (or may open) the stream id.
func (c *Conn) isLocal(id uint64) bool { return (id&1 != 0) == c.server }

// incomingLimit is the configured bound on the peer's streams of kind k.
func (c *Conn) incomingLimit(k int) int {
	if k == 0 {
		return c.cfg.MaxIncomingStreams
	}
	return c.cfg.MaxIncomingUniStreams
}
