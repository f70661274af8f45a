package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/moqp2p/moqp2p/broadcast"
	"github.com/moqp2p/moqp2p/hang"
	"github.com/moqp2p/moqp2p/hang/fmp4"
	"github.com/moqp2p/moqp2p/moq/server/watch"
)

// Priorities of hang's tracks, @moq/hang's (catalog/priority.js): the
// catalog before the media it describes.
const (
	catalogPriority = 100
	audioPriority   = 80
	videoPriority   = 60
)

// mediaLimits are the publishing broadcast's: live (old groups are
// dropped for a subscriber that falls behind, as a player wants), a group
// holds a whole group of pictures.
var mediaLimits = broadcast.Limits{GroupMaxBytes: fmp4.MaxBoxBytes, GroupMaxFrames: 4096}

// openMedia opens --media: a file, or stdin for "-".
func openMedia(path string, stdin io.Reader) (io.ReadCloser, error) {
	if path == "-" {
		return io.NopCloser(stdin), nil
	}
	return os.Open(path)
}

// newMP4Reader reads MP4 from in: a file directly (so a progressive MP4,
// whose samples its moov indexes, can be read by seeking), a pipe
// buffered.
func newMP4Reader(in io.Reader) (*fmp4.Reader, error) {
	if _, ok := in.(io.Seeker); !ok {
		in = bufio.NewReaderSize(in, 64<<10)
	}
	return fmp4.NewReader(in)
}

// mediaSource is a hang broadcast fed from MP4.
type mediaSource struct {
	prod    *broadcast.Producer
	catalog *hang.CatalogWriter
	video   *hang.TrackWriter
	audio   *hang.TrackWriter // nil without an audio track
}

// newMediaSource reads the init segment of in and creates the broadcast's
// tracks and catalog.
func newMediaSource(in io.Reader) (*mediaSource, *fmp4.Reader, error) {
	rd, err := newMP4Reader(in)
	if err != nil {
		return nil, nil, err
	}
	prod := broadcast.New(broadcast.Config{Limits: mediaLimits})
	ct, err := prod.CreateTrack(broadcast.Track{Name: hang.CatalogTrack, Priority: catalogPriority})
	if err != nil {
		return nil, nil, err
	}
	vt, err := prod.CreateTrack(hang.MediaTrack(fmp4.VideoTrack, videoPriority))
	if err != nil {
		return nil, nil, err
	}
	ms := &mediaSource{prod: prod, catalog: hang.NewCatalogWriter(ct), video: hang.NewTrackWriter(vt)}
	if rd.Catalog().Audio != nil {
		at, err := prod.CreateTrack(hang.MediaTrack(fmp4.AudioTrack, audioPriority))
		if err != nil {
			return nil, nil, err
		}
		ms.audio = hang.NewTrackWriter(at)
	}
	if err := ms.catalog.Write(rd.Catalog()); err != nil {
		return nil, nil, err
	}
	return ms, rd, nil
}

// mediaStats are what a media publisher or subscriber reports.
type mediaStats struct {
	Frames    int    `json:"frames"` // video
	Keyframes int    `json:"keyframes"`
	Codec     string `json:"codec"`
	// AudioFrames counts the audio frames published or written.
	AudioFrames int `json:"audio_frames,omitempty"`
	// Duration is the span of the timestamps, in microseconds.
	Duration uint64 `json:"duration_us"`
}

// pace publishes the samples of rd, each when its timestamp is due
// (start + timestamp - first), offset by base microseconds. It returns the
// timestamp after the last sample (its end), for --loop.
func (ms *mediaSource) pace(ctx context.Context, rd *fmp4.Reader, start time.Time, base uint64, st *mediaStats) (uint64, error) {
	end := base
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		s, err := rd.Next()
		if errors.Is(err, io.EOF) {
			return end, nil
		}
		if err != nil {
			return end, err
		}
		ts := base + s.Timestamp
		if wait := time.Until(start.Add(time.Duration(ts) * time.Microsecond)); wait > 0 {
			timer.Reset(wait)
			select {
			case <-timer.C:
			case <-ctx.Done():
				return end, ctx.Err()
			}
		}
		if s.Track == fmp4.AudioTrack {
			// Every audio frame decodes alone: a group each, as
			// @moq/publish sends audio.
			if err := ms.audio.WriteFrame(ts, true, s.Data); err != nil {
				return end, err
			}
			st.AudioFrames++
		} else {
			if err := ms.video.WriteFrame(ts, s.Keyframe, s.Data); err != nil {
				return end, err
			}
			st.Frames++
			if s.Keyframe {
				st.Keyframes++
			}
		}
		end = max(end, ts+s.Duration)
		st.Duration = end
	}
}

