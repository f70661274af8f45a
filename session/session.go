package session

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/moqp2p/moqp2p/broadcast"
	"github.com/moqp2p/moqp2p/internal/wire"
	"github.com/moqp2p/moqp2p/transport"
)

// ErrVersion is returned by New when the connection negotiated no moq-lite
// version this package speaks.
var ErrVersion = errors.New("session: no supported moq-lite version negotiated")

// closedChan is the Ready of every session whose version its protocol
// fixed: shared, so such a session makes no channel for it.
var closedChan = func() chan struct{} {
	c := make(chan struct{})
	close(c)
	return c
}()

// everything is the default Interest: every path.
var everything = []string{""}

// ErrClosed is returned by calls on a session that has ended.
var ErrClosed = errors.New("session: closed")

// Session is one moq-lite session with a peer. It is safe for concurrent use.
//
// Fields of 4 bytes and less are grouped at the end, where they pack: the
// struct is allocated once per session and an idle one is mostly this.
// TestSessionSize keeps it in the 768-byte size class.
type Session struct {
	conn    transport.Conn
	version wire.Version  // fixed before negotiated is closed
	ready   chan struct{} // closed once the version is known (closedChan if it was at New)

	// goaway's channel is closed when the peer sent GOAWAY; made by
	// goawayChan when first asked for (most sessions never see one).
	// goawayMu guards it and goawaySeen.
	goaway  *goawayState
	lim     Limits
	log     *slog.Logger
	hop     uint64
	publish *broadcast.Origin                        // what we offer; never nil
	fill    func(ctx context.Context, prefix string) // Config.FillPublish
	// remote is what the peer announced to us, made by remoteOrigin when
	// first needed: a lazy session that never asks holds none.
	remote atomic.Pointer[broadcast.Origin]

	// The announce-interest streams (announced.go): they ask the peer for
	// its broadcasts under each prefix in interest. With lazyInterest they
	// open at the first Remote call (remoteWanted) once the version is
	// known (started); remoteKnown closes once every stream has received
	// the set the peer announced first (initialPending counts those still
	// missing; remoteKnown is made with the streams).
	interest    []string
	remoteKnown chan struct{}

	ctx    context.Context // done when the session ends (stop)
	cancel context.CancelCauseFunc
	hooks  *hooks // Config's callbacks; nil if it has none
	wg     sync.WaitGroup

	nextSubID atomic.Uint64
	sorted    signal    // a stream left unsorted (its header was read, or it was dropped)
	peerSetup peerSetup // the peer's lite-05 SETUP
	turnFree  signal    // turnWaiters dropped to 0
	// uniIdle wakes those who wait for the group-stream accept loop to go
	// back to accepting (finishAfterGroups; see uniBusy).
	uniIdle   signal
	uniPasses atomic.Uint64 // times the loop went back to accepting
	counters  counters
	inFlight  groupTokens // the session's groups in flight on the publish path

	// The maps are made with their first entry: an idle session has none.
	subs           map[uint64]*subscription // our wire subscriptions by ID
	shared         map[trackKey]*subscription
	remotes        map[string]*broadcast.Producer // the peer's broadcasts by path
	announced      int                            // paths the peer has active, or refused (loops, full hop chains)
	announcedBytes int                            // their total length
	// overflow is closed at the first announcement ignored, for the
	// bounds or a full hop chain (made on first use;
	// counters.announcementsIgnored says whether one was).
	overflow chan struct{}

	// obs counts subscriptions and reports to the metrics (stats.go).
	obs observer

	mu           sync.Mutex   // guards subs, shared, remotes, announced, announcedBytes, overflow
	goawayMu     sync.Mutex   // guards goaway, goawaySeen
	spawnMu      sync.RWMutex // guards closing against wg.Add racing wg.Wait
	interestOnce sync.Once

	initialPending atomic.Int32
	remoteWanted   atomic.Bool
	started        atomic.Bool
	endRan         atomic.Bool // stop has run ended
	// uniAccepting: the accept loop for the peer's group streams runs. It
	// starts with our first subscription (acceptGroups): until then the
	// peer has no reason to open one, and an idle session parks no
	// goroutine for them.
	uniAccepting atomic.Bool
	// groupsWanted: our first subscription called acceptGroups. Before
	// that, on lite-05, the loop runs only to take the peer's SETUP (its
	// first uni stream) and stops once it has.
	groupsWanted atomic.Bool
	// uniBusy: the accept loop for group streams is away from accepting
	// (it has streams in hand, back-pressure holds it, or it has not run
	// since it took the last one), so a stream of a finished subscription
	// may be waiting for it unseen (uniIdle).
	uniBusy   atomic.Bool
	setupSeen atomic.Bool  // a SETUP stream of the peer's was taken
	dgStarted atomic.Bool  // the datagram reader was started (lite-05, first subscription)
	served    atomic.Int32 // peer subscriptions being served
	interests atomic.Int32 // peer announce streams being served
	probes    atomic.Int32 // peer probe streams held open
	unsorted  atomic.Int32 // group streams accepted whose header is not read yet
	// back-pressured groups on goroutines waiting for their turn to be
	// read; the accept loop takes no stream while there are any
	turnWaiters atomic.Int32

	client       bool // we opened the connection (sends CLIENT_SETUP)
	lazyInterest bool
	closing      bool // guarded by spawnMu
	goawaySeen   bool // a GOAWAY arrived (its URI is goaway.uri)
}

