package main

import (
	"bufio"
	"cmp"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/moqp2p/moqp2p/broadcast"
	"github.com/moqp2p/moqp2p/internal/pattern"
	"github.com/moqp2p/moqp2p/moq"
	"github.com/moqp2p/moqp2p/session"
)

const subUsage = `
usage: moq sub --broadcast NAME [--track NAME] (--connect URL | --listen URL | --bootstrap ADDR...)
               [--count N] [--out FILE|-] [--fingerprint HEX | --insecure] [--max-outage D]
       moq sub --ticket TICKET [--track NAME] [--bootstrap ADDR...] [--count N] [--out FILE|-]
       moq sub --broadcast NAME --media FILE|- (--connect URL | ...) [--count N]

Subscribes to a track of a peer's broadcast and writes the payloads to --out
(- is stdout) in group order, each group's frames in arrival order. Exits
after --count frames or when the publisher ends the track, printing
{"frames":N,"groups":G,"bytes":B,"sha256":"<hex>","skipped_groups":S} on
stdout (on stderr when --out is -); the digest covers the payloads ordered by
(group, frame), so two runs compare equal whatever order groups arrived in.

A subscriber slower than the network holds the publisher back (QUIC flow
control) rather than dropping data; pub paces a finite transfer to it. A
live publisher may drop old groups instead: without --out (or with --count)
sub skips a group missing for 500 ms, counts it in skipped_groups and warns
on stderr. With --out and no --count, the output is the whole track from
group 0 or an error: sub waits for late groups, and if the track ends
without some (or one is reset) it exits non-zero naming them. A live
publisher (pub --frames 0) starts a new subscriber at its latest group, so
such a transfer has no group 0 to wait for: sub warns after 3 s; take a
live track with --count N, or without --out.

A live subscriber (no --out, or --count; not --media) outlives its
publisher's session: when the session is lost (the publisher restarted,
was killed, or its network went away) it prints "lost: REASON;
resubscribing", redials the same --connect URL or peer with backoff (by
name: any provider of NAME; with --listen: whoever connects and announces
NAME), resubscribes and goes on at the publisher's latest group, printing
"resumed: after D, N groups missed". It gives up once --max-outage has
passed since the loss without a group arriving (a resubscription that a
relay takes and then ends does not count). If the --connect or --ticket
peer closes or refuses the session as Unauthorized (code 6: an expired
token, an untrusted peer; HTTP 401 or 403 from a WebSocket server), sub
exits at once naming the refusal. A file transfer (--out without --count) does not
resubscribe: what the lost session carried is lost, and sub fails naming
the groups.

With --media it plays a hang broadcast (moq pub --media, @moq/publish):
it reads the catalog and writes the first video rendition (H.264) and the
first AAC one to FILE as fragmented MP4, a fragment per frame, so
"moq sub --media - ... | ffplay -" plays it live.

With --listen, it waits for a peer to connect and announce the broadcast.
With --bootstrap (or --mdns) and no --connect, it finds the broadcast by
name: it joins the DHT through the bootstrap peers (moq node prints an
address for them), looks up who provides NAME (moq pub --bootstrap does)
and subscribes there, giving up after --timeout. With --ticket, it
subscribes to the broadcast at the peer the ticket names (moq pub prints
tickets): the long form (moq…) holds the peer's addresses, the short one
(<peer-id>/<broadcast>) needs --bootstrap to find them.
`

