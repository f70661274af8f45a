package p2pstream

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
	msmux "github.com/multiformats/go-multistream"

	"github.com/moqp2p/moqp2p/internal/wire"
	"github.com/moqp2p/moqp2p/transport"
)

const (
	// ctlWriteTimeout bounds writing ACCEPT or CLOSE, so closing never hangs
	// on a connection that stopped moving.
	ctlWriteTimeout = 2 * time.Second
	// goneGrace is how long a stream reset because its session ended waits
	// for the session's CLOSE, which travels on another stream, so that the
	// caller sees the peer's close code rather than a bare reset.
	goneGrace = 2 * time.Second
	// maxOpenBackoff caps the wait between attempts to open a stream while
	// the resource manager refuses (the analogue of waiting for QUIC stream
	// credit).
	maxOpenBackoff = 50 * time.Millisecond
)

// sessionKey identifies a session: its peer and the dialer's random ID.
type sessionKey struct {
	peer peer.ID
	id   uint64
}

// Conn is one moq-lite session with a peer over libp2p streams. It
// implements transport.Conn. All its streams run on the libp2p connection
// that carries its control stream.
type Conn struct {
	t     *Transport
	key   sessionKey
	proto protocol.ID
	lconn network.Conn
	ctl   network.Stream
	log   *slog.Logger

	ctx    context.Context // done when the session ends; the cause says why
	cancel context.CancelCauseFunc

	bidi chan *stream // arrived, not yet accepted
	uni  chan *stream

	// received counts the bytes read on the session's streams: the
	// keep-alive takes them as signs of life (its pong may queue behind
	// them on a TCP connection).
	received atomic.Uint64

	ctlMu sync.Mutex // serialises writes on the control stream
	// ready is set once the handshake is over (at once for the listener).
	// Before that a dialer's control stream may be inside multistream-select,
	// whose Close would wait for the negotiation: it is reset instead.
	ready atomic.Bool

	// accepted: the peer opened this session; pending: it waits for Accept.
	// Both are guarded by the Transport's mu.
	accepted, pending bool

	mu      sync.Mutex
	closed  bool
	streams map[*stream]struct{} // live streams, reset when the session ends
	inbound int                  // of those, opened by the peer
}

func newConn(t *Transport, ctl network.Stream, id uint64) *Conn {
	c := &Conn{
		t:       t,
		key:     sessionKey{peer: ctl.Conn().RemotePeer(), id: id},
		proto:   ctl.Protocol(),
		lconn:   ctl.Conn(),
		ctl:     ctl,
		bidi:    make(chan *stream, t.cfg.MaxPendingStreams),
		uni:     make(chan *stream, t.cfg.MaxPendingStreams),
		streams: map[*stream]struct{}{},
	}
	c.log = t.log.With("peer", c.key.peer.String(), "session", id, "protocol", string(c.proto))
	c.ctx, c.cancel = context.WithCancelCause(context.Background())
	return c
}

// RemotePeer is the authenticated peer at the other end.
func (c *Conn) RemotePeer() peer.ID { return c.key.peer }

// Limited reports whether the session runs over a limited connection, in
// practice a circuit relay v2 connection whose relay caps time and bytes.
func (c *Conn) Limited() bool { return c.lconn.Stat().Limited }

// Context is done when the session ends. Its cause is a
// *transport.ConnError when either side closed it with a code, or wraps
// ErrConnLost when the peer or the connection went away.
func (c *Conn) Context() context.Context { return c.ctx }

// Protocol is the negotiated moq-lite version as an ALPN string,
// "moq-lite-05", "moq-lite-04" or "moq-lite-03".
func (c *Conn) Protocol() string { return alpnOf(c.proto) }

// LocalAddr is the local end of the libp2p connection.
func (c *Conn) LocalAddr() net.Addr { return addr{c.lconn.LocalMultiaddr(), c.lconn.LocalPeer()} }

// RemoteAddr is the remote end of the libp2p connection; over a relay, the
// circuit address.
func (c *Conn) RemoteAddr() net.Addr {
	return addr{c.lconn.RemoteMultiaddr(), c.key.peer}
}

// OpenStream opens a bidirectional stream.
func (c *Conn) OpenStream(ctx context.Context) (transport.Stream, error) {
	st, err := c.open(ctx, kindBidi)
	if err != nil {
		return nil, err
	}
	return st, nil
}

// OpenUniStream opens a stream that only sends.
func (c *Conn) OpenUniStream(ctx context.Context) (transport.SendStream, error) {
	st, err := c.open(ctx, kindUni)
	if err != nil {
		return nil, err
	}
	return st, nil
}

// AcceptStream waits for the peer's next bidirectional stream.
func (c *Conn) AcceptStream(ctx context.Context) (transport.Stream, error) {
	st, err := c.accept(ctx, c.bidi)
	if err != nil {
		return nil, err
	}
	return st, nil
}

