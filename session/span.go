// The groups a subscription is owed, from the publisher's lite-05 responses:
// START says where the groups served begin, DROP which ones will never
// come, END where they stop, so the track can end as soon as every group
// before END has arrived instead of waiting Limits.FinishGrace for
// stragglers.

package session

import "slices"

// Bounds of a groupSpan's bookkeeping: past them it gives up (lost), and
// the track's end waits FinishGrace as on lite-03/04.
const (
	maxSpanSeen  = 4096 // groups accounted for out of order, above low
	maxSpanDrops = 64   // dropped ranges above low, after merging
)

// seqRange is an inclusive range of group sequences.
type seqRange struct{ start, end uint64 }

// groupSpan accounts for a subscription's groups: every group at or after
// the start and before low is accounted for (arrived, by stream or
// datagram, whole or not, or dropped); above low, seen holds the groups
// that arrived and drops the ranges dropped. Guarded by subscription.mu.
type groupSpan struct {
	low    uint64
	seen   map[uint64]struct{}
	drops  []seqRange
	end    uint64 // END's group: none at or after it comes
	hasEnd bool
	// lost: more out of order than the bounds keep, or a range too large
	// to be sure of; covered is false from then on.
	lost bool
}

// started notes START: no group before g is served.
func (s *groupSpan) started(g uint64) {
	if g <= s.low {
		return
	}
	s.raise(g)
	s.compact()
}

// raise moves low up to g, forgetting the groups seen below it: they are
// accounted for, and only what lies at or above low is counted.
func (s *groupSpan) raise(g uint64) {
	s.low = g
	for k := range s.seen {
		if k < g {
			delete(s.seen, k)
		}
	}
}

// arrived notes that group g arrived.
func (s *groupSpan) arrived(g uint64) {
	if s.lost || g < s.low {
		return
	}
	if g == s.low {
		s.low++
		s.compact()
		return
	}
	if s.seen == nil {
		s.seen = make(map[uint64]struct{})
	}
	s.seen[g] = struct{}{}
	if len(s.seen) > maxSpanSeen {
		s.giveUp()
	}
}

// dropped notes DROP: groups start through end never come.
func (s *groupSpan) dropped(start, end uint64) {
	if s.lost || end < start || end < s.low {
		return
	}
	s.drops = append(s.drops, seqRange{max(start, s.low), end})
	slices.SortFunc(s.drops, func(a, b seqRange) int {
		switch {
		case a.start < b.start:
			return -1
		case a.start > b.start:
			return 1
		}
		return 0
	})
	merged := s.drops[:1]
	for _, r := range s.drops[1:] {
		last := &merged[len(merged)-1]
		if r.start <= last.end || r.start-last.end == 1 {
			last.end = max(last.end, r.end)
			continue
		}
		merged = append(merged, r)
	}
	s.drops = merged
	if len(s.drops) > maxSpanDrops {
		s.giveUp()
		return
	}
	s.compact()
}

// ended notes END: no group at or after g comes.
func (s *groupSpan) ended(g uint64) { s.end, s.hasEnd = g, true }

func (s *groupSpan) giveUp() { s.lost, s.seen, s.drops = true, nil, nil }

// compact moves low past the groups accounted for right above it.
func (s *groupSpan) compact() {
	for {
		if _, ok := s.seen[s.low]; ok {
			delete(s.seen, s.low)
			s.low++
			continue
		}
		if len(s.drops) > 0 && s.drops[0].start <= s.low {
			r := s.drops[0]
			s.drops = s.drops[1:]
			if r.end >= s.low {
				if r.end == ^uint64(0) {
					s.giveUp()
					return
				}
				s.raise(r.end + 1) // with groups seen out of order inside the range
			}
			continue
		}
		return
	}
}

// covered reports whether END has come and every group before it, from
// the start, is accounted for. A START of 0 with no group 0 (moqp2p's
// publisher says 0 when the track had no group yet, whose first may have
// any sequence) leaves the start unknown: never covered, the track ends
// after FinishGrace as on lite-03/04.
func (s *groupSpan) covered() bool {
	if !s.hasEnd || s.lost {
		return false
	}
	if s.low >= s.end {
		return true
	}
	// Every sequence in [low, end) must be seen or dropped: count them.
	var n uint64
	for k := range s.seen {
		if k < s.end && !s.droppedHas(k) {
			n++
		}
	}
	for _, r := range s.drops {
		if lo, hi := r.start, min(r.end, s.end-1); lo <= hi {
			n += hi - lo + 1
		}
	}
	return n >= s.end-s.low
}

func (s *groupSpan) droppedHas(g uint64) bool {
	for _, r := range s.drops {
		if g >= r.start && g <= r.end {
			return true
		}
	}
	return false
}

// gaps returns the ranges below end neither arrived nor dropped, from the
// start on, lowest first; false if they are not known (lost) or more than
// max.
func (s *groupSpan) gaps(end uint64, max int) ([]seqRange, bool) {
	if s.lost {
		return nil, false
	}
	keys := make([]uint64, 0, len(s.seen))
	for k := range s.seen {
		if k < end {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	var out []seqRange
	next := s.low
	add := func(lo, hi uint64) bool { // [lo, hi) less the dropped
		for _, d := range s.drops {
			if lo >= hi {
				return true
			}
			if d.end < lo || d.start >= hi {
				continue
			}
			if d.start > lo {
				out = append(out, seqRange{lo, d.start - 1})
			}
			lo = d.end + 1
			if d.end == ^uint64(0) {
				lo = hi
			}
		}
		if lo < hi {
			out = append(out, seqRange{lo, hi - 1})
		}
		return len(out) <= max
	}
	for _, k := range keys {
		if !add(next, k) {
			return nil, false
		}
		next = k + 1
	}
	if !add(next, end) {
		return nil, false
	}
	return out, true
}
