package webtransport

import (
	"context"
	"errors"
	"net"
	"time"

	"github.com/quic-go/quic-go"
	"github.com/quic-go/quic-go/http3"
	"github.com/quic-go/webtransport-go"

	"github.com/moqp2p/moqp2p/internal/quicstats"
	"github.com/moqp2p/moqp2p/transport"
)

// Conn is a WebTransport session seen as a transport.Conn. It also
// implements transport.StatsConn.
type Conn struct {
	sess     *webtransport.Session
	qconn    *quic.Conn      // carries sess; nil if unknown
	protocol string          // negotiated application protocol, fixed
	ctx      context.Context // sess.Context() with the close cause in transport's terms
	released chan struct{}   // closed once the session ended and an owned qconn is closed
}

var (
	_ transport.Conn         = (*Conn)(nil)
	_ transport.StatsConn    = (*Conn)(nil)
	_ transport.DatagramConn = (*Conn)(nil)
	_ transport.ReleaseConn  = (*Conn)(nil)
)

// DatagramsSupported implements transport.DatagramConn: WebTransport
// sessions always negotiate HTTP/3 datagrams.
func (c *Conn) DatagramsSupported() bool {
	return c.qconn == nil || c.qconn.ConnectionState().SupportsDatagrams.Remote
}

// SendDatagram implements transport.DatagramConn.
func (c *Conn) SendDatagram(p []byte) error {
	if err := c.sess.SendDatagram(p); err != nil {
		return c.sessionErr(c.ctx, err)
	}
	return nil
}

// ReceiveDatagram implements transport.DatagramConn.
func (c *Conn) ReceiveDatagram(ctx context.Context) ([]byte, error) {
	p, err := c.sess.ReceiveDatagram(ctx)
	if err != nil {
		return nil, c.sessionErr(ctx, err)
	}
	return p, nil
}

// Wrap adapts an established WebTransport session. qconn is the QUIC
// connection carrying it, for Stats; it may be nil, and it is not closed
// when the session ends (other sessions may share it).
func Wrap(sess *webtransport.Session, qconn *quic.Conn) *Conn {
	return wrap(sess, qconn, false)
}

// wrap adapts sess; with owned, qconn belongs to this session alone and is
// closed once the session has ended.
func wrap(sess *webtransport.Session, qconn *quic.Conn, owned bool) *Conn {
	ctx, cancel := context.WithCancelCause(context.Background())
	c := &Conn{
		sess:     sess,
		qconn:    qconn,
		protocol: sess.SessionState().ApplicationProtocol,
		ctx:      ctx,
		released: make(chan struct{}),
	}
	context.AfterFunc(sess.Context(), func() {
		defer close(c.released)
		cause := c.closeCause()
		release := owned && qconn != nil
		// Closed by the peer or lost: nothing to linger for, so the QUIC
		// connection goes before the end is seen. Whoever sees it (a
		// program about to exit, say) then knows the server was told,
		// which otherwise keeps the connection, and counts it against our
		// address, until its idle timeout. Streams failing meanwhile wait
		// for the cause (streamErr).
		if release && !lingers(cause) {
			releaseQUIC(qconn, cause)
			release = false
		}
		cancel(cause)
		if release {
			releaseQUIC(qconn, cause)
		}
	})
	return c
}

// lingers reports whether a session that ended with cause was closed by us,
// so that releaseQUIC waits before closing its QUIC connection.
func lingers(cause error) bool {
	ce, ok := errors.AsType[*transport.ConnError](cause)
	return ok && !ce.Remote
}

// closeCause is why the ended session closed. webtransport-go records the
// reason before it cancels the session's context and returns it from every
// later Open call, which then neither blocks nor opens anything.
func (c *Conn) closeCause() error {
	st, err := c.sess.OpenUniStream()
	if err == nil { // not expected: the session ended without a reason
		st.CancelWrite(webtransport.StreamErrorCode(codeCancel))
		return &transport.ConnError{Code: codeTransport, Reason: "webtransport session ended"}
	}
	if _, ok := errors.AsType[*webtransport.SessionError](err); !ok && c.qconn != nil {
		// No WT_CLOSE_SESSION: the CONNECT stream broke, and webtransport-go
		// keeps only the text of why. If the QUIC connection closed (it
		// cancels its context just after failing its streams), its error
		// carries the code.
		t := time.NewTimer(connCloseWait)
		select {
		case <-c.qconn.Context().Done():
			err = context.Cause(c.qconn.Context())
		case <-t.C:
		}
		t.Stop()
	}
	return convert(err)
}

// connCloseWait bounds how long closeCause waits for the QUIC connection to
// report its close after the session's CONNECT stream failed. The close is
// already in hand then (quic-go fails the streams, then cancels the
// connection's context), so the wait is a scheduling gap, not a round trip;
// if it is too short the error says "webtransport session ended" with the
// Transport code instead of the peer's code.
const connCloseWait = 50 * time.Millisecond

// sessionErr converts the error of an Open or Accept call. Once the session
// has ended, that is its close cause, so that every call and Context agree.
func (c *Conn) sessionErr(ctx context.Context, err error) error {
	e := convert(err)
	if _, ok := errors.AsType[*transport.ConnError](e); !ok {
		return e
	}
	select {
	case <-c.ctx.Done(): // soon: the session has recorded its end
		return context.Cause(c.ctx)
	case <-ctx.Done():
		return e
	}
}

