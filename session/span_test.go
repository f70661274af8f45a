package session

import (
	"context"
	"errors"
	"io"
	"slices"
	"testing"
	"time"

	"github.com/moqp2p/moqp2p/broadcast"
	"github.com/moqp2p/moqp2p/internal/wire"
	"github.com/moqp2p/moqp2p/transport"
)

func TestGroupSpan(t *testing.T) {
	type step struct {
		op         string // start, got, drop, end
		a, b       uint64
		wantCovers bool
	}
	for name, steps := range map[string][]step{
		"in order": {{"start", 0, 0, false}, {"got", 0, 0, false}, {"got", 1, 0, false}, {"end", 3, 0, false}, {"got", 2, 0, true}},
		"out of order": {{"start", 5, 0, false}, {"got", 7, 0, false}, {"end", 8, 0, false}, {"got", 6, 0, false},
			{"got", 5, 0, true}},
		"groups before START":    {{"got", 9, 0, false}, {"got", 10, 0, false}, {"start", 9, 0, false}, {"end", 11, 0, true}},
		"empty track":            {{"end", 0, 0, true}},
		"START past END":         {{"start", 4, 0, false}, {"end", 4, 0, true}},
		"dropped":                {{"start", 0, 0, false}, {"got", 0, 0, false}, {"drop", 1, 3, false}, {"got", 4, 0, false}, {"end", 5, 0, true}},
		"dropped, then late":     {{"start", 2, 0, false}, {"drop", 3, 3, false}, {"end", 5, 0, false}, {"got", 4, 0, false}, {"got", 2, 0, true}},
		"overlapping drops":      {{"start", 1, 0, false}, {"drop", 4, 6, false}, {"drop", 1, 5, false}, {"end", 7, 0, true}},
		"drop to the end":        {{"start", 3, 0, false}, {"end", 10, 0, false}, {"drop", 3, 9, true}},
		"START 0, no group 0":    {{"start", 0, 0, false}, {"got", 5, 0, false}, {"end", 6, 0, false}},
		"no START, group 0 came": {{"got", 0, 0, false}, {"end", 1, 0, true}},
		"a drop to the last sequence gives up": {{"start", 1, 0, false}, {"drop", 1, ^uint64(0), false},
			{"end", 3, 0, false}},
	} {
		t.Run(name, func(t *testing.T) {
			var s groupSpan
			for i, st := range steps {
				switch st.op {
				case "start":
					s.started(st.a)
				case "got":
					s.arrived(st.a)
				case "drop":
					s.dropped(st.a, st.b)
				case "end":
					s.ended(st.a)
				}
				if got := s.covered(); got != st.wantCovers {
					t.Fatalf("after step %d (%s %d %d): covered %v, want %v (%+v)", i, st.op, st.a, st.b, got, st.wantCovers, s)
				}
			}
		})
	}
}

// The span's bookkeeping is bounded: groups far out of order give it up,
// and the track then ends as on lite-03/04.
func TestGroupSpanBounded(t *testing.T) {
	var s groupSpan
	s.started(1)
	for g := uint64(2); g < maxSpanSeen+3; g++ {
		s.arrived(g)
	}
	s.arrived(1)
	s.ended(maxSpanSeen + 3)
	if !s.lost || s.covered() || len(s.seen) != 0 {
		t.Fatalf("after %d groups out of order: lost %v, covered %v, %d kept", maxSpanSeen+1, s.lost, s.covered(), len(s.seen))
	}
	var d groupSpan
	for g := uint64(0); g <= maxSpanDrops; g++ {
		d.dropped(10+2*g, 10+2*g)
	}
	if !d.lost {
		t.Fatalf("%d separate drops kept", len(d.drops))
	}
}

// lite05Subscription subscribes the session to cam/video at a raw lite-05
// publisher (no eager START, as moq-net's) and returns the consumer, the
// subscribe stream and the subscription's ID.
func lite05Subscription(t *testing.T, ctx context.Context, p *rawPeer) (*broadcast.TrackConsumer, transport.Stream, uint64) {
	t.Helper()
	p.sendSetup05(t, ctx, wire.Setup{})
	res := p.subscribeAsync(ctx, "cam", "video")
	p.answerTrack05(t, ctx, wire.TrackInfo{Timescale: 1000})
	r := waitSub(t, ctx, res)
	if r.err != nil {
		t.Fatal(r.err)
	}
	t.Cleanup(r.tc.Close)
	st, s := p.acceptSubscribe(t, ctx)
	return r.tc, st, s.ID
}