type trackKey struct{ path, track string }

// New starts a moq-lite session on conn; the version comes from
// conn.Protocol(): moq-lite-05, -04 and -03 fix it, while "moql" or no
// protocol at all leave it to the compat SETUP exchange (lite-01/02), which
// runs in the background (cfg.Client says which side sends CLIENT_SETUP).
// It returns ErrVersion (after closing conn with code Version) for any other
// protocol.
func New(conn transport.Conn, cfg Config) (*Session, error) {
	v, ok := wire.VersionForALPN(conn.Protocol())
	setup := wire.NeedsSetup(conn.Protocol())
	if !setup && (!ok || v < wire.Lite03) { // lite-01/02 have no ALPN of their own
		_ = conn.CloseWithError(uint32(broadcast.CodeVersion), "unsupported protocol "+conn.Protocol())
		return nil, fmt.Errorf("%w: %q", ErrVersion, conn.Protocol())
	}
	s := &Session{
		conn:    conn,
		version: v,
		client:  cfg.Client,
		ready:   closedChan,
		lim:     cfg.Limits.withDefaults(),
		log:     cfg.Logger,
		publish: cfg.Publish,
		hop:     cfg.HopID,

		interest:     cfg.Interest,
		lazyInterest: cfg.LazyInterest,
	}
	if s.log == nil {
		s.log = slog.Default()
	}
	if s.publish == nil {
		s.publish = broadcast.NewOrigin(s.hop)
		s.publish.Close() // offers nothing
	}
	if s.hop == 0 {
		s.hop = s.publish.ID()
	}
	s.fill = cfg.FillPublish
	setupPath := ""
	if s.client {
		setupPath = cfg.SetupPath
		if t, ok := transport.As[requestTargeter](conn); ok && setupPath == "" {
			setupPath = t.RequestTarget()
		}
	}
	if m := cfg.PeerSetup; m != nil && !s.client && v.HasSetupStream() {
		s.setSetup(m)
		s.setupSeen.Store(true)
	}
	if !s.lazyInterest {
		s.remoteOrigin()
	}
	s.log = s.log.With("remote", conn.RemoteAddr().String())
	// The session's context ends with the connection, with the
	// connection's cause, or first with end's or fail's (stop). It is no
	// child of the connection's, and nothing watches it: the connection's
	// close hook and stop end it and run the session's end (ended), so
	// that an idle session holds neither a goroutine nor a context hook
	// for it. Close waits for ended.
	s.ctx, s.cancel = context.WithCancelCause(context.Background())
	if cfg.OnEnd != nil || cfg.OnGoaway != nil {
		s.hooks = &hooks{onEnd: cfg.OnEnd, onGoaway: cfg.OnGoaway}
	}

	if s.interest == nil {
		s.interest = everything
	}
	s.wg.Add(1)
	transport.OnClose(conn, func(cause error) { s.stop(cause, true) })
	if setup {
		s.ready = make(chan struct{})
		metrics := cfg.Metrics
		s.spawn(func() { s.runSetup(metrics) })
	} else {
		s.log = s.log.With("version", v.String())
		s.start(cfg.Metrics, setupPath)
	}
	return s, nil
}

// start runs the session once its version is known; metrics is
// Config.Metrics, setupPath the client's lite-05 SETUP Path (not kept in
// the Session: nothing else needs it).
func (s *Session) start(metrics MetricsTracer, setupPath string) {
	if s.ready != closedChan {
		close(s.ready)
	}
	s.obs.started(s, metrics)
	if s.version.HasSetupStream() {
		s.spawn(func() { s.sendSetup(setupPath) })
		// The peer's SETUP is read with its group streams (recvSetup):
		// their accept loop starts now, takes it, and stops until our
		// first subscription, so that an idle session neither parks a
		// goroutine for it nor keeps the peer's stream unread in the
		// transport. A server that read it already (Config.PeerSetup)
		// has no reason to start the loop yet.
		if !s.setupSeen.Load() && s.uniAccepting.CompareAndSwap(false, true) {
			s.spawn(s.acceptUniStreams)
		}
	}
	s.spawn(s.acceptStreams)
	// Set before reading remoteWanted, as Remote sets that before reading
	// started: whichever comes second opens the streams.
	s.started.Store(true)
	if !s.lazyInterest || !marksInitialSet(s.version) || s.remoteWanted.Load() {
		s.openInterest()
	}
}