// finish finishes the broadcast's tracks: subscribers read to their end.
// The broadcast stays published (close ends it): ending it now would
// unannounce it, and subscribers would lose the groups still in flight.
func (ms *mediaSource) finish() {
	if ms.audio != nil {
		_ = ms.audio.Close()
	}
	_ = ms.video.Close()
	_ = ms.catalog.Close()
}

// close finishes the tracks and the broadcast.
func (ms *mediaSource) close() {
	ms.finish()
	ms.prod.Finish()
}

// runMedia publishes --media until its end (or, with --loop, until ctx
// ends), live-paced by its timestamps; --loop rereads the file and goes on
// with timestamps after the previous round's. It returns when the last
// frame is published; the caller lingers for subscribers. A round that
// publishes no frame is an error: there is nothing to publish, and --loop
// would go round without end.
func runMedia(ctx context.Context, path string, stdin io.Reader, loop bool, ms *mediaSource, rd *fmp4.Reader, in io.Closer, st *mediaStats) error {
	st.Codec = firstCodec(rd.Catalog())
	start := time.Now()
	var base uint64
	for {
		before := st.Frames + st.AudioFrames
		end, err := ms.pace(ctx, rd, start, base, st)
		_ = in.Close()
		if err == nil && ctx.Err() == nil && st.Frames+st.AudioFrames == before {
			return fmt.Errorf("--media %s: no frames (an MP4 with tracks but no samples?)", path)
		}
		if err != nil || !loop || ctx.Err() != nil {
			return err
		}
		f, err := openMedia(path, stdin)
		if err != nil {
			return err
		}
		if rd, err = newMP4Reader(f); err != nil {
			_ = f.Close()
			return fmt.Errorf("--loop: %w", err)
		}
		in, base = f, end
	}
}

// firstCodec names the first video rendition's codec, "" if none.
func firstCodec(c *hang.Catalog) string {
	if r, ok := firstRendition(c); ok {
		return c.Video.Renditions[r].Codec
	}
	return ""
}

// firstRendition picks the video rendition to play: the first by name.
func firstRendition(c *hang.Catalog) (string, bool) {
	if c == nil || c.Video == nil || len(c.Video.Renditions) == 0 {
		return "", false
	}
	names := make([]string, 0, len(c.Video.Renditions))
	for n := range c.Video.Renditions {
		names = append(names, n)
	}
	sort.Strings(names)
	return names[0], true
}

