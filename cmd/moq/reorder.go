package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/moqp2p/moqp2p/broadcast"
)

// reorderWait is how long a live subscriber waits for a missing group
// before skipping it: groups travel on streams of their own and a later one
// often lands first, but a group that was dropped never comes. It is also
// how long the first group to arrive waits for an earlier one. Half a
// second covers reordering and a loss recovery on any usable path; too short
// skips groups that were merely late (a gap the viewer sees), too long
// stalls the output that much at each dropped group.
const reorderWait = 500 * time.Millisecond

// Bounds on what the in-order stage holds besides the group it is reading:
// groups that arrived ahead of a missing one. Their frames stay in the
// received track's groups (nothing is copied), so these bound the memory a
// publisher can make a subscriber hold on top of the session's own caches.
const (
	// maxAhead is how many groups may wait behind a missing one: more than
	// can overtake a group that is still coming (a session has at most
	// about 1000 incoming group streams open and its track caches at most
	// broadcast.DefaultCacheMaxGroups), so that tiny groups racing each
	// other are not taken for lost. Each costs a few hundred bytes besides
	// its payload.
	maxAhead = 4096
	// maxAheadBytes is how many payload bytes of complete groups may wait
	// behind a missing one. A group still arriving counts when it completes;
	// until then the session's group limit (broadcast.Limits.GroupMaxBytes)
	// bounds it.
	maxAheadBytes = 32 << 20
)

// lostWait is how long a complete transfer (strict) waits for a missing
// group once maxAhead later groups have arrived: the publisher sends a
// bounded number of groups at once, so a group that far behind the others
// is not coming.
const lostWait = 10 * time.Second

// startWarnWait is how long a complete transfer waits for group 0, with
// later groups arrived, before it warns that the track may have started
// without it (a live publisher's). Far longer than group 0 of a finite
// transfer takes to overtake the groups sent after it.
const startWarnWait = 3 * time.Second

// inOrder reads the groups of a track and hands their frames on in group
// sequence order, each group's frames in arrival order. Frames of the group
// at the head go out as they arrive; later groups wait (unread, in the
// track's cache) until every group before them is done.
//
// A group that never comes is handled by mode. A live stage (strict false)
// skips it after reorderWait, or at once when maxAhead groups wait behind
// it; a group that arrives after it was skipped is dropped. A strict stage
// (a file transfer) starts at group 0 and never skips: it stops taking
// groups while maxAhead wait
// (the session's flow control then pushes back), and a group counts as lost
// only when the track ends without it, when it ends with an error, or when
// it is still missing lostWait after the stage filled up. Either way
// skipped and lost groups are recorded, and Run's caller says so.
type inOrder struct {
	strict   bool
	wait     time.Duration // reorderWait; shorter in tests
	lostWait time.Duration // lostWait; shorter in tests
	log      *slog.Logger
	// emit takes the next frame in order; false stops the stage.
	emit func(seq uint64, frame []byte) (more bool)
	// idle is called before the stage waits for the network: a moment to
	// flush output.
	idle func()

	mu      sync.Mutex
	ahead   map[uint64]*broadcast.GroupConsumer // arrived, not yet read
	growing map[uint64]bool                     // the groups in ahead still arriving
	bytes   int64                               // payload of the complete groups in ahead
	started bool                                // next is known
	next    uint64                              // the group at the head
	firstAt time.Time                           // when the first group arrived
	gapAt   time.Time                           // when the head was first found missing with later groups waiting
	ended   error                               // the track's end: io.EOF or why it failed; nil while open
	wake    chan struct{}                       // capacity 1: the emitting side waits on it
	room    chan struct{}                       // capacity 1: the receiving side waits on it
	missed  groupSet                            // skipped (live) or lost (strict)
	late    uint64                              // groups that arrived after they were skipped
	// warnedStart: a strict stage said why it waits for group 0.
	warnedStart bool
}

func newInOrder(strict bool, log *slog.Logger, emit func(uint64, []byte) bool, idle func()) *inOrder {
	// A complete transfer starts at group 0, whenever it arrives; a live
	// subscriber starts where the track is when it joins.
	return &inOrder{
		started:  strict,
		strict:   strict,
		wait:     reorderWait,
		lostWait: lostWait,
		log:      log,
		emit:     emit,
		idle:     idle,
		ahead:    map[uint64]*broadcast.GroupConsumer{},
		growing:  map[uint64]bool{},
		wake:     make(chan struct{}, 1),
		room:     make(chan struct{}, 1),
	}
}

