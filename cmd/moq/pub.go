package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"os"
	"time"

	"github.com/moqp2p/moqp2p/broadcast"
	"github.com/moqp2p/moqp2p/internal/pattern"
)

const pubUsage = `
usage: moq pub --broadcast NAME [--track NAME] [--listen URL]... [--connect URL]
               [--bootstrap ADDR]... [--mdns] [--frames N] [--size BYTES]
               [--group-frames K] [--rate HZ] [--wait] [--stdin] [--linger D]
       moq pub --broadcast NAME --media FILE|- [--loop] [--wait] [--listen URL]... [--connect URL]

Publishes a broadcast with one track. Frame i (group i/K, counted from 0) is
the deterministic test payload of --size bytes that the interop peers also
generate; with --stdin, each read of up to --size bytes from stdin is one
frame instead, until end of input. A finite transfer (--frames N or --stdin)
goes at the pace of its slowest subscriber, so that each gets every frame
(with --wait, from the first); with --frames 0 the track is live, at 30
frames/s unless --rate says otherwise, and a subscriber that falls behind
misses old groups. After the last frame the track is
finished, and pub serves until its subscribers are done, then prints
{"frames":N,"groups":G,"bytes":B,"sha256":"<hex>","delivered_groups":…,
"delivered_frames":…,"delivered_bytes":…} on stdout: what it produced, and
what its subscriber sessions were handed whole (for the one that got the
least). When a subscriber got less than was produced, it also says so on
stderr. A subscriber that stops responding (no acknowledgement or read for
--linger) is given up on. When a subscriber's connection is lost mid-way
(a relay cut its circuit), the transfer waits up to --linger for the
subscription to come back (through a relay node that forwards it) before
it goes on without it.

With --media it publishes video instead, as a hang broadcast (the format
@moq/watch plays: a catalog.json track, a "video" track with a group per
keyframe, an "audio" track) read from fragmented MP4, such as
  ffmpeg -i movie.mp4 -c:v libx264 -profile:v baseline -c:a aac -f mp4 \
         -movflags frag_keyframe+empty_moov+default_base_moof -
(H.264, and AAC if any), paced by its timestamps; --loop starts a file
over at its end; --wait starts it once the video has a subscriber (and the
audio too, or 2 s later). At the end it prints
{"frames":N,"keyframes":K,"codec":"avc1…","duration_us":D,"audio_frames":A}.

URLs: moql://host:port (raw QUIC; --listen makes a self-signed certificate and
prints its SHA-256 as "fingerprint: <hex>"; --connect may add /path?jwt=TOKEN
for a relay) or a libp2p multiaddr
(/ip4/0.0.0.0/udp/4001/quic-v1 to listen, …/p2p/<peer-id> to connect). Each
listening address is printed on stderr as "listening: <url>". A live
publisher (--frames 0) keeps its --connect session: after a loss (the relay
or peer restarting, the network going away) it redials with backoff, each
attempt bounded by --timeout, until interrupted. A finite transfer ends when
the peer it dialed is gone.

With --bootstrap ADDR (a multiaddr with /p2p/<peer-id>, such as the one moq
node prints) it joins the DHT through that peer and provides NAME there,
so that moq sub --bootstrap … --broadcast NAME finds it with no address in
hand. --mdns instead lets subscribers on the local network find it. With
either and no --listen multiaddr, it listens on /ip4/0.0.0.0/udp/0/quic-v1.
Listening on libp2p, it also prints tickets
for the broadcast, for moq sub --ticket: "ticket: moq…" with its addresses
and, in a DHT, the short "ticket: <peer-id>/NAME".
`

// pubOptions are what the producing loop needs.
type pubOptions struct {
	frames uint64
	size   int
	k      int
	rate   float64
	stdin  io.Reader // nil: generated payloads
	// room, if set, waits until the track has room for another group (the
	// slowest subscriber has caught up enough).
	room func(context.Context) error
}

