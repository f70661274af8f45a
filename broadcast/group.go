package broadcast

import (
	"context"
	"io"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// group is the state shared by a GroupProducer and its consumers.
type group struct {
	seq     uint64
	lim     *Limits   // shared with the track; read-only
	created time.Time // when the producer started it: a group's age is measured from here

	mu     sync.RWMutex
	frames [][]byte // cached frames; frames[0] has index base
	// ts holds the frames' timestamps (in the track's Timescale), parallel
	// to frames; nil while no frame of the group has one (all read as 0),
	// so groups without timestamps cost nothing more.
	ts    []uint64
	base  int
	bytes int64         // payload bytes in frames
	acct  *atomic.Int64 // the track's cache byte count; nil once the track evicted this group
	done  bool          // finished or aborted
	// charged is what the group holds of its budget: its bytes while it is
	// cached or still being written, then nothing.
	charged int64
	// pending is what GroupProducer.Reserve holds of the budget for frames
	// being received; taken says the budget took the group back, and
	// pending with it (Budget.reclaim).
	pending int64
	taken   bool
	budget  *Budget // lim.Budget; read-only
	t       *track  // the track, once the group is in it; read-only from then
	err     error   // nil after a clean finish
	sig     signal
	// onReclaim is called when the budget aborts the group for another
	// session's sake (GroupProducer.OnReclaim).
	onReclaim func()

	prod  GroupProducer // the group's one producer handle, allocated with it
	first [2][]byte     // frames' first backing array: small groups need no other
	// cons is the group's first consumer, allocated with it: a group
	// usually has one reader per hop (the session sending it, or the
	// application reading it), and a one-frame group then costs one
	// allocation, not two. consTaken says it was handed out.
	cons      GroupConsumer
	consTaken atomic.Bool
}

func newGroup(seq uint64, lim *Limits, acct *atomic.Int64) *group {
	g := &group{seq: seq, lim: lim, created: lim.Now(), acct: acct, budget: lim.Budget}
	g.prod.g = g
	g.cons.g = g
	g.frames = g.first[:0]
	return g
}

// consume returns a new consumer of the group from its first frame: the
// one allocated with the group, the first time.
func (g *group) consume() *GroupConsumer {
	if !g.consTaken.Load() && g.consTaken.CompareAndSwap(false, true) {
		return &g.cons
	}
	return &GroupConsumer{g: g}
}

// GroupProducer writes the frames of one group. Its methods are safe for
// concurrent use, though a group normally has a single writer.
type GroupProducer struct{ g *group }

// Sequence returns the group's sequence number within its track.
func (p *GroupProducer) Sequence() uint64 { return p.g.seq }

// WriteFrame appends one frame. The group keeps payload and shares it with
// every consumer, so the caller must not modify it afterwards. Writing to a
// finished or aborted group returns ErrClosed; a frame larger than the group's
// byte limit returns ErrTooLarge.
func (p *GroupProducer) WriteFrame(payload []byte) error {
	return p.WriteFrames(payload)
}

// WriteFrames appends frames in order, as WriteFrame does one by one, but
// wakes the group's consumers once for all of them: a reader that received
// a burst of frames hands it over at the cost of one frame. A frame over
// the group's byte limit is refused with ErrTooLarge, after the frames
// before it were written.
func (p *GroupProducer) WriteFrames(frames ...[]byte) error {
	return p.g.write(frames, nil)
}

// Grow makes room for n more frames, so that a writer that knows (or can
// guess, as a relay from the track's previous group) how many frames are
// coming appends them without growing the group's frame list step by step.
func (p *GroupProducer) Grow(n int) {
	if n <= 0 {
		return
	}
	g := p.g
	g.mu.Lock()
	g.frames = slices.Grow(g.frames, n)
	g.mu.Unlock()
}

// WriteFrameAt is WriteFrame for a frame with a timestamp, in the track's
// Timescale units.
func (p *GroupProducer) WriteFrameAt(ts uint64, payload []byte) error {
	return p.g.write([][]byte{payload}, []uint64{ts})
}

// WriteFramesAt is WriteFrames for frames with timestamps: ts[i] is the
// timestamp of frames[i] (len(ts) must equal len(frames), else ErrTooLarge
// and nothing is written). Frames written without a timestamp read as 0.
func (p *GroupProducer) WriteFramesAt(ts []uint64, frames ...[]byte) error {
	if len(ts) != len(frames) {
		return withReason(ErrTooLarge, "%d timestamps for %d frames", len(ts), len(frames))
	}
	return p.g.write(frames, ts)
}

// write appends frames, with their timestamps ts (nil: none).
func (g *group) write(frames [][]byte, ts []uint64) error {
	frames, size, tooLarge := g.fit(frames)
	if ts != nil {
		ts = ts[:len(frames)]
	}
	if len(frames) == 0 && tooLarge != nil {
		return tooLarge
	}
	if !g.reserve(size) {
		return withReason(ErrBudget, "group %d: %d bytes over the budget", g.seq, size)
	}
	g.mu.Lock()
	if g.done {
		g.mu.Unlock()
		g.unreserve(size)
		return withReason(ErrClosed, "group %d: write after end", g.seq)
	}
	g.appendLocked(frames, ts, size)
	g.sig.notify()
	g.mu.Unlock()
	if t := g.t; t != nil && t.bytes.Load() > t.lim.CacheMaxBytes {
		t.trim() // evict on append too: a growing group must not take the cache past its bound
	}
	return tooLarge
}

// reserve charges size bytes about to be appended to the group's budget.
// No lock may be held: it may evict groups of other tracks.
func (g *group) reserve(size int64) bool {
	return g.budget == nil || size == 0 || g.budget.reserve(size)
}

func (g *group) unreserve(size int64) {
	if g.budget != nil {
		g.budget.release(size)
	}
}

// fit returns the frames up to the first one over the group's byte limit,
// their size, and ErrTooLarge if it cut one.
func (g *group) fit(frames [][]byte) ([][]byte, int64, error) {
	var size int64
	for i, f := range frames {
		n := int64(len(f))
		if n > g.lim.GroupMaxBytes {
			return frames[:i], size, withReason(ErrTooLarge, "frame of %d bytes over the group limit of %d", n, g.lim.GroupMaxBytes)
		}
		size += n
	}
	return frames, size, nil
}

// appendLocked adds frames of size bytes, with their timestamps ts (nil:
// none), evicting the oldest beyond the group's bounds. g.mu is held, or g
// is not shared yet.
func (g *group) appendLocked(frames [][]byte, ts []uint64, size int64) {
	if g.ts == nil && !slices.ContainsFunc(ts, nonZero) {
		ts = nil // all 0 so far: nothing to store
	}
	if ts != nil || g.ts != nil {
		if g.ts == nil { // the first timestamps: the frames before had none
			g.ts = make([]uint64, len(g.frames), len(g.frames)+len(frames))
		}
		if ts != nil {
			g.ts = append(g.ts, ts...)
		} else {
			g.ts = append(g.ts, make([]uint64, len(frames))...)
		}
	}
	g.frames = append(g.frames, frames...)
	g.bytes += size
	delta := size
	// Evict the oldest frames beyond the cache bounds; readers behind them get ErrLagged.
	for len(g.frames) > 1 && (g.bytes > g.lim.GroupMaxBytes || len(g.frames) > g.lim.GroupMaxFrames) {
		n := int64(len(g.frames[0]))
		g.bytes -= n
		delta -= n
		g.frames[0] = nil
		g.frames = g.frames[1:]
		if g.ts != nil {
			g.ts = g.ts[1:]
		}
		g.base++
	}
	if g.acct != nil {
		g.acct.Add(delta)
	}
	if g.budget != nil { // size was reserved; the evicted frames' bytes go back
		g.charged += delta
		g.budget.release(size - delta)
	}
}

func nonZero(ts uint64) bool { return ts != 0 }

// Finish ends the group cleanly: consumers read the remaining frames and then
// io.EOF. Finishing twice, or after Abort, returns ErrClosed.
func (p *GroupProducer) Finish() error {
	if !p.g.close(nil) {
		return withReason(ErrClosed, "group %d already ended", p.g.seq)
	}
	return nil
}

// Abort ends the group with err (ErrCancelled if nil). Consumers still read the
// frames already written, then get err. Aborting an ended group does nothing.
func (p *GroupProducer) Abort(err error) {
	if err == nil {
		err = ErrCancelled
	}
	p.g.close(err)
}

// Reserve charges n bytes of memory about to hold a frame of the group
// (one being received, before it is written) to the group's budget, as
// Budget.Reserve does; false, charging nothing, if they do not fit or the
// budget took the group back (OnReclaim). Release them before writing the
// frame, which charges it in turn. A budget that takes the group back
// takes what it reserved too, so that a stalled frame's bytes do not stay
// charged to nobody's group.
func (p *GroupProducer) Reserve(n int64) bool {
	g := p.g
	if n <= 0 || g.budget == nil {
		return true
	}
	if !g.budget.reserve(n) {
		return false
	}
	g.mu.Lock()
	taken := g.taken
	if !taken {
		g.pending += n
	}
	g.mu.Unlock()
	if taken {
		g.budget.release(n)
	}
	return !taken
}

// Release gives back n bytes charged by Reserve (none once the budget
// took the group back).
func (p *GroupProducer) Release(n int64) {
	g := p.g
	if n <= 0 || g.budget == nil {
		return
	}
	g.mu.Lock()
	n = min(n, g.pending)
	g.pending -= n
	g.mu.Unlock()
	g.budget.release(n)
}

// OnReclaim sets f to be called, without locks held, if the group's
// Budget aborts it to give its bytes to another session (see Budget): a
// receiver stops the stream that fills it there, so that the bytes it is
// still reading are given back too, and the peer learns why (ErrBudget).
func (p *GroupProducer) OnReclaim(f func()) {
	p.g.mu.Lock()
	p.g.onReclaim = f
	p.g.mu.Unlock()
}

// takeBack ends the group with err, if it had not ended, for its budget
// to take it back: what Reserve holds goes back now, and the OnReclaim
// hook runs if it was still being written. No lock may be held.
func (g *group) takeBack(err error) {
	aborted := g.close(err)
	g.mu.Lock()
	g.taken = true
	n := g.pending
	g.pending = 0
	f := g.onReclaim
	g.mu.Unlock()
	g.budget.release(n)
	if aborted && f != nil {
		f()
	}
}

// FrameCount returns the number of frames written so far.
func (p *GroupProducer) FrameCount() int {
	p.g.mu.RLock()
	defer p.g.mu.RUnlock()
	return p.g.base + len(p.g.frames)
}

// Consume returns a consumer that reads the group from its first frame.
func (p *GroupProducer) Consume() *GroupConsumer { return p.g.consume() }

// close ends the group with err (nil: cleanly); false if it had ended.
// No track lock may be held.
func (g *group) close(err error) bool {
	g.mu.Lock()
	if g.done {
		g.mu.Unlock()
		return false
	}
	g.done, g.err = true, err
	orphan := g.acct == nil && g.t != nil
	if g.acct == nil { // evicted while being written: it holds nothing more
		g.uncharge()
	}
	g.sig.notify()
	g.mu.Unlock()
	if orphan && g.budget != nil {
		g.t.forgetOrphan(g) // it must not keep its frames alive there
	}
	return true
}

// uncharge gives the group's bytes back to its budget. g.mu is held, or g
// is not shared.
func (g *group) uncharge() {
	if g.budget != nil {
		g.budget.release(g.charged)
		g.charged = 0
	}
}

// cachedBytes returns the payload bytes the group holds.
func (g *group) cachedBytes() int64 {
	g.mu.RLock()
	defer g.mu.RUnlock()
	return g.bytes
}

// evict detaches the group from its track's byte count, and from its
// budget once it has ended; it returns whether the group had ended.
func (g *group) evict() bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.acct != nil {
		g.acct.Add(-g.bytes)
		g.acct = nil
	}
	if g.done { // else it stays charged until its end
		g.uncharge()
	}
	return g.done
}