// writeMedia is sub --media: it reads the catalog from catalog, subscribes
// to its first video rendition (and first AAC rendition, if any) with sub,
// and writes them to out as fragmented MP4 until the video track ends or
// count video frames were written.
func writeMedia(ctx context.Context, catalog *broadcast.TrackConsumer, sub func(ctx context.Context, track string) (*broadcast.TrackConsumer, error), out io.Writer, count uint64, st *mediaStats) error {
	cr := hang.NewCatalogReader(catalog)
	defer cr.Close()
	// A browser publisher announces its catalog before its encoder is
	// configured: wait for a version with video.
	var cat *hang.Catalog
	var name string
	for ok := false; !ok; {
		var err error
		if cat, err = cr.Next(ctx); err != nil {
			if errors.Is(err, io.EOF) {
				return errors.New("the broadcast's catalog never had a video rendition")
			}
			return fmt.Errorf("catalog: %w", err)
		}
		name, ok = firstRendition(cat)
	}
	cfg := cat.Video.Renditions[name]
	st.Codec = cfg.Codec
	bw := bufio.NewWriterSize(out, 256<<10)
	w, err := fmp4.NewWriter(bw, cfg)
	if err != nil {
		return err
	}
	audio := aacRendition(cat)
	if audio != "" {
		if err := w.AddAudio(cat.Audio.Renditions[audio]); err != nil {
			return err
		}
	}

	// One goroutine per track reads frames into frames; this one writes.
	rctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	defer wg.Wait() // after cancel
	defer cancel()
	frames := make(chan mediaFrame, 64)
	read := func(track string, isAudio bool) error {
		tc, err := sub(rctx, track)
		if err != nil {
			return err
		}
		wg.Go(func() {
			// Audio comes a group per frame, whose streams can arrive in
			// any order: read them all, the writer orders them.
			tr := hang.NewTrackReader(tc)
			if isAudio {
				tr = hang.NewRecordingReader(tc)
			}
			defer tr.Close()
			for {
				f, err := tr.ReadFrame(rctx)
				select {
				case frames <- mediaFrame{audio: isAudio, f: f, err: err}:
				case <-rctx.Done():
					return
				}
				if err != nil {
					return
				}
			}
		})
		return nil
	}
	if err := read(name, false); err != nil {
		return err
	}
	if audio != "" {
		if err := read(audio, true); err != nil {
			return err
		}
	}
	var first uint64
	// When the video ends the audio's last groups may still be on their
	// way: the file ends once the audio ended too, or audioGrace later.
	audioDone := audio == ""
	var grace <-chan time.Time
loop:
	for count == 0 || uint64(w.Frames()) < count {
		var m mediaFrame
		select {
		case m = <-frames:
		case <-grace:
			break loop
		case <-ctx.Done():
			return ctx.Err()
		}
		switch {
		case m.audio && m.err != nil:
			audioDone = true // the audio ending (or failing) leaves the video going
			if grace != nil {
				break loop
			}
			continue
		case m.audio:
			if err := w.WriteAudio(m.f); err != nil {
				return err
			}
			st.AudioFrames = w.AudioFrames()
		case errors.Is(m.err, io.EOF): // the video ended
			if audioDone {
				break loop
			}
			t := time.NewTimer(audioGrace)
			defer t.Stop()
			grace = t.C
			continue
		case m.err != nil:
			return m.err
		default:
			if err := w.WriteFrame(m.f); err != nil {
				return err
			}
			if w.Frames() > 0 && st.Frames == 0 {
				first = m.f.Timestamp
			}
			st.Frames = w.Frames()
			if m.f.Keyframe {
				st.Keyframes++
			}
			st.Duration = m.f.Timestamp - min(first, m.f.Timestamp)
		}
		// A live pipe reader (ffplay) wants each fragment at once.
		if err := bw.Flush(); err != nil {
			return err
		}
	}
	if err := w.Close(); err != nil {
		return err
	}
	st.Frames, st.AudioFrames = w.Frames(), w.AudioFrames()
	return bw.Flush()
}

// audioGrace bounds how long sub --media waits, after the video's end, for
// the audio's (its last groups travel on streams of their own); past it the
// file ends without what has not come.
const audioGrace = 2 * time.Second

// audioJoin bounds how long pub --media --wait, once the video has a
// subscriber, waits for the audio to have one too.
const audioJoin = 2 * time.Second

// mediaFrame is a frame (or a track's end) on its way to the MP4 writer.
type mediaFrame struct {
	audio bool
	f     hang.Frame
	err   error
}

// aacRendition picks the audio rendition sub --media writes: the first
// AAC one by name, "" if none.
func aacRendition(c *hang.Catalog) string {
	if c.Audio == nil {
		return ""
	}
	names := make([]string, 0, len(c.Audio.Renditions))
	for n, r := range c.Audio.Renditions {
		if strings.HasPrefix(r.Codec, "mp4a.40.") {
			names = append(names, n)
		}
	}
	sort.Strings(names)
	if len(names) == 0 {
		return ""
	}
	return names[0]
}

// pubMediaFlags are pub's media flags.
type pubMediaFlags struct {
	media *string
	loop  *bool
}

// register adds --media and --loop to fs.
func (f *pubMediaFlags) register(fs interface {
	String(name, value, usage string) *string
	Bool(name string, value bool, usage string) *bool
}) {
	f.media = fs.String("media", "", "publish MP4 from `FILE` (- for stdin: fragmented MP4 only) as a hang broadcast, paced by its timestamps")
	f.loop = fs.Bool("loop", false, "with --media FILE: start over at the end, until interrupted")
}

