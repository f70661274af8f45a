package session

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/moqp2p/moqp2p/broadcast"
	"github.com/moqp2p/moqp2p/internal/impair"
	"github.com/moqp2p/moqp2p/transport"
	"github.com/moqp2p/moqp2p/transport/rawquic"
)

// A publisher that vanishes (kill -9: nothing more from it, no close) fails
// the subscriber's reads with an error matching transport.ErrConnLost whose
// code is Transport, and the session's Err is already set when they fail.
func TestVanishedPeerFailsReadsWithSessionErr(t *testing.T) {
	for i := range 4 {
		pub, sub, link := impairedPairWith(t, rawquic.ConfigDeadPeer(300*time.Millisecond), impair.Config{}, impair.Config{})
		origin := pub.publish
		b := broadcast.New(broadcast.Config{})
		tp, _ := b.CreateTrack(broadcast.Track{Name: "video"})
		if _, err := origin.Publish("cam", b.Consume()); err != nil {
			t.Fatal(err)
		}
		g, _ := tp.AppendGroup()
		_ = g.WriteFrame([]byte("x"))
		eventually(t, func() bool { return sub.Remote().Get("cam") != nil })
		tc, err := sub.Subscribe(testCtx(t), "cam", "video", SubscribeOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := tc.NextGroup(testCtx(t)); err != nil {
			t.Fatal(err)
		}
		link.Set(impair.Config{Loss: 1})
		_, err = tc.NextGroup(testCtx(t))
		serr := sub.Err()
		if serr == nil {
			t.Fatalf("run %d: read failed with %v while the session's Err was still nil", i, err)
		}
		if !strings.HasPrefix(serr.Error(), "connection lost: ") {
			t.Errorf("run %d: the session's Err %q is not the connection's end as the transport put it", i, serr)
		}
		for what, e := range map[string]error{"read": err, "Err": serr} {
			if !errors.Is(e, transport.ErrConnLost) || broadcast.CodeOf(e) != broadcast.CodeTransport {
				t.Errorf("run %d: %s: %v (code %v), want transport.ErrConnLost with code Transport", i, what, e, broadcast.CodeOf(e))
			}
		}
		tc.Close()
	}
}
