package hang

import (
	"context"
	"errors"
	"fmt"

	"github.com/moqp2p/moqp2p/broadcast"
)

// Timescale is the timescale of the media tracks this package creates:
// microseconds, the unit of hang's in-payload timestamps, so a moq-lite-05
// frame timestamp equals the payload's.
const Timescale = 1_000_000

// ErrNoKeyframe is returned by TrackWriter.WriteFrame for a first frame
// that is not a keyframe: every group must start with one.
var ErrNoKeyframe = errors.New("hang: a track must start with a keyframe")

// Frame is one media sample.
type Frame struct {
	// Timestamp is the presentation time in microseconds.
	Timestamp uint64
	// Keyframe is true for the first frame of a group.
	Keyframe bool
	// Payload is the codec bitstream. A Frame read from a track shares its
	// memory with every other consumer: do not modify it.
	Payload []byte
	// Group is the moq-lite group sequence the frame travelled in.
	Group uint64
}

// TrackWriter writes frames to a media track, a new group at each
// keyframe.
type TrackWriter struct {
	tp    *broadcast.TrackProducer
	group *broadcast.GroupProducer
}

// NewTrackWriter writes to tp. Create tp with Timescale so moq-lite-05
// frame timestamps are in microseconds (MediaTrack does).
func NewTrackWriter(tp *broadcast.TrackProducer) *TrackWriter {
	return &TrackWriter{tp: tp}
}

// MediaTrack describes a hang media track named name.
func MediaTrack(name string, priority uint8) broadcast.Track {
	return broadcast.Track{Name: name, Priority: priority, Timescale: Timescale}
}

// WriteFrame appends one frame with presentation time ts (microseconds).
// A keyframe finishes the current group and starts the next. The frame's
// bytes are copied (prefixed with ts), so payload may be reused.
func (w *TrackWriter) WriteFrame(ts uint64, keyframe bool, payload []byte) error {
	if keyframe {
		if w.group != nil {
			_ = w.group.Finish()
		}
		g, err := w.tp.AppendGroup()
		if err != nil {
			return err
		}
		w.group = g
	} else if w.group == nil {
		return ErrNoKeyframe
	}
	buf := AppendFrame(make([]byte, 0, 8+len(payload)), ts, payload)
	if w.tp.Info().Scale() == Timescale {
		return w.group.WriteFrameAt(ts, buf)
	}
	return w.group.WriteFrame(buf)
}

// Track returns the track written to.
func (w *TrackWriter) Track() *broadcast.TrackProducer { return w.tp }

// Close finishes the current group and the track.
func (w *TrackWriter) Close() error {
	if w.group != nil {
		_ = w.group.Finish()
	}
	return w.tp.Finish()
}

// TrackReader reads frames from a media track, a group at a time.
type TrackReader struct {
	tc    *broadcast.TrackConsumer
	group *broadcast.GroupConsumer
	index int
	all   bool // every group in arrival order, late ones too
}

// NewTrackReader reads from tc in group order, skipping groups that arrive
// after a newer one (live playback has no use for them). Close closes tc.
func NewTrackReader(tc *broadcast.TrackConsumer) *TrackReader {
	return &TrackReader{tc: tc}
}

// NewRecordingReader reads every group of tc in arrival order, late ones
// too, as a recorder wants: group streams may arrive in any order (a track
// of one-frame groups, such as audio, often does), so the caller orders
// frames by timestamp. Close closes tc.
func NewRecordingReader(tc *broadcast.TrackConsumer) *TrackReader {
	return &TrackReader{tc: tc, all: true}
}