// AcceptUniStream waits for the peer's next unidirectional stream.
func (c *Conn) AcceptUniStream(ctx context.Context) (transport.ReceiveStream, error) {
	st, err := c.accept(ctx, c.uni)
	if err != nil {
		return nil, err
	}
	return st, nil
}

// CloseWithError ends the session: CLOSE{code, reason} and FIN on the
// control stream, then every stream of the session is reset. It does not
// close the libp2p connection, which other protocols may share.
func (c *Conn) CloseWithError(code uint32, reason string) error {
	c.shutdown(&transport.ConnError{Code: code, Reason: reason}, ctlSendClose)
	return nil
}

func (c *Conn) open(ctx context.Context, kind uint64) (*stream, error) {
	s, err := c.newLibp2pStream(ctx)
	if err != nil {
		return nil, err
	}
	if kind == kindUni {
		// Only our direction is used; closing the other now also ends the
		// multistream-select reader goroutine the lazy handshake starts.
		_ = s.CloseRead()
	}
	// Lazy multistream-select: the protocol header goes out with our header
	// in one write, and the peer's echo is read before our first read.
	rw := msmux.NewMSSelect(s, c.proto)
	st := newStream(c, s, rw)
	st.readDone = kind == kindUni
	if !c.track(st) {
		_ = s.ResetWithError(codeSessionGone)
		return nil, c.cause()
	}
	var hdr [18]byte
	if _, err := rw.Write(appendHeader(hdr[:0], kind, c.key.id)); err != nil {
		st.fail()
		return nil, c.convert(err)
	}
	return st, nil
}

// newLibp2pStream opens a libp2p stream on the session's connection. While
// the resource manager refuses, it retries until ctx or the session ends:
// streams of ours end and free their reservations, as QUIC stream credit
// comes back.
func (c *Conn) newLibp2pStream(ctx context.Context) (network.Stream, error) {
	ctx = network.WithAllowLimitedConn(ctx, "moq")
	delay := time.Millisecond
	for {
		if err := c.cause(); err != nil {
			return nil, err
		}
		s, err := c.lconn.NewStream(ctx)
		if err == nil {
			if err = s.SetProtocol(c.proto); err == nil {
				return s, nil
			}
			_ = s.ResetWithError(network.StreamResourceLimitExceeded)
		}
		if !errors.Is(err, network.ErrResourceLimitExceeded) {
			if cause := c.cause(); cause != nil {
				return nil, cause
			}
			return nil, err
		}
		t := time.NewTimer(delay)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return nil, fmt.Errorf("waiting for the resource manager to allow a stream: %w", ctx.Err())
		case <-c.ctx.Done():
			t.Stop()
			return nil, c.cause()
		}
		delay = min(2*delay, maxOpenBackoff)
	}
}

func (c *Conn) accept(ctx context.Context, q chan *stream) (*stream, error) {
	select {
	case st := <-q:
		return st, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-c.ctx.Done():
		return nil, c.cause()
	}
}

// deliver queues a stream the peer opened for this session. A full queue
// means the application stopped accepting: the stream is refused with
// BoundsExceeded rather than held without bound.
func (c *Conn) deliver(kind uint64, s network.Stream) {
	st := newStream(c, s, s)
	q := c.bidi
	if kind == kindUni {
		_ = s.CloseWrite() // only the peer's direction is used
		st.writeDone = true
		q = c.uni
	}
	st.inbound = true
	switch ok, full := c.trackInbound(st); {
	case !ok:
		_ = s.ResetWithError(codeSessionGone)
		return
	case full:
		c.log.Warn("refusing stream: too many open in the session", "limit", c.t.cfg.MaxStreamsPerSession)
		_ = s.ResetWithError(network.StreamErrorCode(codeBoundsExceeded))
		return
	}
	select {
	case q <- st:
	default:
		c.log.Warn("refusing stream: too many waiting to be accepted", "limit", cap(q))
		st.abort(network.StreamErrorCode(codeBoundsExceeded))
	}
}

func (c *Conn) track(st *stream) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return false
	}
	c.streams[st] = struct{}{}
	return true
}

// trackInbound tracks a stream the peer opened, unless the session ended
// (ok false) or already holds MaxStreamsPerSession of those (full).
func (c *Conn) trackInbound(st *stream) (ok, full bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return false, false
	}
	if c.inbound >= c.t.cfg.MaxStreamsPerSession {
		return true, true
	}
	c.inbound++
	c.streams[st] = struct{}{}
	return true, false
}

func (c *Conn) untrack(st *stream) {
	c.mu.Lock()
	if _, ok := c.streams[st]; ok && st.inbound {
		c.inbound--
	}
	delete(c.streams, st)
	c.mu.Unlock()
}

// cause is why the session ended, or nil while it runs.
func (c *Conn) cause() error {
	if c.ctx.Err() == nil {
		return nil
	}
	return context.Cause(c.ctx)
}

