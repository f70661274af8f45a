package broadcast

import (
	"context"
	"io"
	"math"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// Track names a track within a broadcast and gives its priority: higher is more
// important (moq-lite priorities are one byte).
type Track struct {
	Name     string
	Priority uint8
	// Timescale is the units per second of the track's frame timestamps
	// (GroupProducer.WriteFrameAt); 0 means DefaultTimescale. moq-lite-05
	// carries timestamps (as deltas) and the timescale (TRACK_INFO);
	// lite-01..04 frames have none, so they arrive with timestamp 0.
	Timescale uint64
	// Datagrams asks for the track's single-frame groups to travel as
	// datagrams where the wire allows it (moq-lite-05 over QUIC or
	// WebTransport, the group finished and at most 1200 bytes encoded),
	// instead of a stream each: lower latency, no retransmission. A
	// subscriber takes whichever of a datagram and a stream arrives first.
	Datagrams bool
}

// DefaultTimescale is the timescale of a track that names none:
// milliseconds, as moq-dev's implementations default to.
const DefaultTimescale = 1000

// Scale returns the track's timescale, DefaultTimescale for 0.
func (t Track) Scale() uint64 {
	if t.Timescale == 0 {
		return DefaultTimescale
	}
	return t.Timescale
}

// track is the state shared by a TrackProducer and its consumers.
type track struct {
	info  Track
	lim   Limits
	bytes atomic.Int64 // payload bytes of every cached group
	// asked is the highest priority a SubscribeTrack asked for the track
	// (info's to start with); only ever raised.
	asked atomic.Uint32
	// startAsked is one past the earliest group a SubscribeTrackAt asked
	// to start at (0: none did); only ever lowered.
	startAsked atomic.Uint64
	// liveAsked: a SubscribeTrack without a start asked for the track.
	liveAsked atomic.Bool
	tag       any // of the Consumer that made the track on demand; set before OnTrack

	mu        sync.RWMutex
	entries   ring // groups in arrival order; nil = evicted; entries.at(0) has arrival index base
	base      int
	cached    int    // groups in entries, evicted ones not counted
	latest    uint64 // highest sequence seen, valid when any
	any       bool
	finished  bool
	final     uint64      // after Finish: sequences >= final are refused
	dropped   []dropRange // groups the publisher said will never come (Drop), newest last
	err       error       // abort error; the track is over when set
	sig       signal
	askSig    signal // wakes Asked's waiters: liveAsked set, startAsked lowered
	consumers int
	cursors   []*TrackConsumer // open consumers, kept only under Backpressure
	room      signal           // wakes WaitRoom when a consumer moved on or left
	budgeted  bool             // registered with lim.Budget: from its first group until drained
	used      chan struct{}    // closed when consumers goes from 0 to 1
	unused    chan struct{}    // closed when consumers goes from 1 to 0
	onUnused  func()           // called (without locks) when the last consumer leaves
	// held is closed once a track made pending by Hold is confirmed: by
	// Confirm, its first group, Finish or Abort. nil: never held.
	held      chan struct{}
	released  bool // held is closed
	confirmed bool // by Confirm, before any end
	// orphans are the groups of a budgeted track that the cache evicted
	// while they were still being written, until they end: charged till
	// then, and so still for the budget to take back (Budget.reclaim).
	orphans []*group
}

// closedChan is a channel that is always closed.
var closedChan = func() chan struct{} { c := make(chan struct{}); close(c); return c }()

// NewTrack returns the producer of a new, empty track. Tracks are usually made
// with Producer.CreateTrack, which applies the broadcast's limits.
func NewTrack(info Track, lim Limits) *TrackProducer {
	t := &track{info: info, lim: lim.withDefaults()}
	t.asked.Store(uint32(info.Priority))
	return &TrackProducer{t: t}
}

// AskedPriority returns the highest priority that Consumer.SubscribeTrack
// was asked for this track (its Info's priority to start with): a relay
// subscribes upstream with it, on behalf of all its subscribers.
func (p *TrackProducer) AskedPriority() uint8 { return uint8(p.t.asked.Load()) }

// ask raises the asked priority to prio.
func (t *track) ask(prio uint8) {
	for {
		cur := t.asked.Load()
		if uint32(prio) <= cur || t.asked.CompareAndSwap(cur, uint32(prio)) {
			return
		}
	}
}

// AskedStart returns the earliest group that Consumer.SubscribeTrackAt
// asked this track to start at, and false if every subscriber wanted the
// latest group: a relay subscribes upstream from there, on behalf of all
// its subscribers.
func (p *TrackProducer) AskedStart() (uint64, bool) {
	v := p.t.startAsked.Load()
	return v - 1, v != 0
}

// Tag returns the tag of the Consumer (Consumer.Tagged) whose subscription
// made the track on demand, nil for another.
func (p *TrackProducer) Tag() any { return p.t.tag }

// AskedLive reports whether a subscriber asked for the track without a
// start (Consumer.SubscribeTrack): it wants the latest group, whatever
// start others asked for.
func (p *TrackProducer) AskedLive() bool { return p.t.liveAsked.Load() }

// Asked returns a channel that is closed when a subscriber joining the
// track asks for groups not asked for before: the first one without a
// start (AskedLive), or one whose start lowers AskedStart. A relay whose
// upstream subscription leaves those groups out may subscribe again.
func (p *TrackProducer) Asked() <-chan struct{} {
	t := p.t
	t.mu.RLock()
	defer t.mu.RUnlock()
	return t.askSig.wait()
}

// Latest returns the highest group sequence so far, and false if there is
// none.
func (p *TrackProducer) Latest() (uint64, bool) {
	t := p.t
	t.mu.RLock()
	defer t.mu.RUnlock()
	return t.latest, t.any
}

// askFrom notes what a subscriber joining the track asks for: the latest
// group (start nil) or the groups from *start on.
func (t *track) askFrom(start *uint64) {
	if start == nil {
		if !t.liveAsked.Load() && !t.liveAsked.Swap(true) {
			t.notifyAsked()
		}
		return
	}
	t.mu.RLock()
	beyond := t.any && *start > t.latest
	t.mu.RUnlock()
	// A start past the latest group is reached by any subscription that
	// goes on from there: noting it would only let one subscriber hold a
	// relay's shared upstream subscription back from the live edge.
	if !beyond && t.askStart(*start) {
		t.notifyAsked()
	}
}

func (t *track) notifyAsked() {
	t.mu.Lock()
	t.askSig.notify()
	t.mu.Unlock()
}

// askStart lowers the asked start to seq and reports whether it did.
func (t *track) askStart(seq uint64) bool {
	if seq == math.MaxUint64 {
		return false // not representable one past; nobody has that many groups
	}
	for {
		cur := t.startAsked.Load()
		if cur != 0 && seq+1 >= cur {
			return false
		}
		if t.startAsked.CompareAndSwap(cur, seq+1) {
			return true
		}
	}
}

// TrackProducer writes the groups of one track. It is safe for concurrent use.
type TrackProducer struct{ t *track }

// Info returns the track's name and priority.
func (p *TrackProducer) Info() Track { return p.t.info }

// AppendGroup starts the next group: one past the highest sequence so far, or
// 0 for the first.
func (p *TrackProducer) AppendGroup() (*GroupProducer, error) { return p.t.create(0, true) }

// CreateGroup starts the group with the given sequence. Groups may be created
// out of order; a sequence that is still cached returns ErrDuplicate, and one at
// or past the end of a finished track returns ErrClosed.
func (p *TrackProducer) CreateGroup(seq uint64) (*GroupProducer, error) {
	return p.t.create(seq, false)
}

// WriteFrame appends a group holding the single frame payload, finished.
func (p *TrackProducer) WriteFrame(payload []byte) error {
	return p.t.writeGroup(0, true, [][]byte{payload}, nil)
}

// WriteGroup creates group seq holding frames, already finished: consumers
// find it whole and are woken once, where CreateGroup, WriteFrames and
// Finish would wake them for each step. It fails as CreateGroup does, and
// with ErrTooLarge, creating nothing, if a frame is over the group limit.
func (p *TrackProducer) WriteGroup(seq uint64, frames ...[]byte) error {
	return p.t.writeGroup(seq, false, frames, nil)
}

// WriteGroupAt is WriteGroup for frames with timestamps: ts[i] is that of
// frames[i] (len(ts) must equal len(frames), else ErrTooLarge).
func (p *TrackProducer) WriteGroupAt(seq uint64, ts []uint64, frames ...[]byte) error {
	if len(ts) != len(frames) {
		return withReason(ErrTooLarge, "%d timestamps for %d frames", len(ts), len(frames))
	}
	return p.t.writeGroup(seq, false, frames, ts)
}

// writeGroup fills a group before the track has it, then inserts it.
func (t *track) writeGroup(seq uint64, next bool, frames [][]byte, ts []uint64) error {
	g := newGroup(seq, &t.lim, nil) // no cache account until inserted
	frames, size, err := g.fit(frames)
	if err != nil {
		return err
	}
	if !g.reserve(size) {
		return withReason(ErrBudget, "group %d: %d bytes over the budget", seq, size)
	}
	g.appendLocked(frames, ts, size) // not shared yet: no lock, nobody to wake
	g.done = true
	if _, err = t.insert(seq, next, g); err != nil {
		g.uncharge()
	}
	return err
}

// Finish ends the track after its current groups: no group with a sequence
// past the highest so far may be created, and consumers get io.EOF once they
// have read the cached groups. Groups already started keep going.
func (p *TrackProducer) Finish() error {
	t := p.t
	t.mu.Lock()
	defer func() {
		unused := t.consumers == 0
		t.mu.Unlock()
		if unused {
			t.drain() // no consumer to read the cache: a budget gets it back
		}
	}()
	if t.finished || t.err != nil {
		return withReason(ErrClosed, "track %q already ended", t.info.Name)
	}
	t.finished = true
	t.final = 0
	if t.any {
		t.final = t.latest + 1
	}
	t.releaseLocked()
	t.sig.notify()
	t.room.notify()
	return nil
}

// dropRange is an inclusive range of group sequences.
type dropRange struct{ start, end uint64 }

// maxDropRanges is how many Drop ranges a track remembers; older ones are
// forgotten first (GetGroup then waits for them as for any group).
const maxDropRanges = 16

// Drop records that groups start through end will never come (a
// publisher said so: lite-05's SUBSCRIBE_DROP): GetGroup answers
// ErrNotFound for one of them that is not cached at once, instead of
// waiting for a newer group. A dropped group that arrives all the same is
// taken as any other.
func (p *TrackProducer) Drop(start, end uint64) {
	if end < start {
		return
	}
	t := p.t
	t.mu.Lock()
	defer t.mu.Unlock()
	if len(t.dropped) == maxDropRanges {
		t.dropped = append(t.dropped[:0], t.dropped[1:]...)
	}
	t.dropped = append(t.dropped, dropRange{start, end})
	t.sig.notify()
}

// droppedLocked reports whether Drop named group seq.
func (t *track) droppedLocked(seq uint64) bool {
	for _, r := range t.dropped {
		if seq >= r.start && seq <= r.end {
			return true
		}
	}
	return false
}

// Abort ends the track and every unfinished group with err (ErrCancelled if
// nil). Consumers get err from their next call.
func (p *TrackProducer) Abort(err error) { p.t.abort(err) }

// Consume returns a consumer that starts at the latest group.
func (p *TrackProducer) Consume() *TrackConsumer { return p.t.consume() }

// Hold marks a track that has no group yet as pending: its source (a
// relay's upstream subscription, say) has yet to confirm that it exists.
// TrackConsumer.Ready waits until Confirm, the first group, Finish or
// Abort. A Broadcast's OnTrack handler calls it before it returns, so that
// the subscriber that asked for the track sees it pending. It does
// nothing on a track that has a group or has ended.
func (p *TrackProducer) Hold() {
	t := p.t
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.held == nil && !t.any && !t.finished && t.err == nil {
		t.held = make(chan struct{})
	}
}

// Confirm ends Hold: the track exists at its source.
func (p *TrackProducer) Confirm() {
	t := p.t
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.err == nil {
		t.confirmed = true
	}
	t.releaseLocked()
}

func (t *track) releaseLocked() {
	if t.held != nil && !t.released {
		t.released = true
		close(t.held)
	}
}

// Used returns a channel that is closed once the track has a consumer.
func (p *TrackProducer) Used() <-chan struct{} {
	t := p.t
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.consumers > 0 {
		return closedChan
	}
	if t.used == nil {
		t.used = make(chan struct{})
	}
	return t.used
}

// Unused returns a channel that is closed once the track has no consumers: at
// once if it has none now, else when the last one closes. A producer that fills
// a track on demand stops when this fires.
func (p *TrackProducer) Unused() <-chan struct{} {
	t := p.t
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.consumers == 0 {
		return closedChan
	}
	if t.unused == nil {
		t.unused = make(chan struct{})
	}
	return t.unused
}

func (t *track) create(seq uint64, next bool) (*GroupProducer, error) {
	g, err := t.insert(seq, next, nil)
	if err != nil {
		return nil, err
	}
	return &g.prod, nil
}

// insert adds group seq (the next one if next): filled, a group written
// before anyone could see it, or else a new empty one.
func (t *track) insert(seq uint64, next bool, filled *group) (*group, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.err != nil {
		return nil, t.err
	}
	if next && t.any {
		seq = t.latest + 1
	}
	if t.finished && seq >= t.final {
		return nil, withReason(ErrClosed, "track %q finished at group %d", t.info.Name, t.final)
	}
	if dup := t.any && seq <= t.latest && t.lookup(seq) != nil; dup { // newer than latest: new
		return nil, withReason(ErrDuplicate, "track %q: group %d exists", t.info.Name, seq)
	}
	g := filled
	if g == nil {
		g = newGroup(seq, &t.lim, &t.bytes)
	} else { // not yet shared: no lock needed
		g.seq, g.acct = seq, &t.bytes
		t.bytes.Add(g.bytes)
	}
	g.t = t
	if t.lim.Budget != nil && !t.budgeted {
		t.lim.Budget.register(t) // its cache can be evicted for the budget's sake
		t.budgeted = true
	}
	t.entries.push(g)
	t.cached++
	t.releaseLocked()
	if !t.any || seq > t.latest {
		t.latest, t.any = seq, true
	}
	t.evict(g.created)
	t.sig.notify()
	return g, nil
}

// WaitRoom waits until the track has room for one more group: until
// appending it would evict no group that an open consumer has not received
// yet. Under Limits.Backpressure a producer calls it before each group, so
// that it goes at the pace of its slowest consumer; without Backpressure,
// or without consumers, there is always room. It returns the abort error
// of an aborted track, ErrClosed for a finished one, and ctx.Err() if ctx
// ends first.
func (p *TrackProducer) WaitRoom(ctx context.Context) error {
	t := p.t
	for {
		t.mu.Lock() // the write lock: consumers move their cursors under the read lock
		switch {
		case t.err != nil:
			err := t.err
			t.mu.Unlock()
			return err
		case t.finished:
			t.mu.Unlock()
			return withReason(ErrClosed, "track %q finished", t.info.Name)
		case t.roomLocked():
			t.mu.Unlock()
			return nil
		}
		wake := t.room.wait()
		t.mu.Unlock()
		if err := sleep(ctx, wake); err != nil {
			return err
		}
	}
}

// HasRoom reports whether WaitRoom would return at once.
func (p *TrackProducer) HasRoom() bool {
	t := p.t
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.err == nil && !t.finished && t.roomLocked()
}

// roomLocked tells whether one more group would leave every group some
// consumer still needs in the cache: it counts what evict would drop to
// make room by the count and byte bounds (age is no reason to wait: it
// only ever makes room scarcer). Caller holds t.mu for writing.
func (t *track) roomLocked() bool {
	if !t.lim.Backpressure || len(t.cursors) == 0 {
		return true
	}
	n, bytes := t.cached+1, t.bytes.Load()
	for i := range t.entries.len() {
		if n <= t.lim.CacheMaxGroups && bytes <= t.lim.CacheMaxBytes {
			return true
		}
		g := t.entries.at(i)
		if g == nil {
			continue
		}
		if t.neededLocked(i, g) {
			return false
		}
		n--
		bytes -= g.cachedBytes()
	}
	return true
}

// neededLocked tells whether an open consumer has yet to receive g, entry i.
// Caller holds t.mu.
func (t *track) neededLocked(i int, g *group) bool {
	idx := t.base + i
	for _, c := range t.cursors {
		if idx >= max(c.next, c.held) && g.seq >= c.minSeq && !slices.Contains(c.taken, idx) {
			return true
		}
	}
	return false
}

// moved wakes a producer waiting in WaitRoom after a consumer moved its
// cursor; it costs an atomic load unless somebody waits.
func (t *track) moved() {
	if t.lim.Backpressure && t.room.waiting.Load() {
		t.mu.Lock()
		t.room.notify()
		t.mu.Unlock()
	}
}

// evict drops cached groups, oldest first, that are older than CacheMaxAge or
// over CacheMaxBytes or CacheMaxGroups. The latest group always stays.
// Caller holds t.mu.
func (t *track) evict(now time.Time) {
	var latest int64 // the latest group's bytes: CacheMaxBytes bounds the others
	if g := t.lookup(t.latest); g != nil {
		latest = g.cachedBytes()
	}
	for i := range t.entries.len() {
		g := t.entries.at(i)
		if g == nil || g.seq == t.latest {
			continue
		}
		if now.Sub(g.created) <= t.lim.CacheMaxAge && t.bytes.Load()-latest <= t.lim.CacheMaxBytes && t.cached <= t.lim.CacheMaxGroups {
			break // arrival order is age order: the rest are younger
		}
		if t.lim.Backpressure && t.neededLocked(i, g) {
			break // a consumer still needs it, and most likely the ones after it
		}
		t.dropLocked(i, g)
	}
	t.compactLocked()
}

// dropLocked evicts g, entry i. Caller holds t.mu.
func (t *track) dropLocked(i int, g *group) {
	if !g.evict() && t.budgeted {
		t.orphans = append(t.orphans, g)
	}
	t.entries.clear(i)
	t.cached--
}

// forgetOrphan drops g, evicted while it was being written, from the
// orphans once it has ended. No lock may be held.
func (t *track) forgetOrphan(g *group) {
	t.mu.Lock()
	if i := slices.Index(t.orphans, g); i >= 0 {
		t.orphans = slices.Delete(t.orphans, i, i+1)
	}
	t.mu.Unlock()
}

// reclaimable returns the groups of t its budget may take back (see
// Budget): those it caches, the latest included, and those still being
// written that it evicted; not one a back-pressured consumer still needs.
// Nor a finished one while the track has no consumer: that is a group
// read ahead for a back-pressured reader, held until its track has room
// (a track nobody reads is otherwise drained or ended), and taking it
// back would leave its frames held but charged to nobody.
func (t *track) reclaimable() []*group {
	t.mu.Lock()
	defer t.mu.Unlock()
	var gs []*group
	for i := range t.entries.len() {
		g := t.entries.at(i)
		if g == nil || (t.lim.Backpressure && t.neededLocked(i, g)) || (t.consumers == 0 && g.finished()) {
			continue
		}
		gs = append(gs, g)
	}
	return append(gs, t.orphans...)
}

// reclaim gives g's charges back to its budget for another's sake:
// evicted from the cache, and aborted with ErrBudget if still being
// written. No lock may be held.
func (t *track) reclaim(g *group) {
	t.mu.Lock()
	for i := range t.entries.len() {
		if t.entries.at(i) == g {
			t.dropLocked(i, g)
			t.compactLocked()
			break
		}
	}
	t.mu.Unlock()
	g.takeBack(withReason(ErrBudget, "group %d aborted: its receive budget went to a session holding less", g.seq))
}

// lookup returns the cached group with sequence seq, or nil. A search from
// the newest entry back rather than a map: groups arrive mostly in order
// and are mostly looked up near the live edge (the latest, on every
// insert), and a map costs an insert and a delete for every group that
// passes through the cache. Caller holds t.mu.
func (t *track) lookup(seq uint64) *group {
	if i := t.lookupIndex(seq); i >= 0 {
		return t.entries.at(i)
	}
	return nil
}

// lookupIndex is lookup that returns the group's entry, or -1.
func (t *track) lookupIndex(seq uint64) int {
	for i := t.entries.len() - 1; i >= 0; i-- {
		if g := t.entries.at(i); g != nil && g.seq == seq {
			return i
		}
	}
	return -1
}

// compactLocked pops the evicted entries at the front. Caller holds t.mu.
func (t *track) compactLocked() {
	for t.entries.len() > 0 && t.entries.at(0) == nil {
		t.entries.pop()
		t.base++
	}
}

// trim applies the cache bounds after a group grew.
func (t *track) trim() {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.evict(t.lim.Now())
}

// shed evicts finished cached groups, oldest first, until enough says so:
// never the latest one, nor one a consumer still needs (Backpressure).
func (t *track) shed(enough func() bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for i := range t.entries.len() {
		if enough() {
			break
		}
		g := t.entries.at(i)
		if g == nil || g.seq == t.latest || !g.finished() {
			continue
		}
		if t.lim.Backpressure && t.neededLocked(i, g) {
			break
		}
		t.dropLocked(i, g)
	}
	t.compactLocked()
}

// drain gives a budgeted track's cache back to its budget once nobody can
// read it any more: the track was aborted, or it finished and its last
// consumer left.
func (t *track) drain() {
	if t.lim.Budget == nil {
		return
	}
	t.mu.Lock()
	for i := range t.entries.len() {
		if g := t.entries.at(i); g != nil {
			t.dropLocked(i, g)
		}
	}
	t.compactLocked()
	t.orphans = nil // their budget forgets the track: they give their charges back as they end
	registered := t.budgeted
	t.budgeted = false
	t.mu.Unlock()
	if registered {
		t.lim.Budget.unregister(t)
	}
}

func (t *track) abort(err error) {
	if err == nil {
		err = ErrCancelled
	}
	t.mu.Lock()
	if t.err != nil {
		t.mu.Unlock()
		return
	}
	t.err = err
	t.releaseLocked()
	groups := make([]*group, 0, t.cached+len(t.orphans))
	for i := range t.entries.len() {
		if g := t.entries.at(i); g != nil {
			groups = append(groups, g)
		}
	}
	groups = append(groups, t.orphans...) // evicted, but unfinished: they end too
	t.sig.notify()
	t.room.notify()
	t.mu.Unlock()
	for _, g := range groups {
		g.close(err) // already-ended groups keep their outcome
	}
	t.drain()
}

func (t *track) consume() *TrackConsumer {
	t.mu.Lock()
	defer t.mu.Unlock()
	c := &TrackConsumer{t: t, next: t.base}
	if t.any {
		c.minSeq, c.hasMin = t.latest, true // join at the live edge
		c.from = t.latest + 1
	}
	t.consumers++
	if t.lim.Backpressure {
		t.cursors = append(t.cursors, c)
	}
	if t.consumers == 1 && t.used != nil {
		close(t.used)
		t.used = nil
	}
	return c
}

func (t *track) release(c *TrackConsumer) {
	t.mu.Lock()
	t.consumers--
	if t.lim.Backpressure {
		if i := slices.Index(t.cursors, c); i >= 0 {
			t.cursors = slices.Delete(t.cursors, i, i+1)
		}
		t.room.notify()
	}
	last := t.consumers == 0
	if last && t.unused != nil {
		close(t.unused)
		t.unused = nil
	}
	hook := t.onUnused
	ended := t.finished && t.err == nil
	t.mu.Unlock()
	if last && ended {
		t.drain()
	}
	if last && hook != nil {
		hook()
	}
}

// TrackConsumer reads the groups of a track with its own cursor. It starts at
// the latest group that existed when it was made (or at StartAt). It is for one
// goroutine at a time; Close may be called from any goroutine.
type TrackConsumer struct {
	t       *track
	next    int    // arrival index of the next entry to look at
	minSeq  uint64 // groups below this are skipped
	hasMin  bool   // minSeq was set: by the track's latest group, or StartAt
	last    uint64 // highest sequence returned by NextGroup
	hasLast bool
	// What GetGroup took, under Backpressure, so that a reader by sequence
	// lets the producer go on as one by arrival does: held is the arrival
	// index below which GetGroup took (or need not take) every entry, taken
	// the indices at or past it that GetGroup took out of arrival order
	// (few: as many as groups arrived ahead of one still missing).
	held  int
	taken []int
	// got is the highest sequence any read returned since the consumer
	// (re)started, from one past the latest group then: under
	// Backpressure GetGroup waits for a missing group above both
	// (awaitsLocked).
	got    uint64
	hasGot bool
	from   uint64
	closed atomic.Bool
}

// Info returns the track's name and priority.
func (c *TrackConsumer) Info() Track { return c.t.info }

// StartAt repositions the consumer to deliver every cached or future group with
// sequence >= seq, in arrival order.
func (c *TrackConsumer) StartAt(seq uint64) {
	c.t.mu.RLock()
	defer c.t.mu.RUnlock()
	c.next, c.minSeq, c.hasMin = c.t.base, seq, true
	c.held, c.taken, c.hasGot = c.t.base, nil, false
	c.from = 0
	if c.t.any {
		c.from = c.t.latest + 1
	}
}

// Ready waits until the track is confirmed (see TrackProducer.Hold: at
// once for a track never held) and returns nil, or the abort error of a
// track that ended before it had a group or was confirmed or finished
// (its source refused it), or ctx's error. A publisher answers a
// subscription with it: a refusal rather than an acceptance and then a
// reset.
func (c *TrackConsumer) Ready(ctx context.Context) error {
	t := c.t
	t.mu.RLock()
	held := t.held
	t.mu.RUnlock()
	if held != nil {
		select {
		case <-held:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	t.mu.RLock()
	defer t.mu.RUnlock()
	if t.err != nil && !t.any && !t.finished && !t.confirmed {
		return t.err
	}
	return nil
}

// Start returns the lowest group sequence the consumer delivers: the
// track's latest group when the consumer was made, or StartAt's. It is
// false for a consumer of a track that had no group yet, given no
// StartAt: it delivers any group.
func (c *TrackConsumer) Start() (uint64, bool) {
	c.t.mu.RLock()
	defer c.t.mu.RUnlock()
	return c.minSeq, c.hasMin
}

// RecvGroup returns the next group in arrival order, each group once. It
// returns io.EOF when a finished track has no more groups, the abort error of
// an aborted track, and ctx.Err() if ctx ends first. Arrival order need not
// be sequence order (a subscription's groups race on their own streams):
// to read every group in sequence order, use GetGroup, or reorder.
func (c *TrackConsumer) RecvGroup(ctx context.Context) (*GroupConsumer, error) {
	return c.recv(ctx, false)
}

// NextGroup is RecvGroup that only returns groups newer than every group it
// returned before: a group that arrives late is skipped (and counts as
// received under Limits.Backpressure), so it is lossy even then. Use it
// for live playback, where an old group is useless.
func (c *TrackConsumer) NextGroup(ctx context.Context) (*GroupConsumer, error) {
	return c.recv(ctx, true)
}

func (c *TrackConsumer) recv(ctx context.Context, increasing bool) (*GroupConsumer, error) {
	t := c.t
	for {
		t.mu.RLock()
		if t.err != nil {
			err := t.err
			t.mu.RUnlock()
			return nil, err
		}
		c.next = max(c.next, t.base) // evicted groups are skipped, not errors: this is live media
		for c.next-t.base < t.entries.len() {
			g := t.entries.at(c.next - t.base)
			c.next++
			if g == nil || g.seq < c.minSeq || (increasing && c.hasLast && g.seq <= c.last) {
				continue
			}
			c.gotLocked(g.seq)
			t.mu.RUnlock()
			if increasing {
				c.last, c.hasLast = g.seq, true
			}
			t.moved()
			return g.consume(), nil
		}
		if t.finished {
			t.mu.RUnlock()
			return nil, io.EOF
		}
		wake := t.sig.wait()
		t.mu.RUnlock()
		t.moved()
		if err := sleep(ctx, wake); err != nil {
			return nil, err
		}
	}
}

// GetGroup returns the group with sequence seq: at once if it is cached,
// after waiting if it is newer than any group so far, and ErrNotFound if it is
// older than the latest group and no longer (or never) cached, or dropped
// (Drop).
//
// Under Limits.Backpressure a group GetGroup returned counts as received,
// as one RecvGroup returned does, and GetGroup also waits for a group older
// than the latest one that has not arrived yet (groups may arrive out of
// order), as long as the track is not finished and the consumer has read
// no newer group. So reading seq = 0, 1, 2, ... (after StartAt(0)) reads
// every group in order, losslessly, with the producer paced by WaitRoom.
// A group such a reader never asks for holds the producer back until the
// consumer closes.
func (c *TrackConsumer) GetGroup(ctx context.Context, seq uint64) (*GroupConsumer, error) {
	t := c.t
	for {
		t.mu.RLock()
		if i := t.lookupIndex(seq); i >= 0 {
			g := t.entries.at(i)
			took := t.lim.Backpressure && seq >= c.minSeq && c.takeLocked(i)
			c.gotLocked(seq)
			t.mu.RUnlock()
			if took {
				t.moved()
			}
			return g.consume(), nil
		}
		switch {
		case t.err != nil:
			err := t.err
			t.mu.RUnlock()
			return nil, err
		case (t.any && seq <= t.latest && !c.awaitsLocked(seq)) || (t.finished && seq >= t.final) || t.droppedLocked(seq):
			t.mu.RUnlock()
			return nil, withReason(ErrNotFound, "track %q: group %d", t.info.Name, seq)
		}
		wake := t.sig.wait()
		t.mu.RUnlock()
		if err := sleep(ctx, wake); err != nil {
			return nil, err
		}
	}
}

// takeLocked counts entry i as received by GetGroup and reports whether
// that may have made room. Caller holds t.mu, for reading at least: the
// consumer's own fields are only read by others under the write lock.
func (c *TrackConsumer) takeLocked(i int) bool {
	t := c.t
	lo := max(c.next, c.held, t.base)
	idx := t.base + i
	switch {
	case idx < lo || slices.Contains(c.taken, idx):
		return false // received already
	case idx > lo:
		c.taken = append(c.taken, idx)
		return false // lo still holds the room
	}
	// The entry at the watermark: move it past every entry received or
	// not needed, so that taken stays small.
	c.held = idx + 1
	c.taken = slices.DeleteFunc(c.taken, func(x int) bool { return x < c.held })
	for j := c.held - t.base; j < t.entries.len(); j++ {
		g := t.entries.at(j)
		if k := slices.Index(c.taken, c.held); k >= 0 {
			c.taken = slices.Delete(c.taken, k, k+1)
		} else if g != nil && g.seq >= c.minSeq {
			break
		}
		c.held++
	}
	return true
}

// gotLocked notes that a read returned group seq. Caller holds t.mu.
func (c *TrackConsumer) gotLocked(seq uint64) {
	if !c.hasGot || seq > c.got {
		c.got, c.hasGot = seq, true
	}
}

// awaitsLocked tells whether GetGroup waits for group seq, not cached but
// older than the latest group, rather than answering ErrNotFound: under
// Backpressure a group this consumer has yet to receive is never evicted,
// so one newer than any the consumer had when it (re)started, and than
// any it has read, is still on its way (groups race on their own streams)
// until the track finishes. Caller holds t.mu.
func (c *TrackConsumer) awaitsLocked(seq uint64) bool {
	t := c.t
	return t.lim.Backpressure && !t.finished && seq >= c.from && seq >= c.minSeq && (!c.hasGot || seq > c.got)
}

// Latest returns the highest group sequence so far, and false if there is none.
func (c *TrackConsumer) Latest() (uint64, bool) {
	c.t.mu.RLock()
	defer c.t.mu.RUnlock()
	return c.t.latest, c.t.any
}

// Err returns the abort error of an aborted track, else nil.
func (c *TrackConsumer) Err() error {
	c.t.mu.RLock()
	defer c.t.mu.RUnlock()
	return c.t.err
}

// Close releases the consumer. When the last consumer of a track made on
// demand closes, the track's producer sees Unused and the broadcast forgets
// the track. Close is idempotent.
func (c *TrackConsumer) Close() {
	if c.closed.CompareAndSwap(false, true) {
		c.t.release(c)
	}
}
