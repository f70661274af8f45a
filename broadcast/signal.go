package broadcast

import (
	"context"
	"sync/atomic"
)

// signal wakes every goroutine waiting for a state change. The channel is only
// replaced when somebody actually waited, so a producer that outruns its
// consumers allocates nothing per write.
//
// Protocol: a waiter holds at least a read lock on the owner's mutex while it
// calls wait; a notifier holds the write lock while it calls notify. The
// waiting flag is atomic because waiters may share a read lock.
type signal struct {
	ch      chan struct{}
	waiting atomic.Bool
}

func newSignal() signal { return signal{ch: make(chan struct{})} }

// wait returns a channel that is closed by the next notify.
func (s *signal) wait() <-chan struct{} {
	s.waiting.Store(true)
	return s.ch
}

// notify wakes the current waiters.
func (s *signal) notify() {
	if s.waiting.Swap(false) {
		close(s.ch)
		s.ch = make(chan struct{})
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
