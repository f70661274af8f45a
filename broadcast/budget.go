package broadcast

import (
	"maps"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// Budget bounds the payload bytes held by the groups of every track made
// with it (Limits.Budget): the frames of groups still being written, and
// those of finished groups their track caches. A write that would take it
// over its limit first evicts finished groups from those tracks' caches,
// oldest first within each track (never a track's latest group, nor one a
// back-pressured consumer still needs); if that frees too little, the write
// fails with ErrBudget and writes nothing. Budgets nest: a budget with a
// parent (a session's, under a node's) charges both, and a write must fit
// in each.
//
// A budget with children (a node's, over its sessions') is shared fairly:
// when evicting finished groups does not make room, a write of one child
// takes groups from the child that holds the most, if that one holds more
// than the writer would with the write: its oldest groups still being
// written are aborted with ErrBudget (their consumers read the frames
// written so far, then get the error) and evicted, then if need be its
// oldest finished ones are evicted. So no few children
// whose groups never finish can hold the whole budget: while k children
// hold some of it, each can grow to budget/k, but for the groups a
// back-pressured reader still needs (never taken back) and a write that
// finds room only past maxVictims children (refused). A Budget is safe for
// concurrent use.
type Budget struct {
	limit  int64
	parent *Budget
	used   atomic.Int64

	mu     sync.Mutex
	tracks map[*track]struct{} // tracks holding charged bytes, to evict from (made with the first)

	hasChildren atomic.Bool // some budget has b as its parent: reclaim has some to take from

	// reclaiming serialises takings from children: writers that find the
	// budget full at once would otherwise each abort a group for the same
	// room.
	reclaiming sync.Mutex
}

// NewBudget returns a budget of limit bytes (at least 1) within parent,
// which may be nil.
func NewBudget(limit int64, parent *Budget) *Budget {
	if parent != nil {
		parent.hasChildren.Store(true)
	}
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
		if !l.take(n) && !l.reclaim(n, b) {
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

// maxVictims bounds how many children one write takes groups from: a
// child whose charges are groups a back-pressured consumer needs, or a
// whole group being charged before its track has it, gives back too little.
const maxVictims = 4

// reclaim takes n bytes of b for a write of from's (b itself or a budget
// within it), from the groups of the child of b that holds the most, while
// it holds more than from's side: see Budget. False, charging nothing, if
// that frees too little.
func (b *Budget) reclaim(n int64, from *Budget) bool {
	if !b.hasChildren.Load() {
		return false // a session's budget: its tracks are its own
	}
	mine := b.childOf(from)
	b.reclaiming.Lock()
	defer b.reclaiming.Unlock()
	var spent []*Budget // children that gave back too little
	for range maxVictims {
		if b.take(n) { // a concurrent writer's taking or a release made room
			return true
		}
		held := n // what the writer's side holds with the write
		if mine != nil {
			held = mine.Used() // charged with n already: lower levels go first
		}
		v := b.biggest(held, mine, spent)
		if v == nil {
			return false
		}
		v.giveBack(func() bool { return b.used.Load()+n <= b.limit })
		spent = append(spent, v)
	}
	return b.take(n)
}

// childOf returns the child of b that d is, or is within; nil if d is b or
// not within it.
func (b *Budget) childOf(d *Budget) *Budget {
	for ; d != nil; d = d.parent {
		if d.parent == b {
			return d
		}
	}
	return nil
}

// biggest returns the child of b, among those with tracks and other than
// mine or one in spent, that holds the most, if it holds more than held.
func (b *Budget) biggest(held int64, mine *Budget, spent []*Budget) *Budget {
	b.mu.Lock()
	tracks := slices.Collect(maps.Keys(b.tracks))
	b.mu.Unlock()
	var v *Budget
	top := held
	for _, t := range tracks {
		c := b.childOf(t.lim.Budget)
		if c == nil || c == mine || c == v || slices.Contains(spent, c) {
			continue
		}
		if u := c.Used(); u > top {
			v, top = c, u
		}
	}
	return v
}

// giveBack evicts b's groups until enough says so: first those still
// being written, aborted, then finished ones (latest groups: the others
// were shed already), oldest first over all its tracks. A group that never
// finishes is what holds the budget for nothing; a track's latest group
// is what a consumer joining it starts with.
func (b *Budget) giveBack(enough func() bool) {
	b.mu.Lock()
	tracks := slices.Collect(maps.Keys(b.tracks))
	b.mu.Unlock()
	type held struct {
		t        *track
		g        *group
		finished bool
		created  time.Time
	}
	var groups []held
	for _, t := range tracks {
		for _, g := range t.reclaimable() {
			groups = append(groups, held{t, g, g.finished(), g.created})
		}
	}
	slices.SortFunc(groups, func(x, y held) int {
		if x.finished != y.finished {
			if x.finished {
				return 1
			}
			return -1
		}
		return x.created.Compare(y.created)
	})
	for _, h := range groups {
		if enough() {
			return
		}
		h.t.reclaim(h.g)
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
