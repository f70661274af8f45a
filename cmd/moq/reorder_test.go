package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/moqp2p/moqp2p/broadcast"
)

// The in-order stage runs over real tracks of the media model: a producer
// writes groups in whatever order a test needs, the stage reads a consumer.

// collect records emitted frames as "seq:frame" strings.
type collect struct {
	mu   sync.Mutex
	got  []string
	max  int // stop after this many; 0: never
	wake chan struct{}
}

func newCollect(max int) *collect { return &collect{max: max, wake: make(chan struct{})} }

func (c *collect) emit(seq uint64, f []byte) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.got = append(c.got, fmt.Sprintf("%d:%s", seq, f))
	close(c.wake)
	c.wake = make(chan struct{})
	return c.max == 0 || len(c.got) < c.max
}

func (c *collect) snapshot() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.got)
}

// waitFor waits until n frames were emitted.
func (c *collect) waitFor(t *testing.T, n int) {
	t.Helper()
	deadline := time.NewTimer(5 * time.Second)
	defer deadline.Stop()
	for {
		c.mu.Lock()
		got, wake := len(c.got), c.wake
		c.mu.Unlock()
		if got >= n {
			return
		}
		select {
		case <-wake:
		case <-deadline.C:
			t.Fatalf("got %v; want %d frames", c.snapshot(), n)
		}
	}
}

func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// stage runs an in-order stage over a new track until the test ends it.
type stage struct {
	tp   *broadcast.TrackProducer
	o    *inOrder
	c    *collect
	done chan error
}

func startStage(t *testing.T, strict bool, max int, tune func(*inOrder)) *stage {
	t.Helper()
	// Lossless, so that writing thousands of groups at once evicts none.
	tp := broadcast.NewTrack(broadcast.Track{Name: "t"}, broadcast.Limits{Backpressure: true})
	tc := tp.Consume()
	c := newCollect(max)
	s := &stage{tp: tp, o: newInOrder(strict, quiet(), c.emit, func() {}), c: c, done: make(chan error, 1)}
	if tune != nil {
		tune(s.o)
	}
	ctx, cancel := context.WithCancel(context.Background())
	go func() { s.done <- s.o.run(ctx, tc) }()
	t.Cleanup(func() {
		cancel()
		<-s.done
		tc.Close()
	})
	return s
}

// group writes group seq with the given frames, finished.
func (s *stage) group(t *testing.T, seq uint64, frames ...string) {
	t.Helper()
	g, err := s.tp.CreateGroup(seq)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range frames {
		if err := g.WriteFrame([]byte(f)); err != nil {
			t.Fatal(err)
		}
	}
	if err := g.Finish(); err != nil {
		t.Fatal(err)
	}
}

// end finishes the track and waits for the stage to return.
func (s *stage) end(t *testing.T) error {
	t.Helper()
	if err := s.tp.Finish(); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-s.done:
		s.done <- err // for the cleanup
		return err
	case <-time.After(10 * time.Second):
		t.Fatal("the stage did not end with the track")
		return nil
	}
}

func TestInOrderOrdersGroups(t *testing.T) {
	s := startStage(t, true, 0, nil)
	// Group 0's frames interleave with group 2's; group 1 ends first.
	g0, _ := s.tp.CreateGroup(0)
	g2, _ := s.tp.CreateGroup(2)
	s.group(t, 1, "a", "b")
	_ = g0.WriteFrame([]byte("x"))
	_ = g2.WriteFrame([]byte("p"))
	_ = g0.WriteFrame([]byte("y"))
	_ = g0.Finish()
	_ = g2.WriteFrame([]byte("q"))
	_ = g2.Finish()
	if err := s.end(t); err != nil {
		t.Fatal(err)
	}
	want := []string{"0:x", "0:y", "1:a", "1:b", "2:p", "2:q"}
	if got := s.c.snapshot(); !slices.Equal(got, want) {
		t.Errorf("got %v, want %v", got, want)
	}
	if missed, _ := s.o.result(); missed.count() != 0 {
		t.Errorf("missed %v", missed)
	}
}

