package moq

import (
	"context"
	"strconv"
	"testing"
	"time"
)

// A subscriber that reads far slower than the publisher writes stalls
// neither the publisher nor a fast subscriber on another node (which gets
// nearly every group while the slow one lags): it skips to recent groups,
// reaches the live edge, and a resilient track tells it how many it
// skipped.
func TestSlowSubscriberSkipsAndIsTold(t *testing.T) {
	pub, fast, slow := newNode(t), newNode(t), newNode(t)
	m := publish(t, pub, "live")
	fast.connect(t, pub)
	slow.connect(t, pub)
	fs, err := fast.Connect(testCtx(t), pub.info())
	if err != nil {
		t.Fatal(err)
	}
	ftc, err := fs.Subscribe(testCtx(t), "live", "video")
	if err != nil {
		t.Fatal(err)
	}
	defer ftc.Close()
	stc, err := slow.SubscribeResilient(testCtx(t), "live", "video", ResilientOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer stc.Close()

	const groups = 600 // 3 s at 200 groups/s
	payload := make([]byte, 1024)
	fastGot := make(chan int, 1)
	go func() {
		n := 0
		defer func() { fastGot <- n }()
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		for {
			g, err := ftc.NextGroup(ctx)
			if err != nil {
				return
			}
			if _, err := g.ReadFrame(ctx); err == nil {
				n++
			}
			if g.Sequence() >= groups-1 {
				return
			}
		}
	}()
	slowLast := make(chan uint64, 1)
	go func() {
		var last uint64
		defer func() { slowLast <- last }()
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		for {
			g, err := stc.NextGroup(ctx)
			if err != nil {
				return
			}
			last = g.Sequence()
			if last >= groups-1 {
				return
			}
			time.Sleep(300 * time.Millisecond) // a reader far slower than the stream
		}
	}()
	time.Sleep(200 * time.Millisecond) // both subscriptions up
	start := time.Now()
	tick := time.NewTicker(5 * time.Millisecond)
	for i := range groups {
		copy(payload, strconv.Itoa(i))
		if err := m.track.WriteFrame(append([]byte(nil), payload...)); err != nil {
			t.Fatal(err)
		}
		<-tick.C
	}
	tick.Stop()
	t.Logf("published %d groups in %v", groups, time.Since(start))
	if n := <-fastGot; n < groups*95/100 {
		t.Errorf("fast subscriber got %d of %d groups", n, groups)
	}
	if last := <-slowLast; last < groups-1 {
		t.Errorf("slow subscriber stopped at group %d, never reached the live edge %d", last, groups-1)
	}
	var skipped uint64
	for ev := range stc.Events(testCtx(t)) {
		if ev.Kind == TrackSkipped {
			skipped += ev.Skipped
		}
		if skipped > groups/2 {
			break
		}
	}
	if skipped <= groups/2 {
		t.Errorf("slow subscriber told of %d skipped groups, want most of %d", skipped, groups)
	}
}