// finished tells whether the group has ended.
func (g *group) finished() bool {
	g.mu.RLock()
	defer g.mu.RUnlock()
	return g.done
}

// GroupConsumer reads the frames of one group in order, with its own cursor.
// A GroupConsumer is for one goroutine at a time.
type GroupConsumer struct {
	g    *group
	next int // index of the next frame to read
}

// Sequence returns the group's sequence number within its track.
func (c *GroupConsumer) Sequence() uint64 { return c.g.seq }

// Created returns when the producer started the group, by the track's clock.
func (c *GroupConsumer) Created() time.Time { return c.g.created }

// ReadFrame returns the next frame, waiting for it if needed. It returns io.EOF
// after the last frame of a finished group, the abort error of an aborted one,
// ErrLagged if the frame was evicted before this consumer reached it, and
// ctx.Err() if ctx ends first. The returned slice is shared with every other
// consumer and must not be modified.
func (c *GroupConsumer) ReadFrame(ctx context.Context) ([]byte, error) {
	for {
		f, wake, err := c.poll(true)
		if wake == nil {
			return f, err
		}
		if err := sleep(ctx, wake); err != nil {
			return nil, err
		}
	}
}

// ReadFrameAt is ReadFrame that also returns the frame's timestamp (0 for
// a frame written without one).
func (c *GroupConsumer) ReadFrameAt(ctx context.Context) ([]byte, uint64, error) {
	for {
		f, ts, wake, err := c.pollAt(true)
		if wake == nil {
			return f, ts, err
		}
		if err := sleep(ctx, wake); err != nil {
			return nil, 0, err
		}
	}
}