// awaitVersion waits until the version is negotiated; false if ctx or the
// session ended first.
func (s *Session) awaitVersion(ctx context.Context) bool {
	select {
	case <-s.ready:
		return true
	case <-ctx.Done():
	case <-s.ctx.Done():
	}
	return false
}

// spawn runs f on a goroutine that Close waits for; after Close it does
// nothing (f's work would only find the session gone).
func (s *Session) spawn(f func()) {
	s.spawnMu.RLock()
	defer s.spawnMu.RUnlock()
	if !s.closing {
		s.wg.Go(f)
	}
}

// Version is the negotiated moq-lite version, e.g. "moq-lite-04", or ""
// while the compat SETUP is still under way.
func (s *Session) Version() string {
	select {
	case <-s.ready:
		return s.version.String()
	default:
		return ""
	}
}

// Ready is closed once the version is negotiated: at once for moq-lite-03/04,
// after the compat SETUP exchange otherwise.
func (s *Session) Ready() <-chan struct{} { return s.ready }

// Conn is the underlying connection.
func (s *Session) Conn() transport.Conn { return s.conn }

// Remote holds the broadcasts the peer announced. Its broadcasts are live:
// subscribing to one of their tracks subscribes on the wire. With
// Config.LazyInterest the first call asks the peer for its announcements:
// they arrive in Remote a round trip later (AwaitRemote waits for them).
func (s *Session) Remote() *broadcast.Origin {
	if s.lazyInterest && !s.remoteWanted.Load() {
		s.remoteWanted.Store(true)
		if s.started.Load() {
			s.openInterest()
		}
	}
	return s.remoteOrigin()
}

// remoteOrigin is Remote without asking the peer: the origin, made on
// first use (one made after the session ended is closed by the end's
// hook, which makes it if nobody did).
func (s *Session) remoteOrigin() *broadcast.Origin {
	if o := s.remote.Load(); o != nil {
		return o
	}
	// Two first callers at once make one origin each (an allocation,
	// nothing to stop): the first stored is everyone's.
	s.remote.CompareAndSwap(nil, broadcast.NewOrigin(s.hop))
	return s.remote.Load()
}

// AwaitRemote asks the peer for its announcements, as Remote does, and
// waits until the broadcasts it announced before it answered are in
// Remote, so that a path missing from Remote then is one the peer did not
// announce (rather than one not heard of yet). On lite-03/04, whose
// publishers do not mark the end of that first set, it returns once the
// requests are sent (see Config.LazyInterest: there they are sent when
// the session starts). It returns ctx's error if ctx ends first, and
// ErrClosed if the session does.
func (s *Session) AwaitRemote(ctx context.Context) error {
	s.Remote()
	if !s.awaitVersion(ctx) {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return ErrClosed
	}
	// Started: openInterest has run or runs now (remoteWanted is set), and
	// made remoteKnown under its once.
	s.openInterest()
	select {
	case <-s.remoteKnown:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	case <-s.ctx.Done():
		return ErrClosed
	}
}

// Context is done when the session has ended; its cause is Err.
func (s *Session) Context() context.Context { return s.ctx }

// Done is closed when the session has ended.
func (s *Session) Done() <-chan struct{} { return s.ctx.Done() }

// Err is why the session ended (a *transport.ConnError when either side
// closed it with a code), or nil while it runs.
func (s *Session) Err() error {
	if s.ctx.Err() == nil {
		return nil
	}
	return context.Cause(s.ctx)
}

// Close ends the session with a moq-lite code and reason, and waits for its
// goroutines and, on a connection that lingers after its close
// (transport.ReleaseConn: a dialed WebTransport session), for it to let go,
// at most releaseWait. Closing an ended session does nothing more.
func (s *Session) Close(code broadcast.Code, reason string) error {
	s.end(code, reason)
	s.spawnMu.Lock()
	s.closing = true
	s.spawnMu.Unlock()
	s.wg.Wait()
	if rc, ok := transport.As[transport.ReleaseConn](s.conn); ok {
		t := time.NewTimer(releaseWait)
		defer t.Stop()
		select {
		case <-rc.Released():
		case <-t.C:
		}
	}
	return nil
}

// releaseWait bounds Close's wait for a lingering connection: a dialed
// WebTransport session lingers at most a second. Past it Close returns;
// the connection is let go of all the same, a moment later.
const releaseWait = 2 * time.Second

// end closes the session without waiting for its goroutines (so that they
// may call it).
func (s *Session) end(code broadcast.Code, reason string) {
	if s.ctx.Err() == nil {
		// Stop first: goroutines that see the connection die then find the
		// session already ended with this reason.
		s.stop(&transport.ConnError{Code: uint32(code), Reason: reason}, false)
		_ = s.conn.CloseWithError(uint32(code), reason)
	}
}

// stop ends the session's context with cause (the first cause stays) and
// runs ended once: on this goroutine when inline (the connection's close
// hook), otherwise on a goroutine of its own, as end and fail may be
// called with the session's locks held.
func (s *Session) stop(cause error, inline bool) {
	s.cancel(cause)
	if !s.endRan.CompareAndSwap(false, true) {
		return
	}
	if inline {
		s.ended()
	} else {
		go s.ended()
	}
}

