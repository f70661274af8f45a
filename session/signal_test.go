package session

import "testing"

// TestSignal: a notify wakes every wait taken before it and none taken
// after it; a notify with nobody waiting is lost, not stored.
func TestSignal(t *testing.T) {
	var n signal
	n.notify() // nobody waits: nothing to remember
	a, b := n.wait(), n.wait()
	select {
	case <-a:
		t.Fatal("woken before notify")
	default:
	}
	n.notify()
	for _, c := range []<-chan struct{}{a, b} {
		select {
		case <-c:
		default:
			t.Fatal("a wait taken before notify was not woken")
		}
	}
	c := n.wait()
	select {
	case <-c:
		t.Fatal("a wait taken after notify was woken by it")
	default:
	}
}
