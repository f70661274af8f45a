package broadcast_test

import (
	"context"
	"fmt"

	"github.com/moqp2p/moqp2p/broadcast"
)

// Publish a track with two groups and read it back as a subscriber would.
func Example() {
	ctx := context.Background()

	// Publisher side.
	pub := broadcast.New(broadcast.Config{})
	video, _ := pub.CreateTrack(broadcast.Track{Name: "video", Priority: 2})

	// Subscriber side: subscribing before anything is written starts at the first group.
	sub, _ := pub.Consume().SubscribeTrack(broadcast.Track{Name: "video"})
	defer sub.Close()

	for gop := range 2 {
		g, _ := video.AppendGroup()
		for f := range 3 {
			_ = g.WriteFrame(fmt.Appendf(nil, "gop %d frame %d", gop, f))
		}
		_ = g.Finish()
	}
	_ = video.Finish()

	for {
		g, err := sub.NextGroup(ctx)
		if err != nil {
			break // io.EOF: the track finished
		}
		for {
			frame, err := g.ReadFrame(ctx)
			if err != nil {
				break // io.EOF: the group finished
			}
			fmt.Printf("group %d: %s\n", g.Sequence(), frame)
		}
	}
	// Output:
	// group 0: gop 0 frame 0
	// group 0: gop 0 frame 1
	// group 0: gop 0 frame 2
	// group 1: gop 1 frame 0
	// group 1: gop 1 frame 1
	// group 1: gop 1 frame 2
}

// Serve tracks on demand: the handler runs once per track however many
// subscribers share it.
func ExampleConfig_onTrack() {
	pub := broadcast.New(broadcast.Config{OnTrack: func(t *broadcast.TrackProducer) {
		fmt.Println("producing", t.Info().Name)
		_ = t.WriteFrame([]byte("on demand"))
	}})
	a, _ := pub.Consume().SubscribeTrack(broadcast.Track{Name: "audio"})
	b, _ := pub.Consume().SubscribeTrack(broadcast.Track{Name: "audio"})
	defer a.Close()
	defer b.Close()
	g, _ := b.RecvGroup(context.Background())
	f, _ := g.ReadFrame(context.Background())
	fmt.Printf("%s\n", f)
	// Output:
	// producing audio
	// on demand
}

// Watch the broadcasts announced under a prefix.
func ExampleOrigin_Announced() {
	origin := broadcast.NewOrigin(0)
	cam := broadcast.New(broadcast.Config{})
	_, _ = origin.Publish("room/alice/cam", cam.Consume())

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	n := 0
	for path, b := range origin.Announced(ctx, "room") {
		if b != nil {
			fmt.Println("announced", path)
			cam.Finish() // ending a broadcast unannounces it
		} else {
			fmt.Println("ended", path)
		}
		if n++; n == 2 {
			break
		}
	}
	// Output:
	// announced room/alice/cam
	// ended room/alice/cam
}