// errStopped means emit asked for no more frames.
var errStopped = errors.New("enough frames")

// run reads tc until the track ends (nil, or the track's error), emit says
// stop (nil), or ctx ends (ctx.Err()). It returns once its receiving
// goroutine has ended too.
func (o *inOrder) run(ctx context.Context, tc *broadcast.TrackConsumer) error {
	var wg sync.WaitGroup
	defer wg.Wait() // after cancel, which ends it
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	wg.Go(func() { o.receive(ctx, tc) })
	err := o.deliver(ctx)
	if errors.Is(err, errStopped) {
		return nil
	}
	return err
}

// receive takes groups off the track as they arrive, while there is room.
func (o *inOrder) receive(ctx context.Context, tc *broadcast.TrackConsumer) {
	for {
		if !o.waitRoom(ctx) {
			return
		}
		g, err := tc.RecvGroup(ctx)
		if ctx.Err() != nil {
			return
		}
		o.mu.Lock()
		if err != nil {
			o.ended = err
			poke(o.wake)
			o.mu.Unlock()
			return
		}
		seq := g.Sequence()
		switch {
		case o.started && seq < o.next:
			o.late++
			o.log.Debug("group arrived after later ones were handed on: dropped", "group", seq)
		case o.ahead[seq] != nil:
			// A duplicate sequence cannot come out of one track.
		default:
			o.ahead[seq] = g
			o.growing[seq] = true
			if o.firstAt.IsZero() {
				o.firstAt = time.Now()
			}
			poke(o.wake)
		}
		o.mu.Unlock()
	}
}

// full reports whether the groups waiting ahead reach a bound. o.mu is held.
func (o *inOrder) full() bool {
	if len(o.ahead) >= maxAhead {
		return true
	}
	for seq := range o.growing {
		if _, b, complete := o.ahead[seq].Remaining(maxGroupFrames, maxAheadBytes); complete {
			o.bytes += b
			delete(o.growing, seq)
		}
	}
	return o.bytes >= maxAheadBytes
}

// waitRoom waits until another group may be taken off the track.
func (o *inOrder) waitRoom(ctx context.Context) bool {
	for {
		o.mu.Lock()
		full := o.full()
		o.mu.Unlock()
		if !full {
			return true
		}
		select {
		case <-o.room:
		case <-ctx.Done():
			return false
		}
	}
}

