package session

import (
	"fmt"
	"testing"

	"github.com/moqp2p/moqp2p/broadcast"
)

// Live media: a frame reaches the subscriber while its group is still
// being written (a group is a GOP, a second or more of video), on every
// version, not when the group finishes; with back-pressure too, while the
// reader keeps up.
func TestFrameArrivesWhileGroupOpen(t *testing.T) {
	for _, bp := range []bool{false, true} {
		t.Run(fmt.Sprintf("backpressure=%v", bp), func(t *testing.T) { frameArrivesWhileGroupOpen(t, bp) })
	}
}

func frameArrivesWhileGroupOpen(t *testing.T, bp bool) {
	forVersions(t, func(t *testing.T, alpn string) {
		p := newPair(t, alpn, Config{}, Config{})
		b := broadcast.New(broadcast.Config{})
		tp, _ := b.CreateTrack(broadcast.Track{Name: "video"})
		_, _ = p.origin.Publish("cam", b.Consume())
		tc, err := p.sub.Subscribe(testCtx(t), "cam", "video", SubscribeOptions{Backpressure: bp})
		if err != nil {
			t.Fatal(err)
		}
		defer tc.Close()
		g, _ := tp.AppendGroup()
		defer g.Finish()
		var recvd *broadcast.GroupConsumer
		for i := range 5 {
			want := []byte{byte(i), 1, 2, 3}
			if err := g.WriteFrame(want); err != nil {
				t.Fatal(err)
			}
			if i == 0 {
				rg, err := tc.RecvGroup(testCtx(t))
				if err != nil {
					t.Fatal(err)
				}
				recvd = rg
			}
			f, err := recvd.ReadFrame(testCtx(t))
			if err != nil || string(f) != string(want) {
				t.Fatalf("frame %d of an open group: %v %v", i, f, err)
			}
		}
	})
}