// ended runs once the session has ended: so do the peer's broadcasts.
// Close waits for it, then Config.OnEnd runs.
func (s *Session) ended() {
	s.obs.ended()
	s.remoteOrigin().Close()
	s.endRemotes()
	s.wg.Done()
	if s.hooks != nil && s.hooks.onEnd != nil {
		s.hooks.onEnd()
	}
}

// hooks are Config's callbacks, kept apart from Session: a pointer costs
// the struct less than two funcs (TestSessionSize).
type hooks struct {
	onEnd    func()                 // Config.OnEnd
	onGoaway func(*Session, string) // Config.OnGoaway
}

// fail closes the session because of the peer's protocol violation.
func (s *Session) fail(code broadcast.Code, format string, args ...any) {
	if s.ctx.Err() != nil || s.conn.Context().Err() != nil {
		return // already over: keep the reason it ended with
	}
	reason := fmt.Sprintf(format, args...)
	s.log.Warn("closing session: peer violated the protocol", "code", code, "reason", reason)
	s.stop(&transport.ConnError{Code: uint32(code), Reason: reason}, false)
	_ = s.conn.CloseWithError(uint32(code), reason)
}

// connErr is remoteErr for an error from the connection or one of its
// streams, after connEnded.
func (s *Session) connErr(err error) error {
	s.connEnded(err)
	return remoteErr(err)
}

// connEnded ends the session when err, from the connection or one of its
// streams, is the connection's end (the peer vanished, or either side
// closed it), so that Err is set before the failure reaches a reader: the
// connection's close hook, which ends the session with the same cause, can
// run a moment after the streams failed.
func (s *Session) connEnded(err error) {
	if ce, ok := errors.AsType[*transport.ConnError](err); ok {
		s.stop(ce, false)
	} else if le, ok := errors.AsType[*transport.LostError](err); ok {
		s.stop(le, false) // without what the stream's reader added
	} else if errors.Is(err, transport.ErrConnLost) {
		s.stop(err, false)
	}
}

// reset abandons both directions of a bidi stream with code.
func reset(st transport.Stream, code broadcast.Code) {
	st.CancelWrite(uint32(code))
	st.CancelRead(uint32(code))
}

// isWireErr reports whether err is the codec's verdict on the peer's bytes
// (a protocol violation), as opposed to the stream or connection failing.
func isWireErr(err error) bool {
	for _, e := range []error{wire.ErrShort, wire.ErrLong, wire.ErrTooLarge, wire.ErrInvalid, wire.ErrUnsupported, wire.ErrUnknownStream} {
		if errors.Is(err, e) {
			var se *transport.StreamError
			var ce *transport.ConnError
			return !errors.As(err, &se) && !errors.As(err, &ce)
		}
	}
	return false
}

// codeOfWire classifies a decode error: a message over a limit is
// BoundsExceeded, anything else malformed is Decode.
func codeOfWire(err error) broadcast.Code {
	if errors.Is(err, wire.ErrTooLarge) {
		return broadcast.CodeBoundsExceeded
	}
	return broadcast.CodeDecode
}

// remoteErr turns a transport error into a model error with the peer's code,
// so consumers can match it with errors.Is. A lost connection stays as it
// is: it matches transport.ErrConnLost, and its code is Transport.
func remoteErr(err error) error {
	if errors.Is(err, transport.ErrConnLost) {
		return err
	}
	var se *transport.StreamError
	// The number goes next to our name for the code: a peer's code we have
	// no name for, or name differently, is still recognisable.
	if errors.As(err, &se) {
		return &broadcast.Error{Code: broadcast.Code(se.Code), Reason: fmt.Sprintf("stream reset by peer with code %d", se.Code)}
	}
	var ce *transport.ConnError
	if errors.As(err, &ce) {
		by := "session closed"
		if ce.Remote {
			by += " by peer"
		}
		reason := fmt.Sprintf("%s with code %d", by, ce.Code)
		if ce.Reason != "" {
			reason += ": " + ce.Reason
		}
		return &broadcast.Error{Code: broadcast.Code(ce.Code), Reason: reason}
	}
	return err
}

// controlBuffer is the read buffer of a control stream: control messages
// are tens of bytes, and an idle session parks one on each of its
// announce streams.
const controlBuffer = 128

// Readers are pooled by size: group streams carry media and get a large
// buffer; control streams (announce, subscribe) live as long as the session
// but carry a few small messages, so they get a small one: an idle session
// holds only small buffers. A message larger than the buffer is still read
// whole (the codec allocates its body).
var (
	groupReaders   = sync.Pool{New: func() any { return newGroupReader() }}
	controlReaders = sync.Pool{New: func() any { return bufio.NewReaderSize(nil, controlBuffer) }}
)

type source interface{ Read([]byte) (int, error) }

