package broadcast

import (
	"slices"
	"sync"
)

// Config describes a new broadcast.
type Config struct {
	// Hops is the hop list the broadcast arrived with: the IDs of the origins
	// it passed through, nearest last. Empty for a broadcast made here.
	Hops []uint64
	// Limits apply to every track made by the broadcast.
	Limits Limits
	// OnTrack, if set, is called for every subscription to a track that does
	// not exist. It receives a new producer for that track, already
	// registered, and must fill it (or abort it) without blocking the caller;
	// it should stop when the producer's Unused channel fires. If whether
	// the track exists is known only later (a relay asking its upstream),
	// it calls TrackProducer.Hold before it returns: a publisher then
	// answers the subscription once it is known (TrackConsumer.Ready).
	// Without it an unknown track is ErrNotFound.
	OnTrack func(*TrackProducer)
}

// bcast is the state shared by a broadcast's Producer and Consumers.
type bcast struct {
	hops    []uint64
	lim     Limits
	onTrack func(*TrackProducer)

	mu      sync.Mutex
	tracks  map[string]*track
	err     error // set when the broadcast ended: ErrClosed or the abort error
	done    chan struct{}
	closers map[*func()]struct{}
}

// New returns the producer of a new broadcast.
func New(cfg Config) *Producer {
	return &Producer{b: &bcast{
		hops:    slices.Clone(cfg.Hops),
		lim:     cfg.Limits.withDefaults(),
		onTrack: cfg.OnTrack,
		tracks:  map[string]*track{},
		done:    make(chan struct{}),
		closers: map[*func()]struct{}{},
	}}
}

// Producer owns a broadcast: it adds tracks and ends the broadcast. It is safe
// for concurrent use.
type Producer struct{ b *bcast }

// CreateTrack adds a new track. A name already in use returns ErrDuplicate.
func (p *Producer) CreateTrack(info Track) (*TrackProducer, error) {
	tp := NewTrack(info, p.b.lim)
	if err := p.InsertTrack(tp); err != nil {
		return nil, err
	}
	return tp, nil
}

// InsertTrack adds an existing track, for instance one consumed elsewhere and
// re-served here. A name already in use by a live track returns ErrDuplicate.
func (p *Producer) InsertTrack(tp *TrackProducer) error {
	b := p.b
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.err != nil {
		return b.err
	}
	name := tp.t.info.Name
	if old, ok := b.tracks[name]; ok && !old.aborted() {
		return withReason(ErrDuplicate, "track %q", name)
	}
	b.tracks[name] = tp.t
	return nil
}

// RemoveTrack forgets a track so that new subscriptions no longer find it.
// Existing consumers keep reading it.
func (p *Producer) RemoveTrack(name string) {
	p.b.mu.Lock()
	defer p.b.mu.Unlock()
	delete(p.b.tracks, name)
}

// Finish ends the broadcast: it is unannounced from every origin and new
// subscriptions fail with ErrClosed. Its tracks run on to their own end.
func (p *Producer) Finish() { p.b.close(ErrClosed) }

// Abort ends the broadcast with err (ErrCancelled if nil) and aborts every one
// of its tracks with it.
func (p *Producer) Abort(err error) {
	if err == nil {
		err = ErrCancelled
	}
	for _, t := range p.b.close(err) {
		t.abort(err)
	}
}

// Consume returns a consumer of the broadcast.
func (p *Producer) Consume() *Consumer { return &Consumer{b: p.b} }

// TrackInfo returns a track's info without subscribing to it (so it does
// not make the track Used): that of a track the broadcast has, or, for a
// broadcast that makes tracks on demand (Config.OnTrack), just the name,
// since only a subscription asks the handler. A name the broadcast cannot
// have is ErrNotFound; an ended broadcast returns its error.
func (c *Consumer) TrackInfo(name string) (Track, error) {
	b := c.b
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.err != nil {
		return Track{}, b.err
	}
	if t, ok := b.tracks[name]; ok && !t.aborted() {
		return t.info, nil
	}
	if b.onTrack == nil {
		return Track{}, withReason(ErrNotFound, "track %q", name)
	}
	return Track{Name: name}, nil
}

// Hops returns the broadcast's hop list. The slice must not be modified.
func (p *Producer) Hops() []uint64 { return p.b.hops }

func (b *bcast) close(err error) []*track {
	b.mu.Lock()
	if b.err != nil {
		b.mu.Unlock()
		return nil
	}
	b.err = err
	close(b.done)
	tracks := make([]*track, 0, len(b.tracks))
	for _, t := range b.tracks {
		tracks = append(tracks, t)
	}
	closers := b.closers
	b.closers = nil
	b.mu.Unlock()
	for f := range closers {
		(*f)()
	}
	return tracks
}

