package broadcast

import (
	"context"
	"errors"
	"fmt"
	"io"
	"testing"
	"time"
)

// CopyGroup carries payloads and timestamps, waits for frames still to come,
// skips the frames the destination already has, and reports how the
// source ended.
func TestCopyGroup(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	b := New(Config{})
	src, _ := b.CreateTrack(Track{Name: "src"})
	dst, _ := b.CreateTrack(Track{Name: "dst"})
	sc, _ := b.Consume().SubscribeTrack(Track{Name: "src"})
	dc, _ := b.Consume().SubscribeTrack(Track{Name: "dst"})
	sg, _ := src.AppendGroup()
	dg, _ := dst.AppendGroup()
	for i := range 100 { // more than one batch at hand
		_ = sg.WriteFrameAt(uint64(i*10), fmt.Appendf(nil, "f%d", i))
	}
	_ = dg.WriteFrameAt(0, []byte("f0")) // a failed source copied one already
	g, err := sc.RecvGroup(ctx)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	var n int
	var rerr, werr error
	go func() {
		defer close(done)
		n, rerr, werr = CopyGroup(ctx, dg, g, 1)
	}()
	_ = sg.WriteFrameAt(1000, []byte("f100")) // arrives while it waits
	_ = sg.Finish()
	<-done
	if n != 100 || rerr != nil || werr != nil {
		t.Fatalf("copied %d, %v, %v; want 100 frames and a clean end", n, rerr, werr)
	}
	_ = dg.Finish()
	out, err := dc.RecvGroup(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; ; i++ {
		f, ts, err := out.ReadFrameAt(ctx)
		if errors.Is(err, io.EOF) {
			if i != 101 {
				t.Fatalf("%d frames, want 101", i)
			}
			break
		}
		if err != nil || string(f) != fmt.Sprint("f", i) || ts != uint64(i*10) {
			t.Fatalf("frame %d: %q at %d, %v", i, f, ts, err)
		}
	}

	// An aborted source is reported as such; the destination is left alone.
	sg2, _ := src.AppendGroup()
	g2, err := sc.RecvGroup(ctx)
	if err != nil {
		t.Fatal(err)
	}
	dg2, _ := dst.AppendGroup()
	boom := errors.New("boom")
	sg2.Abort(boom)
	if _, rerr, werr := CopyGroup(ctx, dg2, g2, 0); !errors.Is(rerr, boom) || werr != nil {
		t.Fatalf("aborted source: %v, %v", rerr, werr)
	}
	if err := dg2.WriteFrame([]byte("still open")); err != nil {
		t.Fatalf("destination closed: %v", err)
	}
}
