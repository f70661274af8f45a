package broadcast

import (
	"context"
	"sync"
	"sync/atomic"
)

// signal wakes every goroutine waiting for a state change. Its channel is
// made only when somebody waits, and replaced only after a waiter was woken,
// so a producer that outruns its consumers allocates nothing per write, and
// a group or track nobody ever waits on never allocates a channel at all.
//
// Protocol: a waiter holds at least a read lock on the owner's mutex while it
// calls wait; a notifier holds the write lock while it calls notify. Waiters
// may share a read lock, so they make the channel under mu; notify needs no
// lock beyond the owner's, as no waiter can run meanwhile.
type signal struct {
	waiting atomic.Bool
	mu      sync.Mutex // orders waiters that share the owner's read lock
	ch      chan struct{}
}

// wait returns a channel that is closed by the next notify.
func (s *signal) wait() <-chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ch == nil {
		s.ch = make(chan struct{})
	}
	s.waiting.Store(true)
	return s.ch
}

// notify wakes the current waiters.
func (s *signal) notify() {
	if s.waiting.Load() {
		s.waiting.Store(false)
		close(s.ch)
		s.ch = nil
	}
}

// sleep blocks until ch closes or ctx ends.
func sleep(ctx context.Context, ch <-chan struct{}) error {
	select {
	case <-ch:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
