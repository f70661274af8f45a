package main

import (
	"fmt"
	"io"
	"log/slog"
	"slices"
	"sync"
	"testing"
	"time"
)

// collect runs a reorder stage whose emit records "seq:frame" strings.
type collect struct {
	mu  sync.Mutex
	got []string
	max int // stop after this many; 0: never
}

func (c *collect) emit(seq uint64, f []byte) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.got = append(c.got, fmt.Sprintf("%d:%s", seq, f))
	return c.max == 0 || len(c.got) < c.max
}

func (c *collect) snapshot() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.got)
}

func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func TestReorderOrdersGroups(t *testing.T) {
	var c collect
	r := newReorder(quiet(), c.emit, func() {})
	// Group 1 arrives (and ends) before group 0; group 0's frames are
	// interleaved with group 2's.
	r.frame(1, []byte("a"))
	r.frame(1, []byte("b"))
	r.groupDone(1)
	r.frame(0, []byte("x"))
	r.frame(2, []byte("p"))
	r.frame(0, []byte("y"))
	r.groupDone(0)
	r.frame(2, []byte("q"))
	r.groupDone(2)
	r.close()
	want := []string{"0:x", "0:y", "1:a", "1:b", "2:p", "2:q"}
	if got := c.snapshot(); !slices.Equal(got, want) {
		t.Errorf("got %v, want %v", got, want)
	}
}

func TestReorderStreamsHeadGroup(t *testing.T) {
	var c collect
	r := newReorder(quiet(), c.emit, func() {})
	defer r.close()
	r.frame(0, []byte("x"))
	waitFor(t, &c, 1) // the head group's frames go out before it ends
}

func TestReorderSkipsMissingGroup(t *testing.T) {
	var c collect
	r := newReorder(quiet(), c.emit, func() {})
	r.frame(0, []byte("x"))
	r.groupDone(0)
	r.frame(2, []byte("p")) // group 1 never comes
	r.groupDone(2)
	begin := time.Now()
	waitFor(t, &c, 2)
	if d := time.Since(begin); d < reorderWait/2 {
		t.Errorf("skipped the gap after %s; want about %s", d, reorderWait)
	}
	r.groupDone(1) // too late: dropped
	r.frame(1, []byte("late"))
	r.close()
	if got, want := c.snapshot(), []string{"0:x", "2:p"}; !slices.Equal(got, want) {
		t.Errorf("got %v, want %v", got, want)
	}
}

func TestReorderWaitsForEarlierFirstGroup(t *testing.T) {
	var c collect
	r := newReorder(quiet(), c.emit, func() {})
	r.frame(6, []byte("b")) // not group 0: an earlier one may still come
	time.Sleep(reorderWait / 5)
	r.frame(5, []byte("a"))
	r.groupDone(5)
	r.groupDone(6)
	r.close()
	if got, want := c.snapshot(), []string{"5:a", "6:b"}; !slices.Equal(got, want) {
		t.Errorf("got %v, want %v", got, want)
	}
}

func TestReorderStops(t *testing.T) {
	c := collect{max: 2}
	r := newReorder(quiet(), c.emit, func() {})
	for i := range 5 {
		r.frame(0, []byte{byte('a' + i)})
	}
	waitFor(t, &c, 2)
	r.close()
	if !r.stoppedEarly() || len(c.snapshot()) != 2 {
		t.Errorf("stopped %v after %v", r.stoppedEarly(), c.snapshot())
	}
}

func waitFor(t *testing.T, c *collect, n int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for len(c.snapshot()) < n {
		if time.Now().After(deadline) {
			t.Fatalf("got %v; want %d frames", c.snapshot(), n)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