func TestInOrderStreamsHeadGroup(t *testing.T) {
	s := startStage(t, true, 0, nil)
	g, _ := s.tp.CreateGroup(0)
	_ = g.WriteFrame([]byte("x"))
	s.c.waitFor(t, 1) // the head group's frames go out before it ends
	_ = g.Finish()
}

// A live stage skips a group that does not come, says so, and drops it if
// it comes after all.
func TestInOrderLiveSkipsMissingGroup(t *testing.T) {
	s := startStage(t, false, 0, func(o *inOrder) { o.wait = 20 * time.Millisecond })
	s.group(t, 0, "x")
	s.group(t, 2, "p") // group 1 is late
	s.c.waitFor(t, 2)
	s.group(t, 1, "late")
	if err := s.end(t); err != nil {
		t.Fatal(err)
	}
	if got, want := s.c.snapshot(), []string{"0:x", "2:p"}; !slices.Equal(got, want) {
		t.Errorf("got %v, want %v", got, want)
	}
	missed, late := s.o.result()
	if missed.count() != 1 || missed.String() != "1" || late != 1 {
		t.Errorf("missed %q (%d), late %d; want group 1, one late", missed, missed.count(), late)
	}
}

// A live stage that has maxAhead groups waiting behind a missing one skips
// it at once rather than hold more.
func TestInOrderLiveSkipsWhenFull(t *testing.T) {
	s := startStage(t, false, 0, func(o *inOrder) { o.wait = time.Hour })
	s.group(t, 0, "f")
	for seq := uint64(2); seq <= maxAhead+1; seq++ {
		s.group(t, seq, "f")
	}
	s.c.waitFor(t, maxAhead+1)
	if missed, _ := s.o.result(); missed.String() != "1" {
		t.Errorf("missed %q, want group 1", missed)
	}
}

// A strict stage waits for a late group however long it takes (here ten
// times the live stage's patience) and delivers it in order.
func TestInOrderStrictWaitsForLateGroup(t *testing.T) {
	const wait = 10 * time.Millisecond
	s := startStage(t, true, 0, func(o *inOrder) { o.wait = wait })
	s.group(t, 0, "x")
	s.group(t, 2, "p")
	s.c.waitFor(t, 1)
	time.Sleep(10 * wait) // a live stage would have skipped group 1 by now
	s.group(t, 1, "a")
	if err := s.end(t); err != nil {
		t.Fatal(err)
	}
	if got, want := s.c.snapshot(), []string{"0:x", "1:a", "2:p"}; !slices.Equal(got, want) {
		t.Errorf("got %v, want %v", got, want)
	}
	if missed, _ := s.o.result(); missed.count() != 0 {
		t.Errorf("missed %v", missed)
	}
}

// A strict stage names the groups a finished track never delivered, and a
// group the publisher aborted.
func TestInOrderStrictReportsLost(t *testing.T) {
	s := startStage(t, true, 0, nil)
	s.group(t, 0, "x")
	s.group(t, 3, "p")
	g, _ := s.tp.CreateGroup(4)
	_ = g.WriteFrame([]byte("half"))
	g.Abort(broadcast.ErrLagged)
	s.group(t, 5, "z")
	if err := s.end(t); err != nil {
		t.Fatal(err)
	}
	if got, want := s.c.snapshot(), []string{"0:x", "3:p", "4:half", "5:z"}; !slices.Equal(got, want) {
		t.Errorf("got %v, want %v", got, want)
	}
	if missed, _ := s.o.result(); missed.String() != "1-2, 4" || missed.count() != 3 {
		t.Errorf("missed %q (%d), want 1-2, 4 (3)", missed, missed.count())
	}
}

// A strict stage stops taking groups while maxAhead wait behind a missing
// one, and gives the missing one up after lostWait.
func TestInOrderStrictFullGivesUp(t *testing.T) {
	s := startStage(t, true, 0, func(o *inOrder) { o.lostWait = 50 * time.Millisecond })
	s.group(t, 0, "f")
	for seq := uint64(2); seq <= maxAhead+11; seq++ {
		s.group(t, seq, "f")
	}
	s.c.waitFor(t, maxAhead+11)
	if missed, _ := s.o.result(); missed.String() != "1" {
		t.Errorf("missed %q, want group 1", missed)
	}
}