// runSub is `moq sub`.
func runSub(ctx context.Context, std stdio, args []string) error {
	fs := flag.NewFlagSet("sub", flag.ContinueOnError)
	setUsage(fs, subUsage)
	var nf netFlags
	nf.register(fs)
	name := fs.String("broadcast", "", "broadcast `NAME` (path) to subscribe to (required unless --ticket)")
	ticket := fs.String("ticket", "", "subscribe to the broadcast and peer this `TICKET` names (moq pub prints it)")
	track := fs.String("track", "data", "track `NAME`")
	count := fs.Uint64("count", 0, "exit after `N` frames (0: when the track ends)")
	out := fs.String("out", "", "write payloads to `FILE` (- for stdout)")
	media := fs.String("media", "", "play a hang broadcast: write its video as fragmented MP4 to `FILE` (- for stdout)")
	maxOutage := fs.Duration("max-outage", 30*time.Second, "a live subscriber gives up once no group has come for `D` since its publisher was lost (0: never)")
	if err := parseFlags(fs, args, std.stdout); err != nil {
		return err
	}
	listens, connects, err := nf.endpoints(1)
	if err != nil {
		return err
	}
	src, err := parseSource("sub", &nf, listens, connects, *name, *ticket)
	if err != nil {
		return err
	}
	if *media != "" {
		return runSubMedia(ctx, std, &nf, listens, connects, src, *media, *count)
	}
	src.track = *track
	log := nf.logger(std.stderr)

	summaryTo := std.stdout
	var w io.Writer
	switch *out {
	case "":
	case "-":
		w, summaryTo = std.stdout, std.stderr
	default:
		f, err := os.Create(*out)
		if err != nil {
			return err
		}
		defer f.Close()
		w = f
	}

	n, err := newNode(ctx, nodeConfig{listens: listens, connects: connects, dials: src.dials(),
		interest: interestFor(src.name), incoming: len(listens) > 0 && !src.byName, net: &nf, log: log})
	if err != nil {
		return err
	}
	defer n.close()

	// Writing a whole track to a file, every group from 0 must arrive
	// whole: the stage waits for a late group instead of skipping it, and
	// a lost one is an error. With --count it takes what comes, like a
	// live subscriber, on a track that outlives its sessions.
	strict := w != nil && *count == 0
	var tc *broadcast.TrackConsumer
	var tr *moq.ResilientTrack
	refusal := noRefusal // why the kept link's peer refused us, if it did
	if strict {
		var s peerSession
		if s, tc, _, err = n.subscribe(ctx, std.stderr, src); err != nil {
			return err
		}
		if s != nil {
			defer s.Close("done")
		}
	} else {
		var release func()
		if tr, release, refusal, err = n.subscribeLive(ctx, std.stderr, src, *maxOutage); err != nil {
			return err
		}
		defer release()
		tc = tr.TrackConsumer
	}

	logPaths(ctx, n, "subscribed")
	t := newTally(n)
	live := func(uint64) status {
		lt := t.read(ctx, false)
		return status{groups: lt.groups, skipped: lt.skipped, rtt: lt.rtt, peers: lt.peers, subscribers: -1}
	}
	r := &receiver{count: *count, strict: strict, log: log, prog: startProgress(std.stderr, nf.quiet, "received", live)}
	if w != nil {
		r.out = bufio.NewWriterSize(w, 64<<10)
	}
	var gaps sync.WaitGroup
	gctx, stopGaps := context.WithCancel(ctx)
	if tr != nil {
		gaps.Go(func() { printGaps(gctx, tr, r.prog) })
	}
	err = r.run(ctx, tc)
	if why := refusal(); why != nil && errors.Is(err, broadcast.ErrCancelled) {
		err = why // the cancellation is watchRefusal's close
	}
	if tr != nil && errors.Is(err, broadcast.ErrNotFound) && !errors.Is(err, moq.ErrOutage) {
		// A live track ends with NotFound only when its upstream (a relay
		// that took the subscription) still announces the broadcast: the
		// track is what is missing, as a direct subscription is told.
		cause := err
		for u := errors.Unwrap(cause); u != nil; u = errors.Unwrap(cause) {
			cause = u
		}
		err = fmt.Errorf("unknown track %q: broadcast %q is there but not this track (%v)", src.track, src.name, cause)
	}
	logPaths(ctx, n, "track ended")
	if tr != nil {
		tr.Close()
	} else {
		tc.Close()
	}
	stopGaps()
	gaps.Wait()
	r.prog.close()
	printSummary(summaryTo, r.summary())
	switch {
	case err != nil:
		return err
	case r.writeErr() != nil:
		return fmt.Errorf("--out: %w", r.writeErr())
	}
	return nil
}

// logPaths logs (with -v) the path each libp2p session runs on: direct,
// hole-punched or relayed, and why. when says at which point.
func logPaths(ctx context.Context, n *node, when string) {
	for _, s := range n.sessions(ctx) {
		ps, ok := s.(*p2pSession)
		if !ok || ps.s.RemotePeer() == "" {
			continue
		}
		p := ps.s.Path()
		n.log.Debug("session path", "when", when, "peer", ps.s.RemotePeer(), "path", p.Kind.String(), "limited", p.Limited, "reason", p.Reason)
	}
}

// subscribeOptions are those of every subscription the CLI makes: with
// back-pressure, a group stream is left unread while the received track is
// full, so a reader slower than the network holds the publisher back
// (through QUIC flow control) instead of losing groups here. What the
// publisher then does is its choice: pub paces a finite transfer to it, a
// live track drops old groups, and sub reports the gaps.
var subscribeOptions = session.SubscribeOptions{Backpressure: true}

