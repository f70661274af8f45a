package broadcast

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"
)

type event struct {
	path string
	b    *Consumer
}

func (e event) String() string {
	if e.b == nil {
		return "-" + e.path
	}
	return "+" + e.path
}

// watch runs Announced in a goroutine and returns its events on a channel.
func watch(t *testing.T, o *Origin, prefix string) <-chan event {
	ctx, cancel := context.WithCancel(context.Background())
	ch := make(chan event, 100)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for p, b := range o.Announced(ctx, prefix) {
			ch <- event{p, b}
		}
	}()
	t.Cleanup(func() { cancel(); <-done })
	return ch
}

func expect(t *testing.T, ch <-chan event, want ...string) []event {
	t.Helper()
	var got []event
	for range want {
		select {
		case e := <-ch:
			got = append(got, e)
		case <-time.After(2 * time.Second):
			t.Fatalf("got %v, want %v", got, want)
		}
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("got %v, want %v", got, want)
	}
	return got
}

func expectNothing(t *testing.T, ch <-chan event) {
	t.Helper()
	select {
	case e := <-ch:
		t.Fatalf("unexpected %v", e)
	case <-time.After(30 * time.Millisecond):
	}
}

func bc(hops ...uint64) *Producer { return New(Config{Hops: hops}) }

func TestOriginAnnouncedInitialSetThenChanges(t *testing.T) {
	o := NewOrigin(1)
	b1, b2 := bc(), bc()
	_, _ = o.Publish("room/b", b2.Consume())
	_, _ = o.Publish("/room/a/", b1.Consume()) // cleaned to room/a
	ch := watch(t, o, "room")
	got := expect(t, ch, "+room/a", "+room/b")
	if !got[0].b.Same(b1.Consume()) {
		t.Fatal("wrong broadcast for room/a")
	}
	b3 := bc()
	unpub, _ := o.Publish("room/c", b3.Consume())
	expect(t, ch, "+room/c")
	b1.Finish() // the end of a broadcast unannounces it
	expect(t, ch, "-room/a")
	unpub() // unpublish without ending the broadcast
	expect(t, ch, "-room/c")
	unpub() // idempotent
	expectNothing(t, ch)
	if o.Get("room/b") == nil || o.Get("room/a") != nil {
		t.Fatal("Get disagrees with announcements")
	}
}

func TestOriginPrefixMatchesWholeSegments(t *testing.T) {
	o := NewOrigin(1)
	ch := watch(t, o, "foo")
	for _, p := range []string{"foobar", "foo", "foo/bar", "bar/foo"} {
		_, _ = o.Publish(p, bc().Consume())
	}
	expect(t, ch, "+foo", "+foo/bar")
	expectNothing(t, ch)
	all := watch(t, o, "")
	expect(t, all, "+bar/foo", "+foo", "+foo/bar", "+foobar")
}

func TestOriginBackupPromotion(t *testing.T) {
	o := NewOrigin(1)
	ch := watch(t, o, "")
	far, near, nearer := bc(10, 11), bc(20), bc(30)
	_, _ = o.Publish("live", far.Consume())
	expect(t, ch, "+live")
	_, _ = o.Publish("live", near.Consume()) // fewer hops: takes over
	got := expect(t, ch, "-live", "+live")
	if !got[1].b.Same(near.Consume()) {
		t.Fatal("the broadcast with fewer hops should be active")
	}
	_, _ = o.Publish("live", bc(40, 41, 42).Consume()) // more hops: only a backup
	expectNothing(t, ch)
	_, _ = o.Publish("live", nearer.Consume()) // equal hops: the newcomer wins the tie
	got = expect(t, ch, "-live", "+live")
	if !got[1].b.Same(nearer.Consume()) {
		t.Fatal("a newcomer with equal hops should win")
	}
	nearer.Finish() // promote the backup with the fewest hops: near (1 hop)
	got = expect(t, ch, "-live", "+live")
	if !got[1].b.Same(near.Consume()) {
		t.Fatal("promotion should pick the fewest hops")
	}
	near.Finish()
	got = expect(t, ch, "-live", "+live")
	if !got[1].b.Same(far.Consume()) {
		t.Fatal("on equal hops the oldest backup is promoted")
	}
}

