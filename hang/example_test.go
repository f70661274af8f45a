package hang_test

import (
	"context"
	"fmt"

	"github.com/moqp2p/moqp2p/broadcast"
	"github.com/moqp2p/moqp2p/hang"
)

// A hang broadcast: a catalog naming one H.264 rendition, and its track,
// where each keyframe starts a group. Publish b with moq.Moq.Publish to
// make it playable by @moq/watch.
func Example() {
	b := broadcast.New(broadcast.Config{})
	defer b.Finish()
	cat, _ := b.CreateTrack(broadcast.Track{Name: hang.CatalogTrack, Priority: 100})
	video, _ := b.CreateTrack(hang.MediaTrack("video", 1))

	_ = hang.NewCatalogWriter(cat).Write(&hang.Catalog{Video: &hang.Video{
		Renditions: map[string]hang.VideoConfig{"video": {
			Codec: "avc1.42c01e", Container: hang.Legacy, CodedWidth: 320, CodedHeight: 240, Framerate: 25,
		}},
	}})
	w := hang.NewTrackWriter(video)
	_ = w.WriteFrame(0, true, []byte("keyframe"))
	_ = w.WriteFrame(40_000, false, []byte("delta"))

	// A subscriber reads the catalog, then the rendition it names.
	ctx := context.Background()
	tc, _ := b.Consume().SubscribeTrack(broadcast.Track{Name: hang.CatalogTrack})
	cr := hang.NewCatalogReader(tc)
	defer cr.Close()
	c, _ := cr.Next(ctx)
	fmt.Println(c.Video.Renditions["video"].Codec)
	vc, _ := b.Consume().SubscribeTrack(hang.MediaTrack("video", 1))
	r := hang.NewTrackReader(vc)
	defer r.Close()
	f, _ := r.ReadFrame(ctx)
	fmt.Println(f.Timestamp, f.Keyframe, string(f.Payload))
	// Output:
	// avc1.42c01e
	// 0 true keyframe
}