// subscribeLive subscribes for a live reader, on a track that outlives
// the publisher's session (moq.SubscribeResilient): pinned to the --connect
// endpoint or the ticket's peer on a kept link (redialed with backoff after
// a loss), else any session or provider announcing the name. The first
// subscription is made on the first session as subscribe's is, so that
// its failures read the same. release detaches the link after the track
// is closed.
//
// A kept link whose peer closes or refuses a session as Unauthorized (an
// expired token, an untrusted peer) ends the track at once, and refusal
// then says why: redialing with the same credentials would be refused
// again until the outage bound.
func (n *node) subscribeLive(ctx context.Context, w io.Writer, src source, maxOutage time.Duration) (tr *moq.ResilientTrack, release func(), refusal func() error, err error) {
	opts := moq.ResilientOptions{SubscribeOptions: subscribeOptions, MaxOutage: maxOutage}
	var s peerSession
	switch {
	case len(src.connects) > 0 && src.connects[0].kind != kindP2P:
		s, opts.Link, err = n.keepOpen(ctx, src.connects[0])
	case len(src.connects) > 0:
		if s, err = n.connect(ctx, src.connects[0]); err == nil {
			opts.Link = n.p2p.m.Keep(src.connects[0].addrInfo(), moq.KeepOptions{})
		}
	case src.ticket != nil:
		if s, err = n.resolve(ctx, *src.ticket); err == nil {
			opts.Link = n.p2p.m.Keep(peer.AddrInfo{ID: src.ticket.Peer, Addrs: src.ticket.Addrs}, moq.KeepOptions{})
		}
	case src.byName:
		n.printListening(w)
		sctx, cancel := context.WithTimeout(ctx, n.cfg.net.timeout)
		defer cancel()
		n.log.Debug("looking the broadcast up", "broadcast", src.name)
		if tr, err = n.p2p.m.SubscribeResilient(sctx, src.name, src.track, opts); err != nil {
			return nil, nil, nil, n.byNameError(ctx, src.name, err)
		}
		return tr, func() {}, noRefusal, nil
	default:
		n.printListening(w)
		if _, err = awaitAnnounced(ctx, n, src.name); err != nil {
			return nil, nil, nil, err
		}
		// Unpinned: this session announces the name now, and after a loss
		// whichever session announces it (the publisher connecting again)
		// is the next upstream.
		if tr, err = n.p2p.m.SubscribeResilient(ctx, src.name, src.track, opts); err != nil {
			return nil, nil, nil, err
		}
		return tr, func() {}, noRefusal, nil
	}
	release = func() {
		if opts.Link == nil {
			return
		}
		// Done with the publisher: close the session too, as a plain
		// subscription's end does, rather than leave it to the node's
		// shutdown (group streams the publisher resets meanwhile would be
		// logged).
		st := opts.Link.State()
		opts.Link.Detach()
		if st.Session != nil {
			_ = st.Session.Close(broadcast.CodeCancel, "done")
		}
	}
	if err != nil {
		release()
		return nil, nil, nil, err
	}
	// The link's session is s: its first subscription fails as
	// subscribeWithin's would.
	sctx, cancel := context.WithTimeout(ctx, n.cfg.net.timeout)
	defer cancel()
	if tr, err = n.p2p.m.SubscribeResilient(sctx, src.name, src.track, opts); err != nil {
		if ps, ok := s.(*p2pSession); ok { // while its session is still up
			err = ps.subscribeErr(src.name, src.track, err)
		}
		release()
		return nil, nil, nil, subscribeError(ctx, s, src.name, n.cfg.net.timeout, err)
	}
	refusal, stop := watchRefusal(opts.Link, src.connects, tr)
	detach := release
	return tr, func() { stop(); detach() }, refusal, nil
}

func noRefusal() error { return nil }

// watchRefusal closes tr when its kept link l (to connects[0], or the
// ticket's peer) is refused as Unauthorized; refusal then says why. stop
// ends the watch.
func watchRefusal(l *moq.Link, connects []endpoint, tr *moq.ResilientTrack) (refusal func() error, stop func()) {
	peerName := "the peer"
	if len(connects) > 0 {
		peerName = connects[0].String()
	}
	ctx, cancel := context.WithCancel(context.Background())
	var why atomic.Pointer[error]
	done := make(chan struct{})
	go func() {
		defer close(done)
		for c := range l.Changes(ctx) {
			if c.Err != nil && isRefusal(c.Err) {
				err := fmt.Errorf("%s refused the session: %w", peerName, c.Err)
				why.Store(&err)
				tr.Close()
				return
			}
		}
	}()
	refusal = func() error {
		if p := why.Load(); p != nil {
			return *p
		}
		return nil
	}
	return refusal, func() { cancel(); <-done }
}

