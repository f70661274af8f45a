package actor

import (
	"runtime"
	"testing"
	"weak"

	"github.com/moqp2p/moqp2p/broadcast"
)

// A session that ended leaves nothing of itself behind on a publication
// that lives on: the hook its offer put on the broadcast goes with it, so
// a node publishing for days to peers that come and go does not keep each
// one's origin.
func TestEndedSessionReleasesItsOrigin(t *testing.T) {
	nw := newNetwork(t)
	a, b := nw.add(t), nw.add(t)
	cam := broadcast.New(broadcast.Config{})
	if _, err := a.a.Publish(testCtx(t), "cam", cam.Consume()); err != nil {
		t.Fatal(err)
	}
	toA := b.connect(t, a)
	eventually(t, "cam announced", func() bool { return announced(toA, "cam") })
	list, err := a.a.Sessions(testCtx(t))
	if err != nil || len(list) != 1 {
		t.Fatalf("Sessions = %v, %v", list, err)
	}
	origin := weak.Make(list[0].origin)
	list = nil
	_ = toA.Close(0, "")
	eventually(t, "the session gone at a", func() bool {
		l, err := a.a.Sessions(testCtx(t))
		return err == nil && len(l) == 0
	})
	eventually(t, "its origin collected", func() bool {
		runtime.GC()
		return origin.Value() == nil
	})
	runtime.KeepAlive(cam)
}