// awaitEnd waits up to goneGrace for the session to end and returns its
// cause, or nil if it is still running.
func (c *Conn) awaitEnd() error {
	t := time.NewTimer(goneGrace)
	defer t.Stop()
	select {
	case <-c.ctx.Done():
		return c.cause()
	case <-t.C:
		return nil
	}
}

// convert turns a libp2p stream error into the transport package's terms.
// Once the session has ended, every stream error is the session's cause, as
// on a closed QUIC connection. An error that means the session is ending
// (the connection closed, or the peer reset the stream because its end of
// the session is gone) waits briefly for the control stream to say why.
func (c *Conn) convert(err error) error {
	if cause := c.cause(); cause != nil {
		return cause
	}
	var se *network.StreamError
	var ce *network.ConnError
	isSE := errors.As(err, &se)
	if c.lconn.IsClosed() || errors.As(err, &ce) || isSE && se.Remote && se.ErrorCode == codeSessionGone {
		if cause := c.awaitEnd(); cause != nil {
			return cause
		}
	}
	switch {
	case isSE:
		return &transport.StreamError{Code: fromLibp2pCode(se.ErrorCode), Remote: se.Remote}
	case errors.Is(err, network.ErrReset):
		return &transport.StreamError{Code: codeCancel, Remote: true} // a reset that carries no code
	}
	return err
}

// ctlEnd says how shutdown leaves the control stream.
type ctlEnd int

const (
	ctlSendClose ctlEnd = iota // write CLOSE, then FIN
	ctlFinish                  // FIN only: the peer already sent CLOSE
	ctlReset                   // reset: the stream or connection is broken
)

// shutdown ends the session once: it sets the cause, settles the control
// stream as end says, resets every stream and forgets the session.
func (c *Conn) shutdown(cause error, end ctlEnd) {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return
	}
	c.closed = true
	streams := c.streams
	c.streams = nil
	c.mu.Unlock()

	c.cancel(cause)
	if !c.ready.Load() {
		end = ctlReset
	}
	switch end {
	case ctlSendClose:
		var code uint32
		var reason string
		if ce := (*transport.ConnError)(nil); errors.As(cause, &ce) {
			code, reason = ce.Code, ce.Reason
		}
		if c.writeCtl(appendClose(nil, code, reason)) == nil {
			_ = c.ctl.Close()
		} else {
			_ = c.ctl.Reset()
		}
	case ctlFinish:
		_ = c.ctl.Close()
	default:
		_ = c.ctl.Reset()
	}
	for st := range streams {
		st.abort(codeSessionGone)
	}
	c.t.forget(c)
	c.log.Debug("session ended", "cause", cause)
}

// fail closes the session because the peer broke the control protocol.
func (c *Conn) fail(code uint32, reason string) {
	c.log.Warn("closing session: bad control stream", "code", code, "reason", reason)
	c.shutdown(&transport.ConnError{Code: code, Reason: reason}, ctlSendClose)
}

func (c *Conn) writeCtl(b []byte) error {
	c.ctlMu.Lock()
	defer c.ctlMu.Unlock()
	_ = c.ctl.SetWriteDeadline(time.Now().Add(ctlWriteTimeout))
	_, err := c.ctl.Write(b)
	return err
}

// sendAccept tells the dialer its session exists, unless the session ended
// first (then CLOSE goes instead).
func (c *Conn) sendAccept() {
	var err error
	c.ctlMu.Lock()
	if c.ctx.Err() == nil {
		_ = c.ctl.SetWriteDeadline(time.Now().Add(ctlWriteTimeout))
		_, err = c.ctl.Write(wire.AppendVarint(nil, msgAccept))
	}
	c.ctlMu.Unlock()
	if err != nil {
		c.shutdown(fmt.Errorf("%w: writing ACCEPT: %w", ErrConnLost, err), ctlReset)
	}
}

// readControl reads the control stream after the handshake until CLOSE,
// its end or garbage, and ends the session accordingly. It runs on its own
// goroutine for the session's life.
func (c *Conn) readControl(br *bufio.Reader) {
	defer c.t.wg.Done()
	c.startKeepAlive()
	typ, err := wire.ReadVarint(br)
	if err == nil && typ != msgClose {
		c.fail(codeDecode, fmt.Sprintf("unexpected control message type %d", typ))
		return
	}
	var code uint32
	var reason string
	if err == nil {
		code, reason, err = readCloseBody(br)
	} else {
		err = decodeErr(err, true)
	}
	switch {
	case err == nil:
		c.shutdown(&transport.ConnError{Code: code, Reason: reason, Remote: true}, ctlFinish)
	case c.ctx.Err() != nil: // we ended the session, which ended the read
	case errors.Is(err, errDecode) && !c.lconn.IsClosed(): // a truncation, not a dying connection
		c.fail(codeDecode, err.Error())
	case err == io.EOF:
		c.shutdown(fmt.Errorf("%w: control stream ended without CLOSE", ErrConnLost), ctlFinish)
	default:
		c.shutdown(fmt.Errorf("%w: %w", ErrConnLost, err), ctlReset)
	}
}