// keepOpen dials e (moql://, ws://, https://) as connect does and keeps
// the session it opens on a link that redials e after a loss.
func (n *node) keepOpen(ctx context.Context, e endpoint) (peerSession, *moq.Link, error) {
	started := time.Now()
	cctx, cancel := context.WithTimeout(ctx, n.cfg.net.timeout)
	defer cancel()
	c, via, err := n.dialConn(cctx, e)
	if err != nil {
		return nil, nil, n.connectError(cctx, e, err, started)
	}
	l := n.keepLink(e, c)
	s, err := l.Session(cctx)
	if err != nil {
		l.Detach()
		return nil, nil, n.connectError(cctx, e, err, started)
	}
	n.log.Debug("connected", "peer", e.String(), "via", via)
	return &p2pSession{s: s, name: e.String(), via: via}, l, nil
}

// printGaps tells the user when a live track loses its publisher and when
// it resumes, with the groups missed, until ctx ends.
func printGaps(ctx context.Context, tr *moq.ResilientTrack, prog *progress) {
	for ev := range tr.Events(ctx) {
		switch ev.Kind {
		case moq.TrackLost:
			reason := "the session ended"
			switch {
			case errors.Is(ev.Err, broadcast.ErrNotFound):
				// A relay says so when the publisher it had the
				// broadcast from is gone: not a wrong name.
				reason = "the broadcast is gone from " + cmp.Or(ev.Peer.String(), "the peer") + " (" + oneLine(ev.Err.Error()) + ")"
			case ev.Err != nil:
				reason = oneLine(ev.Err.Error())
			}
			if broadcast.CodeOf(ev.Err) == broadcast.CodeUnauthorized {
				// A refusal of the kept link's session ends the track
				// (watchRefusal); one of a subscription is retried, and
				// "resumed:" says so if it then succeeds.
				prog.printf("lost: %s\n", reason)
				continue
			}
			prog.printf("lost: %s; resubscribing\n", reason)
		case moq.TrackResumed:
			prog.printf("resumed: after %s, %d groups missed\n", ev.Outage.Round(time.Millisecond), ev.Skipped)
		}
	}
}

// subscribeWithin subscribes on a session we dialed: the peer should
// answer (or announce the broadcast, over libp2p) within d.
func subscribeWithin(ctx context.Context, s peerSession, name, track string, d time.Duration) (*broadcast.TrackConsumer, error) {
	sctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	tc, err := s.Subscribe(sctx, name, track)
	return tc, subscribeError(ctx, s, name, d, err)
}

// awaitAndSubscribe waits for a peer to connect and announce the broadcast,
// then subscribes to it on that session.
func awaitAndSubscribe(ctx context.Context, n *node, name, track string) (peerSession, *broadcast.TrackConsumer, error) {
	s, err := awaitAnnounced(ctx, n, name)
	if err != nil {
		return nil, nil, err
	}
	tc, err := s.Subscribe(ctx, name, track)
	if err != nil {
		return nil, nil, subscribeError(ctx, s, name, 0, err)
	}
	return s, tc, nil
}