func getReader(r source) *bufio.Reader { return get(&controlReaders, r) }
func putReader(br *bufio.Reader)       { put(&controlReaders, br) }

// groupReader reads a group stream through a 16 KiB buffer and notes when
// the stream ended (FIN) behind what is buffered.
type groupReader struct {
	*bufio.Reader
	hdr    wire.Group  // the stream's GROUP header, decoded by recvGroup
	stamps frameStamps // its frames' timestamps (lite-05)
	// hdrTimer is the deadline for the header of a stream read on a
	// goroutine of its own (zero for one that arrived whole).
	hdrTimer headerTimer
	chunks   chunks // reads the group's frames (startChunks)
	src      struct {
		rs  transport.ReceiveStream
		eof bool
	}
}

func newGroupReader() *groupReader {
	gr := &groupReader{}
	gr.Reader = bufio.NewReaderSize((*eofSource)(gr), 16<<10)
	return gr
}

// eofSource is a groupReader's view of its stream for the bufio.Reader.
type eofSource groupReader

func (e *eofSource) Read(p []byte) (int, error) {
	n, err := e.src.rs.Read(p)
	switch {
	case err == io.EOF: // bare only: the FIN; a wrapped EOF (a dead connection) is no end of the group
		e.src.eof = true
	case n > 0 && err != nil && errors.Is(err, os.ErrDeadlineExceeded):
		// arrived's deadline passed in the middle of a read that got data:
		// keep the data, drop the error (bufio would hold it for later).
		err = nil
	}
	return n, err
}

func getGroupReader(rs transport.ReceiveStream) *groupReader {
	gr := groupReaders.Get().(*groupReader)
	gr.src.rs, gr.src.eof = rs, false
	return gr
}

// headerRead stops the header deadline once the GROUP header is in; false
// if it passed first (the stream was stopped with Timeout).
func (gr *groupReader) headerRead() bool {
	ok := gr.hdrTimer.done()
	gr.hdrTimer = headerTimer{}
	return ok
}

func putGroupReader(gr *groupReader) {
	gr.hdrTimer.stop()
	gr.hdrTimer = headerTimer{}
	gr.Reset((*eofSource)(gr)) // drops what is buffered
	gr.chunks = chunks{}       // the last chunk belongs to the group's frames
	gr.src.rs = nil
	groupReaders.Put(gr)
}

// signal wakes whoever waits on it at the next notify: a channel closed
// and replaced, made only while someone waits, so that notify on the hot
// path is an atomic load when nobody does.
type signal struct {
	waiting atomic.Bool
	mu      sync.Mutex
	ch      chan struct{}
}

// wait returns a channel closed at the next notify.
func (n *signal) wait() <-chan struct{} {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.ch == nil {
		n.ch = make(chan struct{})
		n.waiting.Store(true)
	}
	return n.ch
}

func (n *signal) notify() {
	if !n.waiting.Load() {
		return
	}
	n.mu.Lock()
	if n.ch != nil {
		close(n.ch)
		n.ch = nil
		n.waiting.Store(false)
	}
	n.mu.Unlock()
}

// deadliner is a receive stream whose reads can be bounded in time
// (rawquic's).
type deadliner interface{ SetReadDeadline(time.Time) error }

// arrivalWait bounds the one read that tells whether a group stream has
// fully arrived. A stream is usually accepted once its first bytes are in,
// and the read returns at once; it waits only for a stream that is open
// but empty (its bytes are late, or a later stream's opened it), which then
// gets a goroutine. A read that the deadline cuts short (the goroutine was
// descheduled) only sends the stream the goroutine way too. For plain
// subscriptions either way is correct: the number trades at most 50 µs of
// the accept loop per such stream against a goroutine. For a
// back-pressured one, a group past MaxGroupsInFlight waits in the accept
// loop; misjudged, it waits on a goroutine, and the accept loop then takes
// no stream while it does (holdAccept), but streams it took before that
// goroutine read the header get goroutines too: with the wait forced to
// 1 ns, TestBadInputBackpressureBlockedStreams sees 20-41 goroutines where
// 16 are meant (133 without holdAccept). No
// event can replace the number: quic-go's stream tells neither how many
// bytes are buffered nor whether all up to the FIN are (Peek checks the
// deadline first; the final size may be known with bytes still missing).
const arrivalWait = 50 * time.Microsecond

// arrived reads what has arrived of a group stream without waiting (past
// arrivalWait) and reports whether that is all of it, FIN included, so
// that the stream can be read to its end without blocking. Streams of
// transports without read deadlines report false.
func (gr *groupReader) arrived() bool {
	d, ok := gr.src.rs.(deadliner)
	if !ok || d.SetReadDeadline(time.Now().Add(arrivalWait)) != nil {
		return false
	}
	_, err := gr.Peek(1)
	all := gr.src.eof && (err == nil || err == io.EOF)
	if !all { // it will be read with waits: lift the bound (all read: nothing left to bound)
		_ = d.SetReadDeadline(time.Time{})
	}
	return all
}

