package broadcast

import "testing"

// TestRing pushes and pops across wrap-arounds and growth and checks the
// order against a plain slice.
func TestRing(t *testing.T) {
	var r ring
	var want []*group
	groups := make([]*group, 100)
	for i := range groups {
		groups[i] = &group{seq: uint64(i)}
	}
	next := 0
	for step := range 300 {
		if step%3 != 2 && next < len(groups) {
			r.push(groups[next])
			want = append(want, groups[next])
			next++
		} else if r.len() > 0 {
			r.pop()
			want = want[1:]
		}
		if step%7 == 0 && r.len() > 1 {
			r.clear(1)
			want[1] = nil
		}
		if r.len() != len(want) {
			t.Fatalf("step %d: len %d, want %d", step, r.len(), len(want))
		}
		for i, g := range want {
			if r.at(i) != g {
				t.Fatalf("step %d: element %d is %v, want %v", step, i, r.at(i), g)
			}
		}
	}
}
