package session

import (
	"slices"
	"testing"
	"time"

	"github.com/moqp2p/moqp2p/broadcast"
	"github.com/moqp2p/moqp2p/internal/wire"
)

// A SUBSCRIBE_UPDATE that lifts the subscription's end has the groups
// held past the old end sent, then the later ones: the publisher holds
// groups past an end rather than dropping them (a relay upstream raises
// its end as its own subscribers ask for more).
func TestSubscribeUpdateLiftsEnd(t *testing.T) {
	forEach(t, []string{"moq-lite-03", "moq-lite-04", "moq-lite-05"}, func(t *testing.T, alpn string) {
		// Two held past an end of 1; one alone past an end of 0 (held
		// under the SUBSCRIBE's range, before any update).
		t.Run("two held", func(t *testing.T) { testUpdateLiftsEnd(t, alpn, 1, 2) })
		t.Run("one held", func(t *testing.T) { testUpdateLiftsEnd(t, alpn, 0, 1) })
	})
}

func testUpdateLiftsEnd(t *testing.T, alpn string, end uint64, past int) {
	ctx := testCtx(t)
	p := newRawPeer(t, alpn, Config{}, false)
	id := p.nextID
	p.nextID++
	st := p.openStream(t, ctx, rawCat(rawVarint(uint64(wire.StreamSubscribe)),
		p.msg(t, &wire.Subscribe{ID: id, Broadcast: "/cam", Track: "video", Priority: 100, End: wire.GroupAt(end)})), false)
	defer reset(st, broadcast.CodeCancel)
	eventually(t, func() bool { return len(p.sess.Subscriptions()) == 1 })

	got := map[uint64]bool{}
	groups := make(chan uint64, 64)
	go func() {
		for {
			rs, err := p.raw.AcceptUniStream(ctx)
			if err != nil {
				return
			}
			data, err := readStream(t, ctx, rs)
			if err != nil {
				continue
			}
			if g, err := p.parseGroup(data); err == nil && g.hdr.SubscribeID == id {
				groups <- g.hdr.Sequence
			}
		}
	}()
	// collect waits for want; with nudge it writes a group every 200 ms
	// meanwhile (an update is read on its own goroutine; held groups
	// are looked at again with the next group).
	collect := func(nudge bool, want ...uint64) {
		t.Helper()
		tick := time.NewTicker(200 * time.Millisecond)
		defer tick.Stop()
		for writes := 0; ; {
			if !slices.ContainsFunc(want, func(s uint64) bool { return !got[s] }) {
				return
			}
			select {
			case s := <-groups:
				got[s] = true
			case <-tick.C:
				if writes++; !nudge || writes > 20 {
					t.Fatalf("groups %v wanted, got %v", want, got)
				}
				if err := p.track.WriteFrame([]byte("x")); err != nil {
					t.Fatal(err)
				}
			case <-ctx.Done():
				t.Fatalf("groups %v wanted, got %v", want, got)
			}
		}
	}
	var inRange, held []uint64
	for seq := range end + 1 + uint64(past) {
		if err := p.track.WriteFrame([]byte("x")); err != nil {
			t.Fatal(err)
		}
		if seq <= end {
			inRange = append(inRange, seq)
		} else {
			held = append(held, seq)
		}
	}
	collect(false, inRange...)
	select {
	case s := <-groups:
		t.Fatalf("group %d sent past the subscription's end", s)
	case <-time.After(100 * time.Millisecond):
	}

	rawWrite(t, st, p.msg(t, &wire.SubscribeUpdate{Priority: 100})) // no end
	collect(true, append(held, end+1+uint64(past))...)
}

// groupRange: an update replaces the end, and the start only if it sets
// one; a range bounding nothing is nil.
func TestGroupRangeUpdated(t *testing.T) {
	var r *groupRange
	if r.place(7) != 0 {
		t.Fatal("nil range must hold every group")
	}
	r = r.updated(wire.GroupRef{}, wire.GroupAt(5))
	if r.place(5) != 0 || r.place(6) != 1 {
		t.Fatalf("end 5: place(5)=%d place(6)=%d", r.place(5), r.place(6))
	}
	r = r.updated(wire.GroupAt(3), wire.GroupAt(9))
	if r.place(2) != -1 || r.place(3) != 0 || r.place(9) != 0 || r.place(10) != 1 {
		t.Fatalf("start 3 end 9: %+v", r)
	}
	r = r.updated(wire.GroupRef{}, wire.GroupRef{})
	if r == nil || r.place(2) != -1 || r.place(1000) != 0 {
		t.Fatalf("an update without a start keeps the start: %+v", r)
	}
	var n *groupRange
	if n.updated(wire.GroupRef{}, wire.GroupRef{}) != nil {
		t.Fatal("a range bounding nothing must be nil")
	}
}

// The priority of a SUBSCRIBE_UPDATE applies to the groups sent after it.
func TestGroupSenderUpdate(t *testing.T) {
	gs := &groupSender{base: urgency(0), maxLatency: time.Second}
	gs.update(&wire.SubscribeUpdate{Priority: 255, Ordered: true, MaxLatency: 2 * time.Second}, true)
	if gs.base != urgency(255) || !gs.ordered || gs.maxLatency != 2*time.Second {
		t.Fatalf("after an update: base %d ordered %v max latency %v", gs.base, gs.ordered, gs.maxLatency)
	}
	gs.update(&wire.SubscribeUpdate{Priority: 0}, false) // lite-01/02: a priority only
	if gs.base != urgency(0) || !gs.ordered || gs.maxLatency != 2*time.Second {
		t.Fatalf("a priority-only update changed more: base %d ordered %v max latency %v", gs.base, gs.ordered, gs.maxLatency)
	}
}