func get(p *sync.Pool, r source) *bufio.Reader {
	br := p.Get().(*bufio.Reader)
	br.Reset(r)
	return br
}
func put(p *sync.Pool, br *bufio.Reader) {
	br.Reset(nil)
	p.Put(br)
}

// acceptStreams dispatches the peer's bidi streams: the peer is subscribing
// to us (announce interest, subscribe, probe) or says goodbye.
func (s *Session) acceptStreams() {
	for {
		st, err := s.conn.AcceptStream(s.ctx)
		if err != nil {
			return
		}
		s.spawn(func() { s.handleStream(st) })
	}
}

func (s *Session) handleStream(st transport.Stream) {
	hdr := s.awaitHeader(func() { reset(st, broadcast.CodeTimeout) })
	defer hdr.stop()
	r := getReader(st)
	defer putReader(r)
	typ, err := wire.ReadStreamType(r, s.version)
	if err != nil {
		if errors.Is(err, wire.ErrUnknownStream) || errors.Is(err, wire.ErrUnsupported) {
			s.log.Warn("refusing stream", "type", typ, "err", err)
			reset(st, broadcast.CodeUnexpectedStream)
			return
		}
		reset(st, broadcast.CodeCancel)
		return
	}
	switch typ {
	case wire.StreamAnnounce:
		if !s.admit(&s.interests, s.lim.MaxAnnounceInterests, st, "announce interest") {
			return
		}
		s.serveAnnounce(st, r, hdr) // it releases the place in interests
	case wire.StreamSubscribe:
		s.serveSubscribe(st, r, hdr)
	case wire.StreamProbe:
		if !hdr.done() || !s.admit(&s.probes, s.lim.MaxProbes, st, "probe") {
			return // a probe's header is its type alone
		}
		defer s.probes.Add(-1)
		s.serveProbe(st, r)
	case wire.StreamGoaway:
		s.handleGoaway(st, r, hdr)
	case wire.StreamTrack:
		s.serveTrack(st, r, hdr)
	case wire.StreamFetch:
		if !s.version.HasFrameTimestamps() { // lite-03/04 publishers serve no FETCH
			reset(st, broadcast.CodeUnsupported)
			return
		}
		s.serveFetch(st, r, hdr)
	default: // fetch, and anything allowed by the codec but not served here
		s.log.Debug("refusing stream", "type", typ)
		reset(st, broadcast.CodeUnsupported)
	}
}

// admit counts one more of the peer's streams of a kind in n, or refuses st
// with BoundsExceeded if limit of them are open already.
func (s *Session) admit(n *atomic.Int32, limit int, st transport.Stream, what string) bool {
	if int(n.Add(1)) > limit {
		n.Add(-1)
		s.log.Warn("refusing stream: too many", "kind", what, "limit", limit)
		reset(st, broadcast.CodeBoundsExceeded)
		return false
	}
	return true
}

// headerTimer is a stream's deadline for its header (the type and first
// message): a peer that opens streams and never completes them would
// otherwise hold their goroutines and buffers, and hold up the end of
// finished subscriptions (finishAfterGroups waits for unsorted streams).
// A timer rather than a read deadline: not every transport has those.
type headerTimer struct{ d *headerDeadline }

// headerDeadline is a headerTimer's state: settled is set once, by the
// header's arrival or by the deadline passing, so that a deadline that was
// extended (awaitGroupHeader) cannot pass after the header came.
type headerDeadline struct {
	mu      sync.Mutex
	t       *time.Timer
	settled bool
}

// awaitHeader starts a stream's header deadline; expire abandons the stream.
func (s *Session) awaitHeader(expire func()) headerTimer { return s.startHeaderDeadline(expire, nil) }

// awaitGroupHeader is awaitHeader for a group stream, whose header may be
// late through no fault of the peer's: QUIC makes a stream acceptable as
// soon as a later stream's data arrives (quic-go opens every lower stream
// ID then), or with the first bytes of its header, and the rest of it
// then waits behind the peer's other streams. Our publisher sends the
// newest group first and older ones after it, so under a steady flow an
// old group's stream can wait for the rest of the transfer; and a
// back-pressured subscription leaves the connection's window full of
// streams it does not read while its reader is slow. Stopping such a
// stream loses a group that was on its way. So the deadline passes only
// after HeaderTimeout in which the peer delivered nothing else: it starts
// again whenever the peer's group streams moved meanwhile (the accept loop
// took a stream, or a group was received), a group is being read, or the
// accept loop is away from accepting (held by back-pressure, or busy). A
// peer that abandons streams still has them stopped once it is idle; how
// many it can hold meanwhile is bounded, as before, by its stream credit.
func (s *Session) awaitGroupHeader(expire func()) headerTimer {
	progress := s.groupProgress()
	return s.startHeaderDeadline(expire, func() bool {
		p := s.groupProgress()
		excused := p != progress || s.uniBusy.Load() || s.groupsReceiving()
		progress = p
		if f := headerDeadlinePassed.Load(); f != nil {
			(*f)(s, excused)
		}
		return excused
	})
}