// sendGroup05 sends group seq of subscription id with one stamped frame.
func (p *rawPeer) sendGroup05(t *testing.T, ctx context.Context, id, seq uint64) {
	t.Helper()
	gs := p.openGroup(t, ctx, id, seq)
	rawWrite(t, gs, rawCat([]byte{0}, rawFrame("g")))
	_ = gs.Close()
}

// recvGroups reads n groups from tc and returns their sequences.
func recvGroups(t *testing.T, ctx context.Context, tc *broadcast.TrackConsumer, n int) []uint64 {
	t.Helper()
	var seqs []uint64
	for range n {
		g, err := tc.RecvGroup(ctx)
		if err != nil {
			t.Fatalf("after groups %v: %v", seqs, err)
		}
		if frames, err := groupFrames(ctx, g); !errors.Is(err, io.EOF) || len(frames) != 1 {
			t.Fatalf("group %d: %q %v", g.Sequence(), frames, err)
		}
		seqs = append(seqs, g.Sequence())
	}
	return seqs
}

// wantEndWithin requires tc to end (io.EOF) within d: far less than the
// FinishGrace the session was given, so the end came from END.
func wantEndWithin(t *testing.T, ctx context.Context, tc *broadcast.TrackConsumer, d time.Duration) {
	t.Helper()
	start := time.Now()
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	if g, err := tc.RecvGroup(ctx); !errors.Is(err, io.EOF) {
		t.Fatalf("after %v: group %v, %v; want the track's end", time.Since(start), g, err)
	}
}

// slowGrace is a FinishGrace no test waits for: a track that ends within
// a test's time ended at END.
const slowGrace = time.Minute

// A lite-05 subscription ends once END has come and every group before it
// arrived, neither waiting FinishGrace nor for the publisher's FIN; not
// before a group still owed arrived. The FIN that follows is answered.
func TestLite05EndFinishesTrack(t *testing.T) {
	ctx := testCtx(t)
	p := newRawPeer(t, wire.ALPNLite05, Config{Interest: []string{}, Limits: Limits{FinishGrace: slowGrace}}, true)
	tc, st, id := lite05Subscription(t, ctx, p)
	rawWrite(t, st, p.response(t, &wire.SubscribeStart{Group: 0}))
	p.sendGroup05(t, ctx, id, 0)
	p.sendGroup05(t, ctx, id, 1)
	rawWrite(t, st, p.response(t, &wire.SubscribeEnd{Group: 3}))
	if seqs := recvGroups(t, ctx, tc, 2); seqs[0] != 0 || seqs[1] != 1 {
		t.Fatalf("groups %v, want 0 1", seqs)
	}
	// Group 2 is owed: the track goes on.
	short, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
	g, err := tc.RecvGroup(short)
	cancel()
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("before group 2: %v %v, want nothing yet", g, err)
	}
	p.sendGroup05(t, ctx, id, 2)
	if seqs := recvGroups(t, ctx, tc, 1); seqs[0] != 2 {
		t.Fatalf("group %v, want 2", seqs)
	}
	wantEndWithin(t, ctx, tc, 5*time.Second)
	_ = st.Close() // the publisher's FIN, answered with ours
	if b, err := readStream(t, ctx, st); err != nil || len(b) != 0 {
		t.Fatalf("subscribe stream after END and FIN: %x %v, want our FIN", b, err)
	}
	p.wantUp(t)
}

// DROP accounts for the groups it names: a dropped group is not waited
// for (GetGroup), a track whose remaining groups were dropped ends at END
// at once, and one arriving out of order after the drop still counts.
func TestLite05DropSkipsRange(t *testing.T) {
	ctx := testCtx(t)
	p := newRawPeer(t, wire.ALPNLite05, Config{Interest: []string{}, Limits: Limits{FinishGrace: slowGrace}}, true)
	tc, st, id := lite05Subscription(t, ctx, p)
	rawWrite(t, st, p.response(t, &wire.SubscribeStart{Group: 10}))
	p.sendGroup05(t, ctx, id, 10)
	rawWrite(t, st, p.response(t, &wire.SubscribeDrop{Start: 11, End: 13, Error: uint64(broadcast.CodeOld)}))
	// No group after 10 has come: only the DROP can answer a fetch of 12.
	if g, err := tc.GetGroup(ctx, 12); !errors.Is(err, broadcast.ErrNotFound) {
		t.Fatalf("dropped group 12: %v %v, want ErrNotFound at once", g, err)
	}
	p.sendGroup05(t, ctx, id, 15)
	rawWrite(t, st, rawCat(p.response(t, &wire.SubscribeDrop{Start: 16, End: 19}), p.response(t, &wire.SubscribeEnd{Group: 20})))
	if seqs := recvGroups(t, ctx, tc, 2); seqs[0] != 10 || seqs[1] != 15 {
		t.Fatalf("groups %v, want 10 15", seqs)
	}
	short, cancel := context.WithTimeout(ctx, 300*time.Millisecond) // 14 is owed
	g, err := tc.RecvGroup(short)
	cancel()
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("before group 14: %v %v, want nothing yet", g, err)
	}
	p.sendGroup05(t, ctx, id, 14)
	if seqs := recvGroups(t, ctx, tc, 1); seqs[0] != 14 {
		t.Fatalf("group %v, want 14", seqs)
	}
	wantEndWithin(t, ctx, tc, 5*time.Second)
	p.wantUp(t)
}