func TestOriginRefusesLoopsAndBadInput(t *testing.T) {
	o := NewOrigin(77)
	if _, err := o.Publish("x", bc(5, 77).Consume()); !errors.Is(err, ErrLoop) {
		t.Errorf("loop: %v, want ErrLoop", err)
	}
	if _, err := o.Publish("//", bc().Consume()); !errors.Is(err, ErrInvalidPath) {
		t.Errorf("empty path: %v", err)
	}
	long := make([]uint64, MaxHops+1)
	for i := range long {
		long[i] = uint64(i + 1000)
	}
	if _, err := o.Publish("x", bc(long...).Consume()); !errors.Is(err, ErrTooLarge) {
		t.Errorf("too many hops: %v", err)
	}
	b := bc()
	_, _ = o.Publish("x", b.Consume())
	if _, err := o.Publish("x", b.Consume()); !errors.Is(err, ErrDuplicate) {
		t.Errorf("same broadcast twice: %v", err)
	}
	ended := bc()
	ended.Finish()
	if _, err := o.Publish("y", ended.Consume()); !errors.Is(err, ErrClosed) {
		t.Errorf("ended broadcast: %v", err)
	}
}

// A listener that does not read sees only the net change per path: its memory
// is bounded by the number of paths, and publishers never wait for it.
func TestOriginSlowListenerSeesNetChange(t *testing.T) {
	o := NewOrigin(1)
	ctx := testCtx(t)
	next, stop := iterPull(o.Announced(ctx, ""))
	defer stop()
	keep := bc()
	_, _ = o.Publish("keep", keep.Consume())
	if p, _, ok := next(); !ok || p != "keep" { // the listener is registered from here on
		t.Fatalf("initial set: %q, %v", p, ok)
	}
	for range 1000 {
		unpub, _ := o.Publish("flap", bc().Consume())
		unpub()
	}
	last := bc()
	_, _ = o.Publish("flap", last.Consume())
	l := o.someListener()
	if n := len(l.queue); n != 1 {
		t.Fatalf("listener queue holds %d entries after 2001 changes to one path, want 1", n)
	}
	p, b, ok := next()
	if !ok || p != "flap" || !b.Same(last.Consume()) {
		t.Fatalf("got %q %v, want flap with the last broadcast", p, ok)
	}
}

func (o *Origin) someListener() *listener {
	o.mu.Lock()
	defer o.mu.Unlock()
	for l := range o.listeners {
		return l
	}
	return nil
}

func TestOriginCloseEndsIteration(t *testing.T) {
	o := NewOrigin(0)
	if o.ID() == 0 || o.ID() >= MaxHopID {
		t.Fatalf("generated ID %d out of [1, 2^53)", o.ID())
	}
	done := make(chan struct{})
	go func() {
		for range o.Announced(context.Background(), "") {
		}
		close(done)
	}()
	o.Close()
	<-done
	if _, err := o.Publish("x", bc().Consume()); !errors.Is(err, ErrClosed) {
		t.Fatalf("publish after close: %v", err)
	}
}

func TestPaths(t *testing.T) {
	for in, want := range map[string]string{"": "", "/": "", "a": "a", "/a//b/": "a/b", "a/b": "a/b", "///x": "x"} {
		if got := CleanPath(in); got != want {
			t.Errorf("CleanPath(%q) = %q, want %q", in, got, want)
		}
	}
	for _, c := range []struct {
		p, prefix string
		ok        bool
		rest      string
	}{
		{"foo", "", true, "foo"}, {"foo", "foo", true, ""}, {"foo/bar", "foo", true, "bar"},
		{"foobar", "foo", false, ""}, {"fo", "foo", false, ""}, {"a/b/c", "a/b", true, "c"},
	} {
		rest, ok := StripPrefix(c.p, c.prefix)
		if ok != c.ok || rest != c.rest || HasPrefix(c.p, c.prefix) != c.ok {
			t.Errorf("StripPrefix(%q, %q) = %q, %v", c.p, c.prefix, rest, ok)
		}
	}
	if JoinPath("/room/", "/a/") != "room/a" || JoinPath("", "a") != "a" || JoinPath("a", "") != "a" {
		t.Error("JoinPath")
	}
}

