package session

import "testing"

// Audit probe: a DROP range that jumps low past a group that arrived out of
// order leaves that group in seen below low; covered() still counts it, so
// the span reports every group before END accounted for while one is not.
func TestAuditSpanStaleSeenAfterDropJump(t *testing.T) {
	var s groupSpan
	s.started(0)
	s.arrived(5)     // out of order: seen {5}
	s.dropped(0, 10) // low jumps to 11; 5 stays in seen
	for g := uint64(11); g <= 18; g++ {
		s.arrived(g)
	}
	s.ended(20) // groups 11..19 owed; 19 has not arrived
	if s.covered() {
		t.Fatalf("covered with group 19 missing (low %d, seen %v)", s.low, s.seen)
	}
}
