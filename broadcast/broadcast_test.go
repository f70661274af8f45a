package broadcast

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
)

func TestBroadcastCreateTrackDuplicate(t *testing.T) {
	b := New(Config{})
	if _, err := b.CreateTrack(Track{Name: "video"}); err != nil {
		t.Fatal(err)
	}
	if _, err := b.CreateTrack(Track{Name: "video"}); !errors.Is(err, ErrDuplicate) {
		t.Fatalf("second track named video: %v, want ErrDuplicate", err)
	}
	b.RemoveTrack("video")
	if _, err := b.CreateTrack(Track{Name: "video"}); err != nil {
		t.Fatalf("after RemoveTrack: %v", err)
	}
}

func TestBroadcastUnknownTrackWithoutHandler(t *testing.T) {
	b := New(Config{})
	if _, err := b.Consume().SubscribeTrack(Track{Name: "nope"}); !errors.Is(err, ErrNotFound) {
		t.Fatalf("unknown track: %v, want ErrNotFound", err)
	}
}

func TestBroadcastSubscribeReadsPublisherTrack(t *testing.T) {
	b := New(Config{})
	tp, _ := b.CreateTrack(Track{Name: "video", Priority: 3})
	c, err := b.Consume().SubscribeTrack(Track{Name: "video"})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := tp.WriteFrame([]byte("hello")); err != nil {
		t.Fatal(err)
	}
	g, err := c.RecvGroup(testCtx(t))
	if err != nil {
		t.Fatal(err)
	}
	if f, err := g.ReadFrame(testCtx(t)); err != nil || string(f) != "hello" {
		t.Fatalf("frame %q, %v", f, err)
	}
	if c.Info().Priority != 3 {
		t.Errorf("priority %d, want the producer's 3", c.Info().Priority)
	}
}

// A track made on demand is shared by every subscriber and forgotten when the
// last one leaves; the next subscription asks the handler again.
func TestBroadcastOnDemandDedupAndCleanup(t *testing.T) {
	var requests atomic.Int32
	var mu sync.Mutex
	var made []*TrackProducer
	b := New(Config{OnTrack: func(tp *TrackProducer) {
		requests.Add(1)
		mu.Lock()
		made = append(made, tp)
		mu.Unlock()
	}})
	bc := b.Consume()
	var subs []*TrackConsumer
	for range 10 {
		c, err := bc.SubscribeTrack(Track{Name: "audio"})
		if err != nil {
			t.Fatal(err)
		}
		subs = append(subs, c)
	}
	if n := requests.Load(); n != 1 {
		t.Fatalf("10 subscribers made %d requests, want 1 shared producer", n)
	}
	// Every subscriber reads what the one producer writes.
	_ = made[0].WriteFrame([]byte("x"))
	for i, c := range subs {
		if _, err := c.RecvGroup(testCtx(t)); err != nil {
			t.Fatalf("subscriber %d: %v", i, err)
		}
	}
	unused := made[0].Unused()
	for _, c := range subs {
		c.Close()
	}
	<-unused
	c, err := bc.SubscribeTrack(Track{Name: "audio"})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if n := requests.Load(); n != 2 {
		t.Fatalf("after the last consumer left: %d requests, want a fresh one (2)", n)
	}
}

// The cleanup of an unused on-demand track must not remove a track that a new
// subscriber joined in the meantime.
func TestBroadcastOnDemandCleanupRace(t *testing.T) {
	var requests atomic.Int32
	b := New(Config{OnTrack: func(*TrackProducer) { requests.Add(1) }})
	bc := b.Consume()
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range 200 {
				c, err := bc.SubscribeTrack(Track{Name: "t"})
				if err != nil {
					t.Error(err)
					return
				}
				c.Close()
			}
		})
	}
	wg.Wait()
	held, _ := bc.SubscribeTrack(Track{Name: "t"})
	again, _ := bc.SubscribeTrack(Track{Name: "t"})
	defer held.Close()
	defer again.Close()
	if held.t != again.t {
		t.Fatal("two live subscribers got different tracks")
	}
}