// deliver hands the frames on in order until the track ends.
func (o *inOrder) deliver(ctx context.Context) error {
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		o.mu.Lock()
		g, wait, end := o.head()
		o.mu.Unlock()
		if g != nil {
			poke(o.room)
			if err := o.deliverGroup(ctx, g); err != nil {
				return err
			}
			continue
		}
		if end != nil {
			if errors.Is(end, io.EOF) {
				return nil
			}
			return end
		}
		o.idle()
		var timeout <-chan time.Time
		if wait > 0 {
			timer.Reset(wait)
			timeout = timer.C
		}
		select {
		case <-o.wake:
		case <-timeout:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// head returns the group to read next, taking it out of o.ahead. Otherwise
// it returns how long to wait before a missing group may be given up (0:
// until woken), or the track's end once nothing is left. o.mu is held.
func (o *inOrder) head() (g *broadcast.GroupConsumer, wait time.Duration, end error) {
	for {
		if len(o.ahead) == 0 {
			return nil, 0, o.ended
		}
		if !o.started {
			first := o.first()
			// The first group to arrive may not be the first sent: wait a
			// moment for an earlier one, unless this is group 0.
			if first != 0 && o.ended == nil && !o.full() {
				if left := o.wait - time.Since(o.firstAt); left > 0 {
					return nil, left, nil
				}
			}
			o.started, o.next = true, first
		}
		if g := o.ahead[o.next]; g != nil {
			o.take(o.next)
			o.gapAt = time.Time{}
			return g, 0, nil
		}
		first := o.first()
		// o.next is missing and later groups wait.
		if o.gapAt.IsZero() {
			o.gapAt = time.Now()
		}
		giveUp := o.ended != nil // the track is over: it is not coming
		if !giveUp {
			limit := o.wait
			switch {
			case o.strict && o.full():
				limit = o.lostWait
			case o.strict:
				if o.next == 0 && !o.warnedStart {
					// A live publisher's track starts at its latest group
					// for a new subscriber: group 0 is not coming, and a
					// newcomer waiting on a silent sub should hear why.
					if left := startWarnWait - time.Since(o.gapAt); left > 0 {
						return nil, left, nil
					}
					o.warnedStart = true
					o.log.Warn(fmt.Sprintf("waiting for group 0: --out without --count writes the whole track from its start, "+
						"but the first group to arrive is %d; if the publisher is live (pub --frames 0), it has dropped the earlier ones: "+
						"add --count N (or drop --out) to take the track from where it is", first))
				}
				return nil, 0, nil // wait for it, or for the track's end
			case o.full():
				limit = 0
			}
			if left := limit - time.Since(o.gapAt); left > 0 {
				return nil, left, nil
			}
		}
		o.missed.add(o.next, first-1)
		o.log.Debug("giving up missing groups", "from", o.next, "to", first-1, "ahead", len(o.ahead), "waited", time.Since(o.gapAt))
		o.next, o.gapAt = first, time.Time{}
	}
}

// first is the lowest group waiting. o.mu is held.
func (o *inOrder) first() uint64 { return slices.Min(slices.Collect(maps.Keys(o.ahead))) }

// take removes group seq from those waiting. o.mu is held.
func (o *inOrder) take(seq uint64) {
	if o.growing[seq] {
		delete(o.growing, seq)
	} else if _, b, complete := o.ahead[seq].Remaining(maxGroupFrames, maxAheadBytes); complete {
		o.bytes -= b
	}
	delete(o.ahead, seq)
}

// deliverGroup hands on the frames of the head group as they arrive.
func (o *inOrder) deliverGroup(ctx context.Context, g *broadcast.GroupConsumer) error {
	seq := g.Sequence()
	defer func() {
		o.mu.Lock()
		o.next = seq + 1
		o.mu.Unlock()
	}()
	for {
		f, ok, err := g.TryReadFrame()
		if !ok { // nothing at hand: flush before waiting
			o.idle()
			f, err = g.ReadFrame(ctx)
		}
		switch {
		case err == nil:
			if !o.emit(seq, f) {
				return errStopped
			}
		case errors.Is(err, io.EOF):
			return nil
		case ctx.Err() != nil:
			return ctx.Err()
		default: // reset by the publisher, or evicted from under us
			o.mu.Lock()
			o.missed.add(seq, seq)
			o.mu.Unlock()
			o.log.Debug("group ended early", "group", seq, "err", err)
			return nil
		}
	}
}

// result returns the groups given up and how many arrived after that.
func (o *inOrder) result() (missed groupSet, late uint64) {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.missed, o.late
}

func poke(c chan struct{}) {
	select {
	case c <- struct{}{}:
	default:
	}
}

// groupSet is a set of group sequences kept as ascending, disjoint ranges
// (groups are given up in order, so adding is appending).
type groupSet struct {
	ranges [][2]uint64
	n      uint64
}

func (s *groupSet) add(from, to uint64) {
	if to < from {
		return
	}
	s.n += to - from + 1
	if k := len(s.ranges); k > 0 && s.ranges[k-1][1]+1 == from {
		s.ranges[k-1][1] = to
		return
	}
	s.ranges = append(s.ranges, [2]uint64{from, to})
}

// count is the number of groups in the set.
func (s groupSet) count() uint64 { return s.n }

// String lists the groups as "3, 7-9", the first few ranges only.
func (s groupSet) String() string {
	const show = 8
	parts := make([]string, 0, min(len(s.ranges), show)+1)
	for i, r := range s.ranges {
		if i == show {
			parts = append(parts, fmt.Sprintf("and %d more ranges", len(s.ranges)-show))
			break
		}
		if r[0] == r[1] {
			parts = append(parts, fmt.Sprint(r[0]))
		} else {
			parts = append(parts, fmt.Sprintf("%d-%d", r[0], r[1]))
		}
	}
	return strings.Join(parts, ", ")
}