// afterClose arranges for f to run once the broadcast ends (at once, on this
// goroutine, if it already has). stop cancels that unless it already ran.
func (b *bcast) afterClose(f func()) (stop func()) {
	b.mu.Lock()
	if b.err != nil {
		b.mu.Unlock()
		f()
		return func() {}
	}
	key := &f
	b.closers[key] = struct{}{}
	b.mu.Unlock()
	return func() {
		b.mu.Lock()
		delete(b.closers, key)
		b.mu.Unlock()
	}
}

// dropIfUnused forgets an on-demand track once its last consumer has left,
// unless a new subscriber picked it up in the meantime.
func (b *bcast) dropIfUnused(t *track) {
	b.mu.Lock()
	defer b.mu.Unlock()
	t.mu.RLock()
	unused := t.consumers == 0
	t.mu.RUnlock()
	if unused && b.tracks[t.info.Name] == t {
		delete(b.tracks, t.info.Name)
	}
}

func (t *track) aborted() bool {
	t.mu.RLock()
	defer t.mu.RUnlock()
	return t.err != nil
}

// Consumer reads a broadcast: it subscribes to its tracks. It is safe for
// concurrent use; every Consumer of one broadcast is equivalent, but for
// the tag a track made on demand carries (Tagged).
type Consumer struct {
	b   *bcast
	tag any
}

// Tagged returns a consumer of the same broadcast whose subscriptions
// that make a track on demand leave tag on it (TrackProducer.Tag): the
// broadcast's OnTrack handler can tell whom it makes the track for (a
// relay counts them per downstream session).
func (c *Consumer) Tagged(tag any) *Consumer { return &Consumer{b: c.b, tag: tag} }

// SubscribeTrack returns a consumer of the named track, starting at its latest
// group. Subscribers of one track share one producer: the first subscription
// to a track that does not exist yet asks the broadcast's OnTrack handler for
// it, later ones join it, and it is forgotten once its last consumer closes.
// Without a handler an unknown track is ErrNotFound; an ended broadcast
// returns its end error. The track notes that a subscriber wants its
// latest group (TrackProducer.AskedLive). Close the consumer when done
// with it.
func (c *Consumer) SubscribeTrack(info Track) (*TrackConsumer, error) {
	return c.subscribeTrack(info, nil)
}

// SubscribeTrackAt is SubscribeTrack for a subscriber that wants the track
// from group start on rather than from the latest group: the consumer
// starts there (TrackConsumer.StartAt: the cached groups from start on,
// then the new ones), and the track notes start as asked
// (TrackProducer.AskedStart) before a new track's OnTrack handler runs, so
// that a relay asks its upstream for the earliest group any of its
// subscribers wanted. A start past the latest group of a track that has
// groups is not noted: groups from the latest on reach it.
func (c *Consumer) SubscribeTrackAt(info Track, start uint64) (*TrackConsumer, error) {
	return c.subscribeTrack(info, &start)
}

func (c *Consumer) subscribeTrack(info Track, start *uint64) (*TrackConsumer, error) {
	b := c.b
	b.mu.Lock()
	if b.err != nil {
		b.mu.Unlock()
		return nil, b.err
	}
	if t, ok := b.tracks[info.Name]; ok && !t.aborted() {
		t.ask(info.Priority)
		tc := t.consume()
		t.askFrom(start)
		if start != nil {
			tc.StartAt(*start)
		}
		b.mu.Unlock()
		return tc, nil
	}
	if b.onTrack == nil {
		b.mu.Unlock()
		return nil, withReason(ErrNotFound, "track %q", info.Name)
	}
	tp := NewTrack(info, b.lim)
	tp.t.tag = c.tag
	tp.t.onUnused = func() { b.dropIfUnused(tp.t) }
	b.tracks[info.Name] = tp.t
	tc := tp.t.consume()
	tp.t.askFrom(start)
	if start != nil {
		tc.StartAt(*start)
	}
	b.mu.Unlock()
	b.onTrack(tp)
	return tc, nil
}

// Hops returns the broadcast's hop list. The slice must not be modified.
func (c *Consumer) Hops() []uint64 { return c.b.hops }

// Done returns a channel that is closed when the broadcast ends.
func (c *Consumer) Done() <-chan struct{} { return c.b.done }

// Err returns nil while the broadcast is live, then ErrClosed after Finish or
// the abort error after Abort.
func (c *Consumer) Err() error {
	c.b.mu.Lock()
	defer c.b.mu.Unlock()
	return c.b.err
}

// Same reports whether c and other consume the same broadcast.
func (c *Consumer) Same(other *Consumer) bool { return other != nil && c.b == other.b }