// groupProgress moves whenever the peer's group streams do: a count of the
// streams the accept loop took and of the groups received.
func (s *Session) groupProgress() uint64 {
	return s.uniPasses.Load() + s.counters.groupsReceived.Load()
}

// groupsReceiving tells whether a group stream of one of our subscriptions
// is being read: a group the peer is sending, which may take longer than
// HeaderTimeout (a large one) while older streams wait behind it (or one
// read ahead that back-pressure holds).
func (s *Session) groupsReceiving() bool {
	s.mu.Lock()
	subs := make([]*subscription, 0, len(s.subs))
	for _, sub := range s.subs {
		subs = append(subs, sub)
	}
	s.mu.Unlock()
	for _, sub := range subs {
		sub.mu.Lock()
		busy := sub.receiving > 0
		sub.mu.Unlock()
		if busy {
			return true
		}
	}
	return false
}

// headerDeadlinePassed, if set, is called each time a group stream's
// header deadline passes, with its session and whether it started again:
// tests wait for it (atomic: earlier tests' timers may still fire).
var headerDeadlinePassed atomic.Pointer[func(s *Session, extended bool)]

// startHeaderDeadline starts a header deadline: when it passes, extend
// (if not nil) may start it again instead, else expire abandons the stream.
func (s *Session) startHeaderDeadline(expire func(), extend func() bool) headerTimer {
	d := &headerDeadline{}
	d.mu.Lock()
	defer d.mu.Unlock()
	d.t = time.AfterFunc(s.lim.HeaderTimeout, func() {
		d.mu.Lock()
		if d.settled {
			d.mu.Unlock()
			return
		}
		if extend != nil && extend() {
			d.t.Reset(s.lim.HeaderTimeout)
			d.mu.Unlock()
			return
		}
		d.settled = true
		d.mu.Unlock()
		s.log.Debug("stream header timed out", "after", s.lim.HeaderTimeout)
		expire()
	})
	return headerTimer{d}
}

// done stops the deadline once the header is in; false if it passed first
// (the stream was abandoned: the caller drops it).
func (h headerTimer) done() bool {
	if h.d == nil {
		return true
	}
	h.d.mu.Lock()
	defer h.d.mu.Unlock()
	if h.d.settled {
		return false
	}
	h.d.settled = true
	h.d.t.Stop()
	return true
}

// stop ends the deadline whatever happened to the header.
func (h headerTimer) stop() { h.done() }

// acceptGroups starts the accept loop for the peer's group streams, once;
// our subscriptions call it before they send SUBSCRIBE, so no group stream
// of theirs can arrive before it runs. Until then group streams the peer
// opens unasked wait unread in the transport, bounded by its stream credit
// and flow-control windows (rawquic: 1000 streams, the connection's
// receive window); the loop then refuses those that match no subscription.
func (s *Session) acceptGroups() {
	if !s.groupsWanted.Load() {
		s.groupsWanted.Store(true) // before looking at uniAccepting: see stopUnwanted
	}
	if !s.uniAccepting.Load() && s.uniAccepting.CompareAndSwap(false, true) {
		s.spawn(s.acceptUniStreams)
	}
}

// acceptUniStreams hands each of the peer's group streams to a reader (see
// takeGroupStreams).
func (s *Session) acceptUniStreams() {
	var batch arrivedBatch
	s.uniBusy.Store(true) // until it first waits in AcceptUniStream
	stopped := false
	defer func() {
		if !stopped {
			s.uniBusy.Store(false)
			s.uniIdle.notify()
		}
	}()
	for {
		for s.turnWaiters.Load() > 0 { // back-pressure holds the publisher here
			free := s.turnFree.wait()
			if s.turnWaiters.Load() == 0 {
				break
			}
			select {
			case <-free:
			case <-s.ctx.Done():
				return
			}
		}
		s.uniBusy.Store(false)
		s.uniPasses.Add(1)
		s.uniIdle.notify()
		rs, err := s.conn.AcceptUniStream(s.ctx)
		s.uniBusy.Store(true)
		if err != nil {
			return
		}
		uniAccepted()
		s.takeGroupStreams(rs, &batch)
		if !s.groupsWanted.Load() && s.stopUnwanted() {
			stopped = true
			return
		}
	}
}

// stopUnwanted stops the group-stream accept loop that ran before any
// subscription of ours (to take the peer's lite-05 SETUP, normally in the
// first streams it took; if not, it is taken once the loop runs again, and
// a subscription waiting for it starts the loop; further streams the peer sends unasked wait in the transport, as
// before a first subscription on other versions), unless a subscription
// wants it meanwhile: true if the loop is to return. acceptGroups sets
// groupsWanted before it looks at uniAccepting: if it looked before the
// Store below, it saw the loop running and started none, and the Load
// after the Store sees groupsWanted, so the loop goes on.
func (s *Session) stopUnwanted() bool {
	s.uniBusy.Store(false)
	s.uniIdle.notify()
	s.uniAccepting.Store(false)
	if s.groupsWanted.Load() && s.uniAccepting.CompareAndSwap(false, true) {
		s.uniBusy.Store(true)
		return false
	}
	return true
}

