package broadcast

import (
	"context"
	"errors"
	"iter"
	"slices"
	"sync"
)

// ErrInvalidPath is returned for an empty broadcast path.
var ErrInvalidPath = errors.New("broadcast: empty path")

// Origin maps paths to the broadcasts announced there. Every broadcast carries a
// hop list; the origin refuses one whose list already holds its own ID (a
// loop). A second broadcast at a taken path is kept as a backup: the one with
// fewer hops is active (a newcomer wins ties), and when the active one ends the
// backup with the fewest hops (the oldest on ties) takes over. An Origin is
// safe for concurrent use.
type Origin struct {
	id uint64

	// The maps and done are made when first needed: every session holds
	// an origin, which mostly stays empty and unwatched.
	mu        sync.Mutex
	paths     map[string]*slot
	listeners map[*listener]struct{}
	seq       uint64 // publish counter, to order backups by age
	closed    bool
	done      chan struct{} // closed by Close; see doneChan
}

type slot struct {
	active  *publication
	backups []*publication
}

type publication struct {
	c    *Consumer
	hops int
	seq  uint64
}

// NewOrigin returns an empty origin with the given hop ID (a random one in
// [1, 2^53) if id is 0).
func NewOrigin(id uint64) *Origin {
	if id == 0 {
		id = NewHopID()
	}
	return &Origin{id: id}
}

// doneChan returns a channel closed once the origin is closed.
func (o *Origin) doneChan() <-chan struct{} {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.done == nil {
		if o.closed {
			return closedChan
		}
		o.done = make(chan struct{})
	}
	return o.done
}

// ID returns the origin's hop ID.
func (o *Origin) ID() uint64 { return o.id }

// Publish announces b at path (cleaned with CleanPath) until b ends or
// unpublish is called. It returns ErrLoop if b's hops contain this origin's
// ID, ErrTooLarge for more than MaxHops hops, ErrDuplicate if b is already
// published at path, b's end error if it has ended, and ErrClosed after Close.
func (o *Origin) Publish(path string, b *Consumer) (unpublish func(), err error) {
	path = CleanPath(path)
	switch hops := b.Hops(); {
	case path == "":
		return nil, ErrInvalidPath
	case containsHop(hops, o.id):
		return nil, ErrLoop
	case len(hops) > MaxHops:
		return nil, withReason(ErrTooLarge, "%d hops", len(hops))
	}
	if err := b.Err(); err != nil {
		return nil, err
	}
	o.mu.Lock()
	if o.closed {
		o.mu.Unlock()
		return nil, withReason(ErrClosed, "origin closed")
	}
	s := o.paths[path]
	if s == nil {
		s = &slot{}
		if o.paths == nil {
			o.paths = map[string]*slot{}
		}
		o.paths[path] = s
	}
	if s.holds(b) {
		o.mu.Unlock()
		return nil, withReason(ErrDuplicate, "broadcast already published at %q", path)
	}
	o.seq++
	p := &publication{c: b, hops: len(b.Hops()), seq: o.seq}
	switch {
	case s.active == nil:
		s.active = p
		o.changed(path)
	case p.hops <= s.active.hops:
		s.backups = append(s.backups, s.active)
		s.active = p
		o.changed(path)
	default:
		s.backups = append(s.backups, p)
	}
	o.mu.Unlock()

	stop := b.b.afterClose(func() { o.remove(path, p) })
	var once sync.Once
	return func() {
		once.Do(func() {
			stop()
			o.remove(path, p)
		})
	}, nil
}

func (s *slot) holds(b *Consumer) bool {
	if s.active != nil && s.active.c.Same(b) {
		return true
	}
	return slices.ContainsFunc(s.backups, func(p *publication) bool { return p.c.Same(b) })
}

// remove withdraws p from path, promoting the best backup if p was active.
func (o *Origin) remove(path string, p *publication) {
	o.mu.Lock()
	defer o.mu.Unlock()
	s := o.paths[path]
	if s == nil {
		return
	}
	if s.active != p {
		s.backups = slices.DeleteFunc(s.backups, func(q *publication) bool { return q == p })
		return
	}
	s.active = nil
	if len(s.backups) > 0 {
		best := 0
		for i, q := range s.backups {
			if q.hops < s.backups[best].hops || (q.hops == s.backups[best].hops && q.seq < s.backups[best].seq) {
				best = i
			}
		}
		s.active = s.backups[best]
		s.backups = slices.Delete(s.backups, best, best+1)
	} else {
		delete(o.paths, path)
	}
	o.changed(path)
}

// Get returns the broadcast active at path, or nil.
func (o *Origin) Get(path string) *Consumer {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.active(CleanPath(path))
}

func (o *Origin) active(path string) *Consumer {
	if s := o.paths[path]; s != nil && s.active != nil {
		return s.active.c
	}
	return nil
}

// Close ends every Announced iteration and refuses further publishing.
// Broadcasts themselves are not touched.
func (o *Origin) Close() {
	o.mu.Lock()
	defer o.mu.Unlock()
	if !o.closed {
		o.closed = true
		if o.done != nil {
			close(o.done)
		}
		for l := range o.listeners {
			if l.notify != nil {
				l.notify()
			}
		}
	}
}

// Announced yields (path, broadcast) for every broadcast under prefix that is
// active now, then for every change: (path, b) when b becomes active at path
// and (path, nil) when path ends. A replacement is yielded as (path, nil)
// followed by (path, new). A listener that falls behind sees only the net
// change per path, so it never holds up publishers and its memory is bounded by
// the number of paths. Iteration stops when ctx ends, the origin closes, or
// the loop breaks.
func (o *Origin) Announced(ctx context.Context, prefix string) iter.Seq2[string, *Consumer] {
	return o.AnnouncedSince(ctx, prefix, nil)
}