func TestBroadcastFinishAndAbort(t *testing.T) {
	b := New(Config{})
	tp, _ := b.CreateTrack(Track{Name: "v"})
	c := b.Consume()
	tc, _ := c.SubscribeTrack(Track{Name: "v"})
	defer tc.Close()
	b.Finish()
	<-c.Done()
	if !errors.Is(c.Err(), ErrClosed) {
		t.Errorf("Err after Finish: %v", c.Err())
	}
	if _, err := c.SubscribeTrack(Track{Name: "v"}); !errors.Is(err, ErrClosed) {
		t.Errorf("subscribe after Finish: %v, want ErrClosed", err)
	}
	if err := tp.WriteFrame([]byte("still")); err != nil {
		t.Errorf("tracks run on after Finish: %v", err)
	}

	b2 := New(Config{})
	tp2, _ := b2.CreateTrack(Track{Name: "v"})
	tc2, _ := b2.Consume().SubscribeTrack(Track{Name: "v"})
	defer tc2.Close()
	b2.Abort(AppError(9, "bye"))
	if _, err := tc2.RecvGroup(testCtx(t)); CodeOf(err) != CodeApp+9 {
		t.Errorf("track consumer after broadcast abort: %v", err)
	}
	if _, err := tp2.AppendGroup(); err == nil {
		t.Error("track writable after broadcast abort")
	}
}

func TestErrorsMatchByCode(t *testing.T) {
	remote := &Error{Code: CodeNotFound, Reason: "peer said so"}
	if !errors.Is(remote, ErrNotFound) || errors.Is(remote, ErrDuplicate) {
		t.Fatal("errors.Is must compare codes")
	}
	// Unroutable is a missing broadcast too; NotFound is not Unroutable.
	unroutable := fmt.Errorf("subscribe: %w", &Error{Code: CodeUnroutable, Reason: "no route"})
	if !errors.Is(unroutable, ErrNotFound) || !errors.Is(unroutable, ErrUnroutable) || errors.Is(remote, ErrUnroutable) ||
		errors.Is(ErrNotFound, ErrUnroutable) || CodeOf(unroutable) != CodeUnroutable {
		t.Fatal("Unroutable must match ErrNotFound, keeping its code")
	}
	if CodeCacheFull != CodeLagged || ErrEvicted != ErrLagged || CodeEvicted != 31 || CodeFrameTooLarge != 27 {
		t.Fatal("codes moved")
	}
	for c, s := range map[Code]string{CodeLagged: "lagged", CodeEvicted: "evicted", CodeUnroutable: "unroutable", 28: "error code 28"} {
		if c.String() != s {
			t.Errorf("%d.String() = %q, want %q", uint32(c), c.String(), s)
		}
	}
	if CodeOf(nil) != CodeCancel || CodeOf(errors.New("x")) != CodeProtocol || CodeOf(ErrLagged) != CodeLagged {
		t.Fatal("CodeOf")
	}
	// An error carrying its own code (a transport's connection close) keeps
	// it, wrapped or not: a closing session's streams say why it closed.
	if c := CodeOf(fmt.Errorf("session: %w", codedErr(CodeUnauthorized))); c != CodeUnauthorized {
		t.Fatalf("CodeOf(coded error) = %v", c)
	}
	// A context's end is no protocol violation: a deadline is a timeout,
	// a cancellation a cancel.
	if c := CodeOf(fmt.Errorf("fetch: %w", context.DeadlineExceeded)); c != CodeTimeout {
		t.Fatalf("CodeOf(deadline) = %v, want Timeout", c)
	}
	if c := CodeOf(context.Canceled); c != CodeCancel {
		t.Fatalf("CodeOf(cancelled) = %v, want Cancel", c)
	}
	if s := AppError(2, "").Error(); s != "moq: application error 2" {
		t.Fatalf("AppError text %q", s)
	}
}

// codedErr is an error that carries a moq-lite code of its own, as
// transport.ConnError does.
type codedErr Code

func (e codedErr) Error() string     { return "closed" }
func (e codedErr) ErrorCode() uint32 { return uint32(e) }
