package broadcast

import (
	"maps"
	"slices"
	"sync"
	"sync/atomic"
)

// Budget bounds the payload bytes held by the groups of every track made
// with it (Limits.Budget): the frames of groups still being written, and
// those of finished groups their track caches. A write that would take it
// over its limit first evicts finished groups from those tracks' caches,
// oldest first within each track (never a track's latest group, nor one a
// back-pressured consumer still needs); if that frees too little, the write
// fails with ErrBudget and writes nothing. Budgets nest: a budget with a
// parent (a session's, under a node's) charges both, and a write must fit
// in each. A Budget is safe for concurrent use.
type Budget struct {
	limit  int64
	parent *Budget
	used   atomic.Int64

	mu     sync.Mutex
	tracks map[*track]struct{} // tracks holding charged bytes, to evict from (made with the first)
}

// NewBudget returns a budget of limit bytes (at least 1) within parent,
// which may be nil.
func NewBudget(limit int64, parent *Budget) *Budget {
	return &Budget{limit: max(limit, 1), parent: parent}
}

// Limit returns the budget's size in bytes.
func (b *Budget) Limit() int64 { return b.limit }

// Used returns the bytes charged now.
func (b *Budget) Used() int64 { return b.used.Load() }

// ErrBudget is returned by group writes that do not fit in their track's
// Budget even after evicting cached groups; its code is BoundsExceeded.
var ErrBudget = &Error{Code: CodeBoundsExceeded, Reason: "receive budget exhausted"}

// Reserve charges n bytes of memory about to hold frames for a track of
// the budget's (a frame being received, before it is handed to its group),
// evicting cached groups if needed as a write would; false, charging
// nothing, if they do not fit. Release them before handing the frame to its
// group, which charges it in turn. A nil Budget has room for anything.
func (b *Budget) Reserve(n int64) bool { return b == nil || n <= 0 || b.reserve(n) }

// Release gives back n bytes charged by Reserve.
func (b *Budget) Release(n int64) {
	if b != nil {
		b.release(n)
	}
}

// take charges n bytes to b alone if they fit.
func (b *Budget) take(n int64) bool {
	for {
		u := b.used.Load()
		if u+n > b.limit {
			return false
		}
		if b.used.CompareAndSwap(u, u+n) {
			return true
		}
	}
}

// reserve charges n bytes to b and its parents, evicting cached groups
// where they do not fit; false if they do not fit even so. No track or
// group lock may be held.
func (b *Budget) reserve(n int64) bool {
	for l := b; l != nil; l = l.parent {
		if l.take(n) {
			continue
		}
		l.shed(n)
		if !l.take(n) {
			for u := b; u != l; u = u.parent {
				u.used.Add(-n)
			}
			return false
		}
	}
	return true
}

// release returns n charged bytes to b and its parents.
func (b *Budget) release(n int64) {
	if n == 0 {
		return
	}
	for l := b; l != nil; l = l.parent {
		l.used.Add(-n)
	}
}

// shed evicts finished cached groups of b's tracks until n more bytes fit.
func (b *Budget) shed(n int64) {
	b.mu.Lock()
	tracks := slices.Collect(maps.Keys(b.tracks))
	b.mu.Unlock()
	for _, t := range tracks {
		if b.used.Load()+n <= b.limit {
			return
		}
		t.shed(func() bool { return b.used.Load()+n <= b.limit })
	}
}

// register makes t's cached groups evictable by b and its parents.
func (b *Budget) register(t *track) {
	for l := b; l != nil; l = l.parent {
		l.mu.Lock()
		if l.tracks == nil { // every session has a budget, most never charged
			l.tracks = map[*track]struct{}{}
		}
		l.tracks[t] = struct{}{}
		l.mu.Unlock()
	}
}

func (b *Budget) unregister(t *track) {
	for l := b; l != nil; l = l.parent {
		l.mu.Lock()
		delete(l.tracks, t)
		l.mu.Unlock()
	}
}