// awaitAnnounced waits for a peer to connect and announce the broadcast.
func awaitAnnounced(ctx context.Context, n *node, name string) (peerSession, error) {
	var wg sync.WaitGroup
	defer wg.Wait() // after cancel, which ends the watchers
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	found := make(chan peerSession, 1)
	watch := func(s peerSession) {
		wg.Go(func() {
			for path, b := range s.Announced(wctx, name) {
				if b != nil && path == broadcast.CleanPath(name) {
					select {
					case found <- s:
					default:
					}
					return
				}
			}
		})
	}
	for {
		select {
		case s := <-n.incoming:
			n.log.Debug("session accepted; waiting for the broadcast", "peer", s.Peer(), "via", s.Via())
			watch(s)
		case s := <-found:
			return s, nil
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

// subscribeError turns a failed subscription into one clear sentence.
func subscribeError(ctx context.Context, s peerSession, name string, waited time.Duration, err error) error {
	switch {
	case err == nil:
		return nil
	case ctx.Err() != nil:
		return ctx.Err()
	case errors.Is(err, broadcast.ErrNotFound):
		return fmt.Errorf("unknown broadcast %q: %s does not publish it", name, s.Peer())
	case errors.Is(err, context.DeadlineExceeded):
		return fmt.Errorf("unknown broadcast %q: %s did not announce it within %s", name, s.Peer(), waited)
	}
	return fmt.Errorf("subscribe to %q at %s: %w", name, s.Peer(), err)
}

// receiver reads a track through the in-order stage, so the digest, the
// output and --count all see the same frames in the same order: by group
// sequence, each group's frames as they came.
type receiver struct {
	count  uint64 // stop after this many frames; 0: at the track's end
	strict bool   // a file transfer: every group or an error
	log    *slog.Logger
	out    *bufio.Writer // nil: no --out
	prog   *progress

	mu      sync.Mutex // the emitting goroutine against summary
	col     pattern.Digest
	emitted uint64
	outErr  error
	missed  groupSet
}

// errLost is a file transfer that arrived incomplete.
var errLost = errors.New("groups lost")

// run receives until the track ends, count frames have arrived, or ctx ends
// (an interrupt: not an error). An interrupt returns at once, even while
// the output is blocked on a slow reader; the emitting goroutine then ends
// with the process.
func (r *receiver) run(ctx context.Context, tc *broadcast.TrackConsumer) error {
	stage := newInOrder(r.strict, r.log, r.emit, r.flush)
	done := make(chan error, 1)
	go func() {
		err := stage.run(ctx, tc)
		if ctx.Err() == nil {
			r.flush()
		}
		done <- err
	}()
	var err error
	select {
	case err = <-done:
	case <-ctx.Done():
		// Wait for the stage only as long as it takes to notice: a write
		// blocked on a full pipe does not hold up the exit.
		select {
		case <-done:
		case <-time.After(interruptGrace):
		}
	}
	missed, late := stage.result()
	r.mu.Lock()
	r.missed = missed
	r.mu.Unlock()
	if late > 0 {
		r.log.Debug("groups arrived after they were skipped", "count", late)
	}
	switch {
	case ctx.Err() != nil:
		// Interrupted: not a failure (a live track has no other end), but
		// a file cut short must not pass for a whole one.
		if r.out != nil && !errors.Is(err, io.EOF) {
			r.mu.Lock()
			n := r.emitted
			r.mu.Unlock()
			r.log.Warn(fmt.Sprintf("interrupted before the track ended: --out has the first %d frames only", n))
		}
		return nil
	case err != nil && !errors.Is(err, io.EOF):
		return fmt.Errorf("subscription ended: %w", err)
	case missed.count() > 0 && r.strict:
		return fmt.Errorf("%w: %d group(s) did not arrive whole: %s; the output is incomplete", errLost, missed.count(), missed)
	case missed.count() > 0:
		r.log.Warn("skipped groups that did not arrive in time", "count", missed.count(), "groups", missed.String())
	}
	return nil
}

// interruptGrace is how long an interrupted sub waits for its output to
// settle before it exits anyway.
const interruptGrace = 200 * time.Millisecond

// emit takes the next frame in order.
func (r *receiver) emit(seq uint64, f []byte) bool {
	r.mu.Lock()
	r.col.Add(seq, f)
	r.emitted++
	emitted, outErr := r.emitted, r.outErr
	r.mu.Unlock()
	r.prog.add(len(f))
	if r.out != nil && outErr == nil {
		_, outErr = r.out.Write(f)
		r.setOutErr(outErr)
	}
	return outErr == nil && (r.count == 0 || emitted < r.count)
}

// flush pushes written frames out while the stage waits for more.
func (r *receiver) flush() {
	if r.out == nil {
		return
	}
	r.mu.Lock()
	failed := r.outErr != nil
	r.mu.Unlock()
	if !failed {
		r.setOutErr(r.out.Flush())
	}
}

func (r *receiver) setOutErr(err error) {
	if err != nil {
		r.mu.Lock()
		if r.outErr == nil {
			r.outErr = err
		}
		r.mu.Unlock()
	}
}

// summary is what sub prints at the end.
func (r *receiver) summary() subSummary {
	r.mu.Lock()
	defer r.mu.Unlock()
	return subSummary{Summary: r.col.Summary(), SkippedGroups: r.missed.count()}
}

// writeErr is the first error writing --out.
func (r *receiver) writeErr() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.outErr
}