func TestInOrderStops(t *testing.T) {
	s := startStage(t, true, 2, nil)
	s.group(t, 0, "a", "b", "c", "d")
	select {
	case err := <-s.done:
		s.done <- err
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the stage did not stop after enough frames")
	}
	if got := s.c.snapshot(); len(got) != 2 {
		t.Errorf("got %v, want 2 frames", got)
	}
}

// An aborted track ends the stage with its error, after the groups at hand.
func TestInOrderTrackError(t *testing.T) {
	s := startStage(t, false, 0, nil)
	s.group(t, 0, "x")
	s.c.waitFor(t, 1)
	s.tp.Abort(broadcast.ErrNotFound)
	select {
	case err := <-s.done:
		s.done <- err
		if !errors.Is(err, broadcast.ErrNotFound) {
			t.Fatalf("got %v, want ErrNotFound", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the stage did not end with the track")
	}
}

func TestGroupSetString(t *testing.T) {
	var s groupSet
	s.add(3, 3)
	s.add(4, 6) // joins the previous range
	s.add(9, 9)
	if s.String() != "3-6, 9" || s.count() != 5 {
		t.Errorf("%q (%d), want 3-6, 9 (5)", s.String(), s.count())
	}
	for i := uint64(20); i < 60; i += 2 {
		s.add(i, i)
	}
	if got := s.String(); got != "3-6, 9, 20, 22, 24, 26, 28, 30, and 14 more ranges" {
		t.Errorf("long set: %q", got)
	}
}

// An interrupted receiver returns at once even while its output is blocked
// on a reader that does not read.
func TestReceiverInterruptWhileBlocked(t *testing.T) {
	pr, pw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer pr.Close()
	defer pw.Close()
	tp := broadcast.NewTrack(broadcast.Track{Name: "t"}, broadcast.Limits{})
	tc := tp.Consume()
	defer tc.Close()
	r := &receiver{strict: true, log: quiet(), out: bufio.NewWriterSize(pw, 4096), prog: startProgress(io.Discard, true, "", nil)}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- r.run(ctx, tc) }()
	g, _ := tp.AppendGroup()
	frame := make([]byte, 64<<10)
	for range 64 { // 4 MiB: far more than a pipe holds
		_ = g.WriteFrame(frame)
	}
	// Wait until the output is stuck: a pipe holds 64 KiB by default.
	for deadline := time.Now().Add(5 * time.Second); r.summary().Frames < 2; {
		if time.Now().After(deadline) {
			t.Fatalf("only %d frames emitted", r.summary().Frames)
		}
		time.Sleep(time.Millisecond)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("interrupted: %v", err)
		}
	case <-time.After(2 * time.Second):
		t.Fatal("the receiver did not return after the interrupt")
	}
	pr.Close() // unblocks the stuck write, which ends the emitting goroutine
	_ = g.Finish()
}

// A strict stage starts at group 0 even when later groups arrive well
// before it; a live one starts where the track is.
func TestInOrderStartsAtZeroWhenStrict(t *testing.T) {
	for _, strict := range []bool{true, false} {
		t.Run(fmt.Sprint("strict=", strict), func(t *testing.T) {
			const wait = 10 * time.Millisecond
			s := startStage(t, strict, 0, func(o *inOrder) { o.wait = wait })
			s.group(t, 1, "b")
			s.c.waitFor(t, map[bool]int{true: 0, false: 1}[strict])
			time.Sleep(10 * wait) // long past the live stage's patience
			s.group(t, 0, "a")
			if err := s.end(t); err != nil {
				t.Fatal(err)
			}
			want := map[bool][]string{true: {"0:a", "1:b"}, false: {"1:b"}}[strict]
			if got := s.c.snapshot(); !slices.Equal(got, want) {
				t.Errorf("got %v, want %v", got, want)
			}
		})
	}
}