// TryReadFrameAt is TryReadFrame that also returns the frame's timestamp.
func (c *GroupConsumer) TryReadFrameAt() (frame []byte, ts uint64, ok bool, err error) {
	f, ts, wake, err := c.pollAt(false)
	return f, ts, wake == nil, err
}

// TryReadFramesAt is TryReadFrames that also appends the frames'
// timestamps to ts (0 for frames written without one).
func (c *GroupConsumer) TryReadFramesAt(dst [][]byte, ts []uint64, max int) ([][]byte, []uint64, error) {
	g := c.g
	g.mu.RLock()
	defer g.mu.RUnlock()
	i := c.next - g.base
	dst, err := c.takeLocked(dst, max)
	if n := c.next - g.base - i; n > 0 {
		if g.ts != nil {
			ts = append(ts, g.ts[i:i+n]...)
		} else {
			ts = append(ts, make([]uint64, n)...)
		}
	}
	return dst, ts, err
}

// TryReadFrame is ReadFrame without waiting: ok is false when the next frame
// has not been written yet. A writer uses it to batch the frames at hand and
// flush before it would block.
func (c *GroupConsumer) TryReadFrame() (frame []byte, ok bool, err error) {
	f, wake, err := c.poll(false)
	return f, wake == nil, err
}

// TryReadFrames is TryReadFrame for every frame at hand: it appends to dst,
// under one lock, the frames that are ready (at most max of them), and
// returns the extended slice. When none is ready it returns dst and the
// end of the group (io.EOF, the abort error, ErrLagged), or a nil error if
// the next frame has not been written yet.
func (c *GroupConsumer) TryReadFrames(dst [][]byte, max int) ([][]byte, error) {
	c.g.mu.RLock()
	defer c.g.mu.RUnlock()
	return c.takeLocked(dst, max)
}