// Active returns the broadcasts under prefix that are active now, by path.
func (o *Origin) Active(prefix string) map[string]*Consumer {
	prefix = CleanPath(prefix)
	o.mu.Lock()
	defer o.mu.Unlock()
	out := map[string]*Consumer{}
	for path, s := range o.paths {
		if s.active != nil && HasPrefix(path, prefix) {
			out[path] = s.active.c
		}
	}
	return out
}

// AnnouncedSince is Announced for a listener that already knows seen (for
// instance a snapshot from Active, sent as one batch): it yields only what
// differs from seen, then every change. Announced is AnnouncedSince with nil.
func (o *Origin) AnnouncedSince(ctx context.Context, prefix string, seen map[string]*Consumer) iter.Seq2[string, *Consumer] {
	prefix = CleanPath(prefix)
	return func(yield func(string, *Consumer) bool) {
		l := o.listen(prefix, seen, nil)
		defer o.unlisten(l)
		done := o.doneChan()
		for {
			path, b, ok := o.nextChange(l)
			if ok {
				if !yield(path, b) {
					return
				}
				continue
			}
			select {
			case <-l.kick:
			case <-done:
				return
			case <-ctx.Done():
				return
			}
		}
	}
}

// Watch follows the broadcasts under a prefix as Announced does, without a
// goroutine of its own: the origin calls back when something may have
// changed, and the watcher takes the changes with Next when it suits it. A
// session serving a peer's announce interest uses it, so that an idle
// session parks no goroutine on its origin.
type Watch struct {
	o *Origin
	l *listener
}

// WatchSince starts a Watch of prefix for a watcher that already knows seen
// (see AnnouncedSince): Next has the initial differences at once. changed
// is called whenever Next may have something new, and when the origin
// closes; it may run before WatchSince returns, and with the origin's lock
// held, so it must return at once and must not call the origin.
func (o *Origin) WatchSince(prefix string, seen map[string]*Consumer, changed func()) *Watch {
	return &Watch{o: o, l: o.listen(CleanPath(prefix), seen, changed)}
}

// Next returns the next change, as Announced yields them: (path, b) when b
// became active at path, (path, nil) when path ended. ok is false when there
// is none for now (or the origin closed: see Closed).
func (w *Watch) Next() (path string, b *Consumer, ok bool) { return w.o.nextChange(w.l) }

// Closed reports whether the origin closed: no more changes will come.
func (w *Watch) Closed() bool { return w.o.isClosed() }

// Stop ends the watch: changed is not called after Stop returns.
func (w *Watch) Stop() { w.o.unlisten(w.l) }

func (o *Origin) isClosed() bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.closed
}

// listener is one Announced iteration or Watch: the paths whose state
// changed since it last looked, and what it has reported for each.
type listener struct {
	prefix   string
	queue    []string
	queued   map[string]bool
	reported map[string]*Consumer
	kick     chan struct{} // capacity 1: "something changed" (Announced)
	notify   func()        // or this is called (Watch)
}

func (o *Origin) listen(prefix string, seen map[string]*Consumer, notify func()) *listener {
	l := &listener{prefix: prefix, queued: map[string]bool{}, reported: map[string]*Consumer{}, notify: notify}
	if notify == nil {
		l.kick = make(chan struct{}, 1)
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	for path, b := range seen { // reported already: only a difference is news
		if b != nil && HasPrefix(path, prefix) {
			l.reported[path] = b
			l.mark(path)
		}
	}
	for path, s := range o.paths {
		if s.active != nil && HasPrefix(path, prefix) {
			l.mark(path)
		}
	}
	slices.Sort(l.queue) // the initial set in a stable order
	if o.listeners == nil {
		o.listeners = map[*listener]struct{}{}
	}
	o.listeners[l] = struct{}{}
	return l
}

func (o *Origin) unlisten(l *listener) {
	o.mu.Lock()
	defer o.mu.Unlock()
	delete(o.listeners, l)
}

// changed tells every listener under path to look at it again. Caller holds o.mu.
func (o *Origin) changed(path string) {
	for l := range o.listeners {
		if HasPrefix(path, l.prefix) {
			l.mark(path)
			l.wake()
		}
	}
}

func (l *listener) mark(path string) {
	if !l.queued[path] {
		l.queued[path] = true
		l.queue = append(l.queue, path)
	}
}

func (l *listener) wake() {
	if l.notify != nil {
		l.notify()
		return
	}
	select {
	case l.kick <- struct{}{}:
	default:
	}
}

// nextChange returns the next difference between what l reported and the
// origin's state, updating l's record of what it reported.
func (o *Origin) nextChange(l *listener) (string, *Consumer, bool) {
	o.mu.Lock()
	defer o.mu.Unlock()
	for len(l.queue) > 0 {
		path := l.queue[0]
		cur, rep := o.active(path), l.reported[path]
		switch {
		case cur != nil && rep != nil && !cur.Same(rep):
			// Replaced: report the end now; the path stays queued for the new one.
			delete(l.reported, path)
			return path, nil, true
		}
		l.queue[0] = ""
		l.queue = l.queue[1:]
		delete(l.queued, path)
		switch {
		case cur != nil && rep == nil:
			l.reported[path] = cur
			return path, cur, true
		case cur == nil && rep != nil:
			delete(l.reported, path)
			return path, nil, true
		}
	}
	return "", nil, false
}