// runPub is `moq pub`.
func runPub(ctx context.Context, std stdio, args []string) error {
	fs := flag.NewFlagSet("pub", flag.ContinueOnError)
	setUsage(fs, pubUsage)
	var nf netFlags
	nf.register(fs)
	name := fs.String("broadcast", "", "broadcast `NAME` (path) to publish (required)")
	track := fs.String("track", "data", "track `NAME`")
	frames := fs.Uint64("frames", 1000, "send `N` generated frames (0: until interrupted)")
	size := fs.Int("size", 1024, "frame size in `BYTES` (with --stdin: the largest frame)")
	k := fs.Int("group-frames", 30, "frames per group (`K`)")
	rate := fs.Float64("rate", 0, "frames per second (`HZ`; 0: as fast as possible; unset with --frames 0: 30)")
	wait := fs.Bool("wait", false, "hold the first frame until a subscriber arrives, so it gets every frame from the first")
	stdin := fs.Bool("stdin", false, "send stdin cut into frames instead of generated payloads")
	var mf pubMediaFlags
	mf.register(fs)
	linger := fs.Duration("linger", 5*time.Second, "after the last frame, give up on a subscriber that has made no progress for `D`,\nand wait up to D for subscribers to disconnect")
	if err := parseFlags(fs, args, std.stdout); err != nil {
		return err
	}
	listens, connects, err := nf.endpoints(1)
	switch {
	case err != nil:
		return err
	case *name == "":
		return usagef("pub: --broadcast is required, as in: moq pub --broadcast demo --listen moql://127.0.0.1:4443 (see moq pub -h)")
	case broadcast.CleanPath(*name) == "":
		return usagef("pub: --broadcast %q names no broadcast; give a path such as demo or room/cam", *name)
	case len(listens)+len(connects) == 0 && !nf.discovers():
		return usagef("pub: give --listen URL (to be dialed), --connect URL (to dial a relay or peer) and/or --bootstrap ADDR (to be found by name), as in: moq pub --broadcast %s --listen moql://127.0.0.1:4443", *name)
	case *size <= 0 || *size > 16<<20:
		return usagef("pub: --size must be between 1 and %d", 16<<20)
	case *k <= 0 || *k > maxGroupFrames:
		return usagef("pub: --group-frames must be between 1 and %d", maxGroupFrames)
	case math.IsNaN(*rate) || math.IsInf(*rate, 0) || *rate < 0 || (*rate > 0 && *rate < minRate):
		return usagef("pub: --rate must be 0 (as fast as possible) or a number of frames per second from %g, not %v", minRate, *rate)
	case *linger < 0:
		return usagef("pub: --linger must not be negative")
	}
	if *frames == 0 && !*stdin && !setFlag(fs, "rate") {
		// A live track generated as fast as possible would keep a core busy
		// and produce gigabytes a second for nobody: pace it like video.
		*rate = liveRate
	}
	if *mf.media != "" {
		for _, f := range []string{"frames", "size", "group-frames", "rate", "stdin"} {
			if setFlag(fs, f) {
				return usagef("pub: --%s does not apply with --media: the file's frames are published, a group per keyframe, paced by their timestamps", f)
			}
		}
		return runPubMedia(ctx, std, &nf, listens, connects, *name, mf, *wait, *linger)
	}
	log := nf.logger(std.stderr)
	opts := pubOptions{frames: *frames, size: *size, k: *k, rate: *rate}
	if *stdin {
		opts.stdin = std.stdin
	}

	listens = nf.reachable(listens)
	n, err := newNode(ctx, nodeConfig{listens: listens, connects: connects, interest: []string{}, incoming: true, net: &nf, log: log})
	if err != nil {
		return err
	}
	defer n.close()
	subs := watchSessions(n)
	defer subs.stop()

	// A finite transfer (--frames N, --stdin) goes at the pace of its
	// slowest subscriber, so that it gets every frame; a live one (--frames
	// 0) keeps going and its cache drops old groups for a subscriber that
	// falls behind. Either way a group holds all its frames.
	finite := *stdin || *frames > 0
	lim := broadcast.Limits{
		GroupMaxFrames: max(*k, broadcast.DefaultGroupMaxFrames),
		GroupMaxBytes:  max(int64(*k)*int64(*size), broadcast.DefaultGroupMaxBytes),
		Backpressure:   finite,
	}
	prod := broadcast.New(broadcast.Config{Limits: lim})
	defer prod.Finish()
	tp, err := prod.CreateTrack(broadcast.Track{Name: *track})
	if err != nil {
		return err
	}
	var dialed peerSession
	var peerGone <-chan struct{}
	var refusal func() error // set for a kept link: why the peer refused it
	if !finite && len(connects) > 0 {
		// Live: the session to the peer or relay dialed is kept, redialed
		// after every loss, so that the stream outlives its restarts; a
		// refusal (Unauthorized) ends the run like a lost session.
		release, refused, why, err := n.publishAndKeep(ctx, *name, prod.Consume(), connects, std.stderr, subs.add)
		if err != nil {
			return err
		}
		defer release()
		peerGone, refusal = refused, why
	} else {
		dialed, peerGone, err = n.publishAndDial(ctx, *name, prod.Consume(), connects, std.stderr)
		if err != nil {
			return err
		}
		if dialed != nil {
			subs.add(dialed)
		}
	}

	if f, ok := std.stdin.(*os.File); ok && *stdin && isTerminal(f) {
		// Typing into pub is rarely what a newcomer meant by --stdin: say
		// what it does rather than sit silently on the terminal.
		fmt.Fprintln(std.stderr, "pub: reading frames from this terminal, a line each; end with Ctrl-D (to send a file: moq pub --stdin … < FILE)")
	}
	var col pattern.Digest
	if *wait {
		log.Debug("waiting for a subscriber")
		select {
		case <-tp.Used():
		case <-peerGone:
			if refusal != nil {
				return refusal()
			}
			return sessionEnded(dialed)
		case <-ctx.Done():
			printSummary(std.stdout, subs.summary(col.Summary())) // interrupted: nothing sent
			return nil
		}
	}

	t := newTally(n)
	prog := startProgress(std.stderr, nf.quiet, "sent", func(frames uint64) status {
		lt := t.read(ctx, true)
		return status{groups: (frames + uint64(*k) - 1) / uint64(*k), skipped: lt.skipped,
			rtt: lt.rtt, peers: lt.peers, subscribers: lt.subscribers}
	})
	if finite {
		opts.room = func(ctx context.Context) error {
			subs.holdForReturn(ctx, tp, *linger)
			return subs.waitRoom(ctx, tp, *linger)
		}
	}
	err = produce(ctx, tp, opts, &col, prog, peerGone)
	_ = tp.Finish()
	prog.close()
	if err != nil {
		printSummary(std.stdout, subs.summary(col.Summary()))
		switch {
		case errors.Is(err, errStalled):
			return fmt.Errorf("gave up after %d of the frames: the subscribers made no progress for %s (--linger)", col.Summary().Frames, *linger)
		case !errors.Is(err, errPeerGone):
			return err
		case refusal != nil:
			return refusal()
		case hungUp(dialed): // the subscriber had enough (sub --count)
			return nil
		}
		return sessionEnded(dialed)
	}

	// Serve until the subscribers have read the end of the track (the
	// session stops consuming it then), and give them a moment to hang up:
	// closing first could cut groups still in flight. A subscriber that
	// vanished would hold this until its connection timed out: give up on
	// it once it has made no progress for --linger.
	if ctx.Err() == nil {
		if subs.waitServed(ctx, tp.Unused(), peerGone, *linger) {
			n.waitSessionsDone(ctx, *linger)
		} else {
			log.Warn(fmt.Sprintf("gave up on the subscribers: no progress for %s (--linger)", *linger))
		}
	}
	sum := subs.summary(col.Summary())
	printSummary(std.stdout, sum)
	switch {
	case ctx.Err() != nil:
	case *stdin && sum.Frames == 0:
		log.Warn("stdin was empty: nothing was published")
	case sum.subscribers == 0 && sum.Groups > 0:
		// pub's default, a finite transfer with no --wait, is over before a
		// subscriber started by hand can connect.
		log.Warn(fmt.Sprintf("no subscriber came: the %d frames went to no one; give --wait to hold them until one subscribes, "+
			"or --frames 0 to publish live until interrupted", sum.Frames))
	case sum.DeliveredFrames < sum.Frames:
		// Frames, not groups: a subscriber that hangs up once it has every
		// frame can end the session before the last group's end is
		// counted as sent.
		log.Warn(fmt.Sprintf("delivered %d of %d groups (%d of %d frames) to the subscriber that got the least",
			sum.DeliveredGroups, sum.Groups, sum.DeliveredFrames, sum.Frames))
	}
	return nil
}