// takeLocked is TryReadFrames with g.mu held.
func (c *GroupConsumer) takeLocked(dst [][]byte, max int) ([][]byte, error) {
	g := c.g
	if c.next < g.base {
		return dst, withReason(ErrLagged, "group %d: frame %d evicted", g.seq, c.next)
	}
	if i := c.next - g.base; i < len(g.frames) {
		n := min(len(g.frames)-i, max)
		c.next += n
		return append(dst, g.frames[i:i+n]...), nil
	}
	if g.done {
		if g.err != nil {
			return dst, g.err
		}
		return dst, io.EOF
	}
	return dst, nil
}

// Remaining reports whether the rest of the group is at hand: every frame
// this consumer has not read yet is written and the group finished cleanly
// after them. It also returns their number and payload bytes, and gives up
// (false) as soon as those exceed maxFrames or maxBytes. A writer uses it to
// send a small finished group in one go.
func (c *GroupConsumer) Remaining(maxFrames int, maxBytes int64) (frames int, bytes int64, complete bool) {
	g := c.g
	g.mu.RLock()
	defer g.mu.RUnlock()
	if !g.done || g.err != nil || c.next < g.base {
		return 0, 0, false
	}
	rest := g.frames[c.next-g.base:]
	if len(rest) > maxFrames {
		return 0, 0, false
	}
	for _, f := range rest {
		if bytes += int64(len(f)); bytes > maxBytes {
			return 0, 0, false
		}
	}
	return len(rest), bytes, true
}

// poll returns the next frame or the end, or (if nothing is ready) a channel
// to wait on; it only arms the wake-up when asked to.
func (c *GroupConsumer) poll(arm bool) ([]byte, <-chan struct{}, error) {
	f, _, wake, err := c.pollAt(arm)
	return f, wake, err
}

// pollAt is poll that also returns the frame's timestamp.
func (c *GroupConsumer) pollAt(arm bool) ([]byte, uint64, <-chan struct{}, error) {
	g := c.g
	g.mu.RLock()
	defer g.mu.RUnlock()
	if c.next < g.base {
		return nil, 0, nil, withReason(ErrLagged, "group %d: frame %d evicted", g.seq, c.next)
	}
	if i := c.next - g.base; i < len(g.frames) {
		c.next++
		var ts uint64
		if g.ts != nil {
			ts = g.ts[i]
		}
		return g.frames[i], ts, nil, nil
	}
	if g.done {
		if g.err != nil {
			return nil, 0, nil, g.err
		}
		return nil, 0, nil, io.EOF
	}
	if !arm {
		return nil, 0, closedChan, nil
	}
	return nil, 0, g.sig.wait(), nil
}

// SkipEvicted moves the consumer past the frames the group evicted before
// it read them, so that it reads on from the oldest frame still held
// instead of getting ErrLagged; it returns how many it skipped.
func (c *GroupConsumer) SkipEvicted() int {
	c.g.mu.RLock()
	defer c.g.mu.RUnlock()
	n := max(c.g.base-c.next, 0)
	c.next += n
	return n
}

// Clone returns a consumer of the same group positioned at the same frame.
func (c *GroupConsumer) Clone() *GroupConsumer { return &GroupConsumer{g: c.g, next: c.next} }
