package broadcast

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"testing"
	"time"
)

func newTestGroup(lim Limits) *GroupProducer {
	l := lim.withDefaults()
	return &GroupProducer{g: newGroup(7, &l, nil)}
}

func readAll(t *testing.T, c *GroupConsumer) ([]string, error) {
	t.Helper()
	var out []string
	for {
		f, err := c.ReadFrame(testCtx(t))
		if err != nil {
			return out, err
		}
		out = append(out, string(f))
	}
}

func TestGroupFramesInOrderForEveryConsumer(t *testing.T) {
	g := newTestGroup(Limits{})
	early := g.Consume()
	for i := range 3 {
		if err := g.WriteFrame([]byte{byte('a' + i)}); err != nil {
			t.Fatal(err)
		}
	}
	late := g.Consume() // joins after three frames: still starts at the first
	if err := g.WriteFrame([]byte("d")); err != nil {
		t.Fatal(err)
	}
	if err := g.Finish(); err != nil {
		t.Fatal(err)
	}
	for name, c := range map[string]*GroupConsumer{"early": early, "late": late} {
		got, err := readAll(t, c)
		if !errors.Is(err, io.EOF) || fmt.Sprint(got) != "[a b c d]" {
			t.Errorf("%s consumer: got %v, %v; want [a b c d], EOF", name, got, err)
		}
	}
	if g.FrameCount() != 4 || early.Sequence() != 7 {
		t.Errorf("FrameCount=%d Sequence=%d", g.FrameCount(), early.Sequence())
	}
}

func TestGroupSharesOnePayload(t *testing.T) {
	g := newTestGroup(Limits{})
	a, b := g.Consume(), g.Consume()
	payload := []byte("shared")
	_ = g.WriteFrame(payload)
	fa, _ := a.ReadFrame(testCtx(t))
	fb, _ := b.ReadFrame(testCtx(t))
	if &fa[0] != &payload[0] || &fb[0] != &payload[0] {
		t.Fatal("consumers got copies; want the producer's slice shared")
	}
}

func TestGroupAbortKeepsWrittenFrames(t *testing.T) {
	g := newTestGroup(Limits{})
	c := g.Consume()
	_ = g.WriteFrame([]byte("x"))
	boom := AppError(3, "encoder died")
	g.Abort(boom)
	got, err := readAll(t, c)
	if fmt.Sprint(got) != "[x]" || !errors.Is(err, boom) || CodeOf(err) != CodeApp+3 {
		t.Fatalf("got %v, %v; want [x] then the abort error", got, err)
	}
	g.Abort(nil) // no-op on an ended group
}

func TestGroupWritesAfterEndAreErrors(t *testing.T) {
	g := newTestGroup(Limits{})
	_ = g.Finish()
	if err := g.WriteFrame([]byte("late")); !errors.Is(err, ErrClosed) {
		t.Errorf("write after finish: %v, want ErrClosed", err)
	}
	if err := g.Finish(); !errors.Is(err, ErrClosed) {
		t.Errorf("second finish: %v, want ErrClosed", err)
	}
}

func TestGroupOversizeFrame(t *testing.T) {
	g := newTestGroup(Limits{GroupMaxBytes: 10})
	if err := g.WriteFrame(make([]byte, 11)); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("oversize frame: %v, want ErrTooLarge", err)
	}
	if err := g.WriteFrame(make([]byte, 10)); err != nil {
		t.Fatalf("frame at the limit: %v", err)
	}
}

func TestGroupEvictionSlowConsumer(t *testing.T) {
	for _, tc := range []struct {
		name string
		lim  Limits
	}{
		{"frames", Limits{GroupMaxFrames: 4}},
		{"bytes", Limits{GroupMaxBytes: 40}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := newTestGroup(tc.lim)
			slow, fast := g.Consume(), g.Consume()
			for i := range 10 {
				_ = g.WriteFrame(make([]byte, 10))
				if _, err := fast.ReadFrame(testCtx(t)); err != nil {
					t.Fatalf("fast consumer, frame %d: %v", i, err)
				}
			}
			_ = g.Finish()
			if _, err := slow.ReadFrame(testCtx(t)); !errors.Is(err, ErrLagged) || CodeOf(err) != CodeLagged {
				t.Fatalf("slow consumer: %v, want ErrLagged", err)
			}
			if _, err := fast.ReadFrame(testCtx(t)); !errors.Is(err, io.EOF) {
				t.Fatalf("fast consumer at end: %v, want EOF", err)
			}
		})
	}
}

func TestGroupReadHonoursContext(t *testing.T) {
	g := newTestGroup(Limits{})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if _, err := g.Consume().ReadFrame(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("got %v, want DeadlineExceeded", err)
	}
}

func TestGroupConcurrentConsumers(t *testing.T) {
	g := newTestGroup(Limits{GroupMaxFrames: 4096}) // room for every frame: this test is about ordering, not eviction
	const frames, readers = 2000, 8
	var wg sync.WaitGroup
	errs := make(chan error, readers)
	for range readers {
		c := g.Consume()
		wg.Go(func() {
			for i := range frames {
				f, err := c.ReadFrame(testCtx(t))
				if err != nil || len(f) != 2 || int(f[0])<<8|int(f[1]) != i {
					errs <- fmt.Errorf("frame %d: %v %v", i, f, err)
					return
				}
			}
			if _, err := c.ReadFrame(testCtx(t)); !errors.Is(err, io.EOF) {
				errs <- fmt.Errorf("end: %v", err)
			}
		})
	}
	for i := range frames {
		_ = g.WriteFrame([]byte{byte(i >> 8), byte(i)})
	}
	_ = g.Finish()
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

func TestGroupCloneKeepsPosition(t *testing.T) {
	g := newTestGroup(Limits{})
	for _, s := range []string{"a", "b", "c"} {
		_ = g.WriteFrame([]byte(s))
	}
	_ = g.Finish()
	c := g.Consume()
	_, _ = c.ReadFrame(testCtx(t))
	d := c.Clone()
	got1, _ := readAll(t, c)
	got2, _ := readAll(t, d)
	if fmt.Sprint(got1) != "[b c]" || fmt.Sprint(got2) != "[b c]" {
		t.Fatalf("got %v and %v, want [b c] twice", got1, got2)
	}
}

func TestGroupTryReadFrame(t *testing.T) {
	g := newTestGroup(Limits{})
	c := g.Consume()
	if _, ok, err := c.TryReadFrame(); ok || err != nil {
		t.Fatalf("empty group: ok=%v err=%v, want not ready", ok, err)
	}
	_ = g.WriteFrame([]byte("a"))
	if f, ok, err := c.TryReadFrame(); !ok || err != nil || string(f) != "a" {
		t.Fatalf("got %q %v %v", f, ok, err)
	}
	_ = g.Finish()
	if _, ok, err := c.TryReadFrame(); !ok || !errors.Is(err, io.EOF) {
		t.Fatalf("finished group: ok=%v err=%v, want EOF", ok, err)
	}
}