// ReadFrame returns the next frame. It returns io.EOF after a finished
// track's last frame and ErrFrame for a frame without a timestamp prefix.
// A group that breaks off (reset, evicted) is left for the next one.
func (r *TrackReader) ReadFrame(ctx context.Context) (Frame, error) {
	for {
		if r.group == nil {
			next := r.tc.NextGroup
			if r.all {
				next = r.tc.RecvGroup
			}
			g, err := next(ctx)
			if err != nil {
				return Frame{}, err
			}
			r.group, r.index = g, 0
		}
		b, err := r.group.ReadFrame(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return Frame{}, ctx.Err()
			}
			// io.EOF ends the group; a reset or eviction loses its tail,
			// which the next group's keyframe recovers from.
			r.group = nil
			continue
		}
		ts, payload, err := ParseFrame(b)
		if err != nil {
			return Frame{}, err
		}
		f := Frame{Timestamp: ts, Keyframe: r.index == 0, Payload: payload, Group: r.group.Sequence()}
		r.index++
		if len(payload) == 0 {
			continue // a marker, not a sample
		}
		return f, nil
	}
}

// Close stops reading.
func (r *TrackReader) Close() { r.tc.Close() }

// CatalogWriter publishes catalogs on a catalog track: each Write starts a
// group whose one frame is the catalog's JSON snapshot.
type CatalogWriter struct {
	tp *broadcast.TrackProducer
}

// NewCatalogWriter writes to tp (named CatalogTrack).
func NewCatalogWriter(tp *broadcast.TrackProducer) *CatalogWriter {
	return &CatalogWriter{tp: tp}
}

// Write publishes c as the broadcast's current catalog.
func (w *CatalogWriter) Write(c *Catalog) error {
	b, err := c.Marshal()
	if err != nil {
		return err
	}
	g, err := w.tp.AppendGroup()
	if err != nil {
		return err
	}
	if err := g.WriteFrame(b); err != nil {
		return err
	}
	return g.Finish()
}

// Close finishes the catalog track.
func (w *CatalogWriter) Close() error { return w.tp.Finish() }

// DefaultMaxCatalogBytes is CatalogReader.MaxBytes's default.
const DefaultMaxCatalogBytes = 1 << 20

// CatalogReader reads catalogs from a catalog track: each group's snapshot
// with the merge patches that follow it.
type CatalogReader struct {
	// MaxBytes bounds the JSON of one catalog group (its snapshot plus the
	// patches applied so far), 0 meaning DefaultMaxCatalogBytes: a group
	// over it fails Next with ErrCatalog. The reconstructed value is never
	// larger than what was applied, so a publisher can make the reader
	// hold at most about this much decoded JSON (a few times it in Go
	// values) beyond what the track itself caches.
	MaxBytes int

	tc    *broadcast.TrackConsumer
	group *broadcast.GroupConsumer
	cur   any // the JSON value so far in the current group
	size  int // bytes applied to cur
}

// NewCatalogReader reads from tc; Close closes tc.
func NewCatalogReader(tc *broadcast.TrackConsumer) *CatalogReader {
	return &CatalogReader{tc: tc}
}

// Next returns the next version of the catalog: at first the latest
// snapshot, then each update. It returns io.EOF when the track finished.
func (r *CatalogReader) Next(ctx context.Context) (*Catalog, error) {
	for {
		if r.group == nil {
			g, err := r.tc.NextGroup(ctx)
			if err != nil {
				return nil, err
			}
			r.group, r.cur, r.size = g, nil, 0
		}
		b, err := r.group.ReadFrame(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			// The group ended (or broke off): the next one starts with a
			// fresh snapshot.
			r.group = nil
			continue
		}
		limit := r.MaxBytes
		if limit <= 0 {
			limit = DefaultMaxCatalogBytes
		}
		if r.size += len(b); r.size > limit {
			return nil, fmt.Errorf("%w: catalog group of over %d bytes (limit %d)", ErrCatalog, r.size, limit)
		}
		if r.cur == nil {
			r.cur, err = decodeJSON(b)
		} else {
			var patch any
			patch, err = decodeJSON(b)
			r.cur = mergePatch(r.cur, patch)
		}
		if err != nil {
			return nil, err
		}
		c, err := catalogOf(r.cur)
		if err != nil {
			return nil, err
		}
		return c, nil
	}
}

// Close stops reading.
func (r *CatalogReader) Close() { r.tc.Close() }