// Without a START naming the first group (START 0 and no group 0: the
// first group may have any sequence), END cannot be accounted for: the
// track ends FinishGrace after END, as after a lite-03/04 FIN.
func TestLite05EndUnknownStartWaitsGrace(t *testing.T) {
	ctx := testCtx(t)
	const grace = 500 * time.Millisecond
	p := newRawPeer(t, wire.ALPNLite05, Config{Interest: []string{}, Limits: Limits{FinishGrace: grace}}, true)
	tc, st, id := lite05Subscription(t, ctx, p)
	rawWrite(t, st, p.response(t, &wire.SubscribeStart{Group: 0}))
	p.sendGroup05(t, ctx, id, 4)
	recvGroups(t, ctx, tc, 1)
	start := time.Now()
	rawWrite(t, st, p.response(t, &wire.SubscribeEnd{Group: 5}))
	wantEndWithin(t, ctx, tc, 5*time.Second)
	if d := time.Since(start); d < grace {
		t.Fatalf("ended %v after END, want FinishGrace (%v)", d, grace)
	}
	p.wantUp(t)
}

// gaps lists what was neither served nor dropped, from the start on: the
// DROPs our publisher writes before END.
func TestGroupSpanGaps(t *testing.T) {
	for name, c := range map[string]struct {
		start   uint64
		arrived []uint64
		drops   [][2]uint64
		end     uint64
		max     int
		want    []seqRange
		ok      bool
	}{
		"none":                 {start: 2, arrived: []uint64{2, 3, 4}, end: 5, max: 4, ok: true},
		"nothing served":       {start: 5, end: 5, max: 4, ok: true},
		"out of order, filled": {start: 0, arrived: []uint64{0, 2, 1, 3}, end: 4, max: 4, ok: true},
		"holes":                {start: 1, arrived: []uint64{1, 4, 9}, end: 10, max: 4, want: []seqRange{{2, 3}, {5, 8}}, ok: true},
		"hole at the start":    {start: 3, arrived: []uint64{5, 6}, end: 7, max: 4, want: []seqRange{{3, 4}}, ok: true},
		"less the dropped":     {start: 0, arrived: []uint64{0, 9}, drops: [][2]uint64{{2, 3}, {6, 6}}, end: 10, max: 4, want: []seqRange{{1, 1}, {4, 5}, {7, 8}}, ok: true},
		"too many":             {start: 0, arrived: []uint64{1, 3, 5, 7}, end: 8, max: 3},
	} {
		t.Run(name, func(t *testing.T) {
			var s groupSpan
			s.started(c.start)
			for _, g := range c.arrived {
				s.arrived(g)
			}
			for _, d := range c.drops {
				s.dropped(d[0], d[1])
			}
			got, ok := s.gaps(c.end, c.max)
			if ok != c.ok || !slices.Equal(got, c.want) {
				t.Fatalf("gaps %v %v, want %v %v", got, ok, c.want, c.ok)
			}
		})
	}
	var lost groupSpan
	lost.giveUp()
	if _, ok := lost.gaps(3, 4); ok {
		t.Fatal("gaps of a span given up")
	}
}

// A group that arrived out of order and that a DROP then jumped low past is
// accounted for once: it does not stand in for a later group still owed.
func TestSpanDropPastOutOfOrderGroup(t *testing.T) {
	var s groupSpan
	s.started(0)
	s.arrived(5)     // out of order
	s.dropped(0, 10) // low jumps to 11, past 5
	for g := uint64(11); g <= 18; g++ {
		s.arrived(g)
	}
	s.ended(20) // 11..19 owed; 19 has not arrived
	if s.covered() {
		t.Fatalf("covered with group 19 missing (low %d, seen %v)", s.low, s.seen)
	}
	if gaps, _ := s.gaps(20, 8); len(gaps) != 1 || gaps[0] != (seqRange{19, 19}) {
		t.Fatalf("gaps %v, want [19 19]", gaps)
	}
	s.arrived(19)
	if !s.covered() {
		t.Fatalf("not covered once 19 arrived (low %d, seen %v)", s.low, s.seen)
	}
}