// liveRate is --rate's default for a live track of generated frames
// (--frames 0), in frames per second.
const liveRate = 30

// minRate is the slowest --rate: one frame every 1000 s.
const minRate = 0.001

var errPeerGone = errors.New("peer gone")

// produce writes the frames into the track, K per group, at the given rate.
// An interrupt (ctx) ends it early without error.
func produce(ctx context.Context, tp *broadcast.TrackProducer, o pubOptions, col *pattern.Digest,
	prog *progress, peerGone <-chan struct{}) error {
	var next func() ([]byte, error)
	if o.stdin != nil {
		next = stdinFrames(ctx, o.stdin, o.size)
	} else {
		var i uint64
		next = func() ([]byte, error) {
			if o.frames > 0 && i == o.frames {
				return nil, io.EOF
			}
			i++
			return pattern.Payload(i-1, o.size), nil
		}
	}
	var g *broadcast.GroupProducer
	defer func() {
		if g != nil {
			_ = g.Finish()
		}
	}()
	start := time.Now()
	var timer *time.Timer
	for i := uint64(0); ; i++ {
		if o.rate > 0 {
			if d := time.Until(start.Add(time.Duration(float64(i) / o.rate * float64(time.Second)))); d > 0 {
				if timer == nil {
					timer = time.NewTimer(d)
					defer timer.Stop()
				} else {
					timer.Reset(d)
				}
				select {
				case <-timer.C:
				case <-ctx.Done():
					return nil
				case <-peerGone:
					return errPeerGone
				}
			}
		}
		select {
		case <-ctx.Done():
			return nil
		case <-peerGone:
			return errPeerGone
		default:
		}
		f, err := next()
		if errors.Is(err, io.EOF) {
			return nil
		} else if err != nil {
			return err
		}
		if i%uint64(o.k) == 0 {
			if g != nil {
				_ = g.Finish()
			}
			if o.room != nil {
				if err := o.room(ctx); err != nil {
					if ctx.Err() != nil {
						return nil // interrupted
					}
					return err
				}
			}
			if g, err = tp.AppendGroup(); err != nil {
				return err
			}
		}
		if err := g.WriteFrame(f); err != nil {
			return err
		}
		col.Add(g.Sequence(), f)
		prog.add(len(f))
	}
}

// stdinFrames returns a source of frames read from r, one per read of up to
// size bytes. Reading happens on its own goroutine so that an interrupt is
// not stuck behind a blocked read; the goroutine ends with the input (the
// process exits soon after an interrupt anyway).
func stdinFrames(ctx context.Context, r io.Reader, size int) func() ([]byte, error) {
	type chunk struct {
		b   []byte
		err error
	}
	ch := make(chan chunk, 16)
	go func() {
		defer close(ch)
		for {
			buf := make([]byte, size)
			n, err := r.Read(buf)
			if n > 0 {
				select {
				case ch <- chunk{b: buf[:n:n]}:
				case <-ctx.Done():
					return
				}
			}
			if err != nil {
				if !errors.Is(err, io.EOF) {
					select {
					case ch <- chunk{err: fmt.Errorf("stdin: %w", err)}:
					case <-ctx.Done():
					}
				}
				return
			}
		}
	}()
	return func() ([]byte, error) {
		select {
		case c, ok := <-ch:
			if !ok {
				return nil, io.EOF
			}
			return c.b, c.err
		case <-ctx.Done():
			return nil, io.EOF
		}
	}
}