// streamErr is sessionErr for a stream operation, which has no context of
// its own: it waits at most streamEndWait. webtransport-go fails the streams it tracks with the peer's
// close, but a stream can also see the QUIC connection close first (its
// reader raced the session's bookkeeping, or a dialed session's connection
// was released once the session had ended), which would otherwise read as
// our own H3_NO_ERROR close and hide the peer's code.
func (c *Conn) streamErr(err error) error {
	if err == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), streamEndWait)
	defer cancel()
	return c.sessionErr(ctx, err)
}

// streamEndWait bounds how long a failed stream operation waits for the
// session to record why it ended. The session learns it from the same
// close (at most connCloseWait later), so this is a scheduling gap; if it
// is too short the stream reports the connection's close, not the
// session's code.
const streamEndWait = time.Second

// releaseQUIC closes a dialed session's QUIC connection. After a local close
// it first lingers a few round trips, so that the WT_CLOSE_SESSION capsule
// (possibly retransmitted) reaches the peer before CONNECTION_CLOSE, which
// would discard it; the peer does not close the connection itself.
func releaseQUIC(qconn *quic.Conn, cause error) {
	if lingers(cause) {
		// Four round trips let a lost capsule be retransmitted once; the
		// floor covers an RTT not yet measured, the cap a dead peer. Too
		// short: the peer sees a transport close, not our code and reason.
		linger := min(max(4*qconn.ConnectionStats().SmoothedRTT, 50*time.Millisecond), time.Second)
		t := time.NewTimer(linger)
		select {
		case <-t.C:
		case <-qconn.Context().Done():
		}
		t.Stop()
	}
	_ = qconn.CloseWithError(quic.ApplicationErrorCode(http3.ErrCodeNoError), "")
}

// OpenStream opens a bidirectional stream, waiting for stream credit.
func (c *Conn) OpenStream(ctx context.Context) (transport.Stream, error) {
	s, err := c.sess.OpenStreamSync(ctx)
	if err != nil {
		return nil, c.sessionErr(ctx, err)
	}
	return newStream(c, s), nil
}

// AcceptStream waits for the peer's next bidirectional stream.
func (c *Conn) AcceptStream(ctx context.Context) (transport.Stream, error) {
	s, err := c.sess.AcceptStream(ctx)
	if err != nil {
		return nil, c.sessionErr(ctx, err)
	}
	return newStream(c, s), nil
}

// OpenUniStream opens a unidirectional stream, waiting for stream credit.
func (c *Conn) OpenUniStream(ctx context.Context) (transport.SendStream, error) {
	s, err := c.sess.OpenUniStreamSync(ctx)
	if err != nil {
		return nil, c.sessionErr(ctx, err)
	}
	return &sendStream{s: s, c: c}, nil
}

// AcceptUniStream waits for the peer's next unidirectional stream.
func (c *Conn) AcceptUniStream(ctx context.Context) (transport.ReceiveStream, error) {
	s, err := c.sess.AcceptUniStream(ctx)
	if err != nil {
		return nil, c.sessionErr(ctx, err)
	}
	return &receiveStream{s: s, c: c}, nil
}

// CloseWithError closes the session with a moq-lite code and reason (at most
// 1024 bytes; longer ones are cut), sent unmapped in a WT_CLOSE_SESSION
// capsule. It returns once the session is closed locally.
func (c *Conn) CloseWithError(code uint32, reason string) error {
	return c.sess.CloseWithError(webtransport.SessionErrorCode(code), reason)
}

// Released implements transport.ReleaseConn: it is closed once the session
// has ended and, for a session Dial opened, its QUIC connection is closed
// (after our own close, a linger of four round trips, 50 ms to 1 s).
func (c *Conn) Released() <-chan struct{} { return c.released }

// Context is done when the session has ended, by either side; its cause is a
// *transport.ConnError when the session was closed with a code.
func (c *Conn) Context() context.Context { return c.ctx }

// Protocol is the negotiated WebTransport application protocol
// ("moq-lite-05", "moq-lite-04", "moq-lite-03", "moql"), or "" when none was agreed.
func (c *Conn) Protocol() string { return c.protocol }

// LocalAddr is the local UDP address.
func (c *Conn) LocalAddr() net.Addr { return c.sess.LocalAddr() }

// RemoteAddr is the peer's UDP address.
func (c *Conn) RemoteAddr() net.Addr { return c.sess.RemoteAddr() }

// Session returns the underlying WebTransport session.
func (c *Conn) Session() *webtransport.Session { return c.sess }

// QUICConn is the QUIC connection carrying the session (which other
// sessions may share), or nil if unknown.
func (c *Conn) QUICConn() *quic.Conn { return c.qconn }

// Stats reports the QUIC connection's counters (shared by every session on
// it); zero when the connection is unknown.
func (c *Conn) Stats() transport.Stats {
	if c.qconn == nil {
		return transport.Stats{Transport: "webtransport"}
	}
	return quicstats.Named("webtransport", c.qconn.ConnectionStats())
}