// runPubMedia is pub --media: the node as runPub makes it, publishing a
// hang broadcast (catalog.json and a video track) read from MP4:
// fragmented, or progressive from a file.
func runPubMedia(ctx context.Context, std stdio, nf *netFlags, listens, connects []endpoint, name string, mf pubMediaFlags, wait bool, linger time.Duration) error {
	if *mf.loop && *mf.media == "-" {
		return usagef("pub: --loop needs a file, not stdin")
	}
	log := nf.logger(std.stderr)
	in, err := openMedia(*mf.media, std.stdin)
	if err != nil {
		return err
	}
	defer in.Close() // runMedia closes it once read; closing again is harmless
	ms, rd, err := newMediaSource(in)
	if err != nil {
		return fmt.Errorf("--media: %w", err)
	}
	defer ms.close()

	n, err := newNode(ctx, nodeConfig{listens: nf.reachable(listens), connects: connects, interest: []string{}, incoming: true, net: nf, log: log})
	if err != nil {
		return err
	}
	defer n.close()
	subs := watchSessions(n)
	defer subs.stop()
	dialed, peerGone, err := n.publishAndDial(ctx, name, ms.prod.Consume(), connects, std.stderr)
	if err != nil {
		return err
	}
	if dialed != nil {
		subs.add(dialed)
	}
	for _, base := range n.pages {
		fmt.Fprintf(std.stderr, "watch: %s\n", watch.WatchURL(base, name))
	}
	vt := ms.video.Track()
	if wait {
		log.Debug("waiting for a subscriber")
		select {
		case <-vt.Used():
		case <-peerGone:
			return sessionEnded(dialed)
		case <-ctx.Done():
			return nil
		}
		// A subscriber takes the catalog, then the video, then the
		// audio: give the audio's subscription a moment to arrive, or its
		// first frames go out before anyone holds the track. A player
		// that wants no audio costs the start this much.
		if ms.audio != nil {
			t := time.NewTimer(audioJoin)
			select {
			case <-ms.audio.Track().Used():
			case <-t.C:
			case <-ctx.Done():
			}
			t.Stop()
		}
	}
	var st mediaStats
	pctx, cancel := context.WithCancel(ctx)
	defer cancel()
	if peerGone != nil {
		// The peer we dialed hanging up ends the publication.
		go func() {
			select {
			case <-peerGone:
				cancel()
			case <-pctx.Done():
			}
		}()
	}
	err = runMedia(pctx, *mf.media, std.stdin, *mf.loop, ms, rd, in, &st)
	ms.finish()
	switch {
	case ctx.Err() != nil: // interrupted: not an error
	case pctx.Err() != nil: // the peer we dialed went away
		printSummary(std.stdout, st)
		if hungUp(dialed) {
			return nil
		}
		return sessionEnded(dialed)
	case err != nil:
		return err
	}
	// Let subscribers read the end, as pub does for a finite transfer.
	if ctx.Err() == nil {
		select {
		case <-vt.Unused():
		case <-peerGone:
		case <-time.After(linger):
		case <-ctx.Done():
		}
		n.waitSessionsDone(ctx, linger)
	}
	printSummary(std.stdout, st)
	return nil
}

// runSubMedia is sub --media: the catalog, then the first video
// rendition, written to out as fragmented MP4.
func runSubMedia(ctx context.Context, std stdio, nf *netFlags, listens, connects []endpoint, src source, out string, count uint64) error {
	log := nf.logger(std.stderr)
	summaryTo := std.stdout
	var w io.Writer
	if out == "-" {
		w, summaryTo = std.stdout, std.stderr
	} else {
		f, err := os.Create(out)
		if err != nil {
			return err
		}
		defer f.Close()
		w = f
	}
	src.track = hang.CatalogTrack
	n, err := newNode(ctx, nodeConfig{listens: listens, connects: connects, dials: src.dials(),
		interest: interestFor(src.name), incoming: len(listens) > 0 && !src.byName, net: nf, log: log})
	if err != nil {
		return err
	}
	defer n.close()
	s, tc, _, err := n.subscribe(ctx, std.stderr, src)
	if err != nil {
		return err
	}
	if s != nil {
		defer s.Close("done")
	}
	sub := func(ctx context.Context, track string) (*broadcast.TrackConsumer, error) {
		if s == nil {
			return n.subscribeByName(ctx, src.name, track)
		}
		return subscribeWithin(ctx, s, src.name, track, nf.timeout)
	}
	var st mediaStats
	err = writeMedia(ctx, tc, sub, w, count, &st)
	printSummary(summaryTo, st)
	if ctx.Err() != nil {
		return nil // interrupted: what was written stands
	}
	return err
}
