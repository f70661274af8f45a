package websocket

// notify wakes every goroutine waiting for a state change. It is guarded by
// the Conn's mutex: waiters take the channel under the lock, then wait with
// it released, so a wake between the two is never lost.
type notify struct{ ch chan struct{} }

// wait returns a channel that is closed at the next wake.
func (n *notify) wait() <-chan struct{} {
	if n.ch == nil {
		n.ch = make(chan struct{})
	}
	return n.ch
}

// wake releases the current waiters; it costs nothing without any.
func (n *notify) wake() {
	if n.ch != nil {
		close(n.ch)
		n.ch = nil
	}
}