// uniAccepted is called by the group-stream accept loop with each stream
// it took, before it counts it anywhere: tests hold the loop there, as a
// loaded machine may.
var uniAccepted = func() {}

// awaitUniCaughtUp waits until the group-stream accept loop has taken
// every stream that was waiting for it when called: until it is waiting in
// AcceptUniStream, or has gone back to accepting twice (the first time it
// may yet take a waiting stream). False if ctx ended first.
func (s *Session) awaitUniCaughtUp(ctx context.Context) bool {
	p0 := s.uniPasses.Load()
	for {
		idle := s.uniIdle.wait()
		if !s.uniBusy.Load() || s.uniPasses.Load() >= p0+2 {
			return true
		}
		select {
		case <-idle:
		case <-ctx.Done():
			return false
		}
	}
}

// serveProbe keeps the peer's probe stream open for the session's life. We
// have no bandwidth estimate to report; JS peers treat any error on this
// stream as fatal, so we neither reset it nor write to it.
func (s *Session) serveProbe(st transport.Stream, r *bufio.Reader) {
	stop := context.AfterFunc(s.ctx, func() { st.CancelRead(0) })
	defer stop()
	_, _ = r.WriteTo(discard{}) // until the peer or the session ends it
	_ = st.Close()
}

type discard struct{}

func (discard) Write(p []byte) (int, error) { return len(p), nil }

// handleGoaway notes the peer's GOAWAY (lite-04 and later). The peer is about to
// close; the URI of a replacement, if any, is for the application. Only the
// first counts: repeats hold nothing and are dropped quietly.
func (s *Session) handleGoaway(st transport.Stream, r *bufio.Reader, hdr headerTimer) {
	var m wire.Goaway
	if err := wire.ReadMessage(r, s.version, &m, s.lim.MaxMessageSize); err != nil {
		reset(st, codeOfWire(err))
		return
	}
	if !hdr.done() {
		return
	}
	s.goawayMu.Lock()
	first := !s.goawaySeen
	if first {
		s.goawaySeen = true
		g := s.goawayLocked()
		g.uri = m.URI
		close(g.ch)
	}
	s.goawayMu.Unlock()
	if first {
		s.log.Info("peer sent GOAWAY", "uri", m.URI)
		if s.hooks != nil && s.hooks.onGoaway != nil {
			go s.hooks.onGoaway(s, m.URI)
		}
	} else {
		s.log.Debug("peer repeated GOAWAY", "uri", m.URI)
	}
	_ = st.Close()
}

// GoingAway is closed once the peer sent GOAWAY (lite-04 and later): it is about to
// close the session. GoawayURI then says where it asked us to reconnect.
func (s *Session) GoingAway() <-chan struct{} { return s.goawayChan() }

// goawayState is made when first asked for: most sessions never see a
// GOAWAY.
type goawayState struct {
	ch  chan struct{} // closed when the peer sent GOAWAY
	uri string        // set before ch is closed
}

func (s *Session) goawayChan() chan struct{} {
	s.goawayMu.Lock()
	defer s.goawayMu.Unlock()
	return s.goawayLocked().ch
}

func (s *Session) goawayLocked() *goawayState {
	if s.goaway == nil {
		s.goaway = &goawayState{ch: make(chan struct{})}
	}
	return s.goaway
}

// GoawayURI is the URI of the peer's GOAWAY ("" for none, or before one).
func (s *Session) GoawayURI() string {
	s.goawayMu.Lock()
	defer s.goawayMu.Unlock()
	if !s.goawaySeen {
		return ""
	}
	return s.goaway.uri
}

// ErrNoGoaway is returned by Goaway on versions without a GOAWAY message
// (before lite-04).
var ErrNoGoaway = errors.New("session: this moq-lite version has no GOAWAY")

// Goaway tells the peer that this session is about to end and, if uri is
// set, where to reconnect (GOAWAY, lite-04 and later). The session keeps working; close
// it once the peer had time to leave.
func (s *Session) Goaway(ctx context.Context, uri string) error {
	if !s.awaitVersion(ctx) {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return ErrClosed
	}
	msg := wire.Goaway{URI: uri}
	if !wire.Supported(s.version, &msg) {
		return ErrNoGoaway
	}
	st, err := s.conn.OpenStream(ctx)
	if err != nil {
		return remoteErr(err)
	}
	buf := wire.AppendStreamType(nil, wire.StreamGoaway)
	if buf, err = wire.AppendMessage(buf, s.version, &msg); err == nil {
		_, err = st.Write(buf)
	}
	if err != nil {
		reset(st, broadcast.CodeCancel)
		return remoteErr(err)
	}
	st.CancelRead(0) // nothing comes back
	return st.Close()
}
