package broadcast

import (
	"errors"
	"fmt"
	"io"
	"testing"

	"github.com/moqp2p/moqp2p/internal/testutil"
)

func strs(frames [][]byte) []string {
	out := make([]string, len(frames))
	for i, f := range frames {
		out[i] = string(f)
	}
	return out
}

func TestGroupWriteFramesAppendsInOrder(t *testing.T) {
	g := newTestGroup(Limits{})
	c := g.Consume()
	if err := g.WriteFrames([]byte("a"), []byte("b")); err != nil {
		t.Fatal(err)
	}
	if err := g.WriteFrames(); err != nil { // nothing: no error
		t.Fatal(err)
	}
	_ = g.WriteFrame([]byte("c"))
	_ = g.Finish()
	got, err := readAll(t, c)
	if !errors.Is(err, io.EOF) || fmt.Sprint(got) != "[a b c]" {
		t.Fatalf("got %v, %v; want [a b c], EOF", got, err)
	}
	if err := g.WriteFrames([]byte("d")); !errors.Is(err, ErrClosed) {
		t.Fatalf("WriteFrames after Finish: %v, want ErrClosed", err)
	}
}

// A frame over the group limit is refused; the frames before it are kept.
func TestGroupWriteFramesTooLarge(t *testing.T) {
	g := newTestGroup(Limits{GroupMaxBytes: 4})
	c := g.Consume()
	if err := g.WriteFrames([]byte("ab"), []byte("toolarge"), []byte("c")); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("got %v, want ErrTooLarge", err)
	}
	if err := g.WriteFrames([]byte("toolarge")); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("got %v, want ErrTooLarge", err)
	}
	_ = g.Finish()
	if got, _ := readAll(t, c); fmt.Sprint(got) != "[ab]" {
		t.Fatalf("got %v, want [ab]", got)
	}
}

// WriteFrames wakes a waiting reader once for the whole batch.
func TestGroupWriteFramesWakesReader(t *testing.T) {
	g := newTestGroup(Limits{})
	c := g.Consume()
	got := make(chan []byte, 1)
	go func() {
		f, _ := c.ReadFrame(testCtx(t))
		got <- f
	}()
	testutil.Eventually(t, "the reader to park", g.g.sig.waiting.Load)
	_ = g.WriteFrames([]byte("x"), []byte("y"))
	if f := <-got; string(f) != "x" {
		t.Fatalf("woke with %q, want x", f)
	}
	batch, err := c.TryReadFrames(nil, 8)
	if err != nil || fmt.Sprint(strs(batch)) != "[y]" {
		t.Fatalf("then %v, %v; want [y]", strs(batch), err)
	}
}

func TestGroupTryReadFrames(t *testing.T) {
	g := newTestGroup(Limits{GroupMaxFrames: 3})
	c, behind := g.Consume(), g.Consume()
	if batch, err := c.TryReadFrames(nil, 8); len(batch) != 0 || err != nil {
		t.Fatalf("empty group: %v, %v; want nothing, nil", batch, err)
	}
	_ = g.WriteFrames([]byte("a"), []byte("b"), []byte("c"))
	batch, err := c.TryReadFrames(make([][]byte, 0, 4), 2) // at most 2
	if err != nil || fmt.Sprint(strs(batch)) != "[a b]" {
		t.Fatalf("got %v, %v; want [a b]", strs(batch), err)
	}
	batch, err = c.TryReadFrames(batch[:0], 8)
	if err != nil || fmt.Sprint(strs(batch)) != "[c]" {
		t.Fatalf("got %v, %v; want [c]", strs(batch), err)
	}
	_ = g.WriteFrame([]byte("d")) // evicts a: behind is now behind
	if _, err := behind.TryReadFrames(nil, 8); !errors.Is(err, ErrLagged) {
		t.Fatalf("consumer behind eviction: %v, want ErrLagged", err)
	}
	_ = g.Finish()
	if batch, err = c.TryReadFrames(nil, 8); err != nil || fmt.Sprint(strs(batch)) != "[d]" {
		t.Fatalf("got %v, %v; want [d] before the end", strs(batch), err)
	}
	if batch, err = c.TryReadFrames(nil, 8); len(batch) != 0 || !errors.Is(err, io.EOF) {
		t.Fatalf("at the end: %v, %v; want nothing, EOF", batch, err)
	}
	a := newTestGroup(Limits{})
	ac := a.Consume()
	a.Abort(ErrNotFound)
	if _, err := ac.TryReadFrames(nil, 8); !errors.Is(err, ErrNotFound) {
		t.Fatalf("aborted group: %v, want its error", err)
	}
}

func TestGroupRemaining(t *testing.T) {
	g := newTestGroup(Limits{})
	c := g.Consume()
	_ = g.WriteFrames([]byte("ab"), []byte("cde"))
	if _, _, ok := c.Remaining(8, 100); ok {
		t.Fatal("an unfinished group is not complete")
	}
	_ = g.Finish()
	if n, bytes, ok := c.Remaining(8, 100); !ok || n != 2 || bytes != 5 {
		t.Fatalf("Remaining = %d, %d, %v; want 2, 5, true", n, bytes, ok)
	}
	if _, _, ok := c.Remaining(1, 100); ok {
		t.Fatal("more frames than maxFrames must not count as complete")
	}
	if _, _, ok := c.Remaining(8, 4); ok {
		t.Fatal("more bytes than maxBytes must not count as complete")
	}
	_, _ = c.ReadFrame(testCtx(t))
	if n, bytes, ok := c.Remaining(8, 100); !ok || n != 1 || bytes != 3 {
		t.Fatalf("after one read: %d, %d, %v; want 1, 3, true", n, bytes, ok)
	}
	a := newTestGroup(Limits{})
	ac := a.Consume()
	a.Abort(nil)
	if _, _, ok := ac.Remaining(8, 100); ok {
		t.Fatal("an aborted group is not complete")
	}
}

// A group nobody waits on never makes a wake-up channel.
func TestGroupSignalIsLazy(t *testing.T) {
	g := newTestGroup(Limits{})
	c := g.Consume()
	for range 10 {
		_ = g.WriteFrame([]byte("f"))
		_, _ = c.ReadFrame(testCtx(t))
	}
	_ = g.Finish()
	if g.g.sig.ch != nil {
		t.Fatal("a channel was made though nobody waited")
	}
}