func TestNewHopIDRange(t *testing.T) {
	seen := map[uint64]bool{}
	for range 1000 {
		id := NewHopID()
		if id == 0 || id >= MaxHopID || seen[id] {
			t.Fatalf("bad or repeated hop ID %d", id)
		}
		seen[id] = true
	}
}

// A listener that sent a snapshot (lite-01/02 ANNOUNCE_INIT) hears only what
// changed since it, including changes between the snapshot and the iteration.
func TestOriginAnnouncedSinceSnapshot(t *testing.T) {
	o := NewOrigin(1)
	a, b, c := bc(), bc(), bc()
	unpubA, _ := o.Publish("room/a", a.Consume())
	_, _ = o.Publish("room/b", b.Consume())
	_, _ = o.Publish("other/x", bc().Consume())
	snap := o.Active("room")
	if len(snap) != 2 || snap["room/a"] == nil || snap["room/b"] == nil {
		t.Fatalf("Active(room) = %v", snap)
	}
	unpubA()                                 // ended after the snapshot
	_, _ = o.Publish("room/c", c.Consume())  // new after the snapshot
	b2 := bc()                               // room/b replaced after the snapshot
	_, _ = o.Publish("room/b", b2.Consume()) // a newcomer wins ties
	ctx, cancel := context.WithCancel(context.Background())
	ch := make(chan event, 10)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for p, x := range o.AnnouncedSince(ctx, "room", snap) {
			ch <- event{p, x}
		}
	}()
	t.Cleanup(func() { cancel(); <-done })
	got := expect(t, ch, "-room/a", "-room/b", "+room/b", "+room/c")
	if !got[2].b.Same(b2.Consume()) {
		t.Fatal("replacement not reported")
	}
	expectNothing(t, ch)
	d := bc()
	_, _ = o.Publish("room/d", d.Consume())
	expect(t, ch, "+room/d")
}

// TestOriginWatch: a Watch reports what Announced would, pulled with Next
// (at once for the initial set, then after each callback); the callback
// fires on changes and on close, and not after Stop.
func TestOriginWatch(t *testing.T) {
	o := NewOrigin(1)
	_, _ = o.Publish("room/a", bc().Consume())
	_, _ = o.Publish("other/x", bc().Consume())
	kicks := make(chan struct{}, 100)
	w := o.WatchSince("room", nil, func() { kicks <- struct{}{} })
	drain := func() []string {
		var got []string
		for {
			p, b, ok := w.Next()
			if !ok {
				return got
			}
			if b == nil {
				got = append(got, "-"+p)
			} else {
				got = append(got, "+"+p)
			}
		}
	}
	kicked := func() bool {
		select {
		case <-kicks:
			return true
		default:
			return false
		}
	}
	if got := drain(); fmt.Sprint(got) != "[+room/a]" {
		t.Fatalf("initial changes %v, want [+room/a]", got)
	}
	unpub, _ := o.Publish("room/b", bc().Consume())
	_, _ = o.Publish("other/y", bc().Consume()) // outside the prefix: no callback needed
	if !kicked() {
		t.Fatal("no callback for room/b")
	}
	unpub()
	// The net change is nothing: room/b came and went before it was read.
	for kicked() {
	}
	if got := drain(); len(got) != 0 {
		t.Fatalf("changes %v, want none", got)
	}
	if w.Closed() {
		t.Fatal("closed before Close")
	}
	o.Close()
	if !kicked() || !w.Closed() {
		t.Fatal("Close did not call back, or Closed is false after it")
	}
	w.Stop()
	o2 := NewOrigin(2)
	w2 := o2.WatchSince("", nil, func() { kicks <- struct{}{} })
	for kicked() {
	}
	w2.Stop()
	_, _ = o2.Publish("late", bc().Consume())
	if kicked() {
		t.Fatal("callback after Stop")
	}
}
