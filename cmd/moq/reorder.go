package main

import (
	"log/slog"
	"maps"
	"slices"
	"sync"
	"time"
)

// reorderWait is how long the in-order stage waits for a missing group
// before skipping it: groups travel on streams of their own and a later one
// often lands first, but a group that was dropped never comes.
const reorderWait = 500 * time.Millisecond

// reorder hands received frames on in group-sequence order, each group's
// frames in arrival order. Frames of the group at the head go out as they
// arrive; frames of later groups wait until every group before them is
// complete, or has been missing for reorderWait. A group that arrives after
// it was skipped is dropped (and logged). One goroutine calls emit, so emit
// needs no locking; idle is called whenever the stage has caught up (a
// moment to flush output).
type reorder struct {
	emit func(seq uint64, frame []byte) (more bool)
	idle func()
	log  *slog.Logger

	mu      sync.Mutex
	groups  map[uint64]*pendingGroup
	started bool      // next is known
	next    uint64    // the group at the head
	firstAt time.Time // when the first group arrived
	gapAt   time.Time // when a later group was first seen while next was missing
	closed  bool
	stopped bool          // emit said no more
	wake    chan struct{} // capacity 1
	done    chan struct{}
}

type pendingGroup struct {
	frames [][]byte
	done   bool
}

func newReorder(log *slog.Logger, emit func(uint64, []byte) bool, idle func()) *reorder {
	r := &reorder{
		emit:   emit,
		idle:   idle,
		log:    log,
		groups: map[uint64]*pendingGroup{},
		wake:   make(chan struct{}, 1),
		done:   make(chan struct{}),
	}
	go r.run()
	return r
}

// frame queues the next frame of group seq.
func (r *reorder) frame(seq uint64, f []byte) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.stopped || (r.started && seq < r.next) {
		return // skipped already; groupDone logs it
	}
	g := r.group(seq)
	g.frames = append(g.frames, f)
	r.signal()
}

// groupDone says group seq has no more frames.
func (r *reorder) groupDone(seq uint64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.stopped {
		return
	}
	if r.started && seq < r.next {
		r.log.Warn("group arrived after later ones were handed on: dropped", "group", seq)
		return
	}
	r.group(seq).done = true
	r.signal()
}

func (r *reorder) group(seq uint64) *pendingGroup {
	g := r.groups[seq]
	if g == nil {
		g = &pendingGroup{}
		r.groups[seq] = g
		if r.firstAt.IsZero() {
			r.firstAt = time.Now()
		}
	}
	return g
}

func (r *reorder) signal() {
	select {
	case r.wake <- struct{}{}:
	default:
	}
}

// close hands on what is queued, skipping gaps at once, and waits for it.
func (r *reorder) close() {
	r.mu.Lock()
	r.closed = true
	r.signal()
	r.mu.Unlock()
	<-r.done
}

// stoppedEarly reports whether emit asked for no more.
func (r *reorder) stoppedEarly() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.stopped
}

func (r *reorder) run() {
	defer close(r.done)
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		r.mu.Lock()
		seq, frames, wait, finished := r.take()
		r.mu.Unlock()
		if len(frames) > 0 {
			for _, f := range frames {
				if !r.emit(seq, f) {
					r.mu.Lock()
					r.stopped, r.groups = true, nil
					r.mu.Unlock()
					r.idle()
					return
				}
			}
			continue
		}
		r.idle()
		if finished {
			return
		}
		var timeout <-chan time.Time
		if wait > 0 {
			timer.Reset(wait)
			timeout = timer.C
		}
		select {
		case <-r.wake:
		case <-timeout:
		}
	}
}

// take returns the frames of the head group that can go now. Otherwise it
// returns how long to wait before a gap may be skipped (0: until woken), or
// finished once closed with nothing left. r.mu is held.
func (r *reorder) take() (seq uint64, frames [][]byte, wait time.Duration, finished bool) {
	for {
		if len(r.groups) == 0 {
			return 0, nil, 0, r.closed
		}
		if !r.started {
			// The first group to arrive may not be the first sent: wait a
			// moment for an earlier one, unless this is group 0.
			first := slices.Min(slices.Collect(maps.Keys(r.groups)))
			if first != 0 && !r.closed {
				if left := reorderWait - time.Since(r.firstAt); left > 0 {
					return 0, nil, left, false
				}
			}
			r.started, r.next = true, first
		}
		g := r.groups[r.next]
		if g == nil {
			if r.gapAt.IsZero() {
				r.gapAt = time.Now()
			}
			if !r.closed {
				if left := reorderWait - time.Since(r.gapAt); left > 0 {
					return 0, nil, left, false
				}
			}
			skipTo := slices.Min(slices.Collect(maps.Keys(r.groups)))
			r.log.Debug("skipping missing groups", "from", r.next, "to", skipTo-1)
			r.next, r.gapAt = skipTo, time.Time{}
			continue
		}
		if len(g.frames) > 0 {
			frames, g.frames = g.frames, nil
			return r.next, frames, 0, false
		}
		if !g.done && !r.closed {
			return 0, nil, 0, false
		}
		delete(r.groups, r.next)
		r.next++
		r.gapAt = time.Time{}
	}
}
