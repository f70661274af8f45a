package actor

import (
	"testing"
	"time"
)

// A session watch starts with the live sessions, then notes every session
// registered (dialed or accepted) and kicks without blocking: a kick
// channel nobody reads holds up no registration. After Stop nothing more
// is noted.
func TestWatchSessions(t *testing.T) {
	nw := newNetwork(t)
	n, other := nw.add(t), nw.add(t)
	w := newLoopConns(t, nw)
	first := register(t, n.a, w.accepted(t))
	kick := make(chan struct{}, 1)
	sw, live, err := n.a.WatchSessions(testCtx(t), kick)
	if err != nil {
		t.Fatal(err)
	}
	if len(live) != 1 || live[0] != first {
		t.Fatalf("watch started with %v, want the one live session", live)
	}
	select {
	case <-kick:
		t.Fatal("kicked before any registration")
	default:
	}
	want := []*Session{register(t, n.a, w.accepted(t))}
	want = append(want, n.connect(t, other))
	want = append(want, register(t, n.a, w.accepted(t))) // the kick channel is full by now
	select {
	case <-kick:
	case <-time.After(5 * time.Second):
		t.Fatal("no kick")
	}
	got := sw.Take()
	if len(got) != len(want) {
		t.Fatalf("noted %d sessions, want %d", len(got), len(want))
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("noted session %d is %d, want %d", i, got[i].ID(), want[i].ID())
		}
	}
	if more := sw.Take(); len(more) != 0 {
		t.Fatalf("Take again: %d sessions", len(more))
	}
	sw.Stop()
	sw.Stop()
	register(t, n.a, w.accepted(t))
	if _, err := n.a.Sessions(testCtx(t)); err != nil { // run has handled the registration
		t.Fatal(err)
	}
	if more := sw.Take(); len(more) != 0 {
		t.Fatalf("noted %d sessions after Stop", len(more))
	}
}
