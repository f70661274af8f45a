package moq

import (
	"context"
	"iter"
	"sync"
)

// eventLog is a bounded log of events that any number of iterations read, each
// at its own pace: it keeps the last eventLogKeep events, and an iteration that
// falls further behind skips to the oldest one kept, so a reader that
// stopped holds no memory and never blocks the writer.
type eventLog[T any] struct {
	mu     sync.Mutex
	log    []T
	first  uint64        // index of log[0] among every event pushed
	wake   chan struct{} // closed and replaced at each push and at close
	closed bool
}

const eventLogKeep = 64

func newEventLog[T any]() *eventLog[T] { return &eventLog[T]{wake: make(chan struct{})} }

func (f *eventLog[T]) push(v T) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		return
	}
	f.log = append(f.log, v)
	if n := len(f.log) - eventLogKeep; n > 0 {
		f.log = append(f.log[:0], f.log[n:]...)
		f.first += uint64(n)
	}
	close(f.wake)
	f.wake = make(chan struct{})
}

// close ends every iteration once it has read what is kept.
func (f *eventLog[T]) close() {
	f.mu.Lock()
	defer f.mu.Unlock()
	if !f.closed {
		f.closed = true
		close(f.wake)
	}
}

// last returns the latest event, if any.
func (f *eventLog[T]) last() (v T, ok bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.log) == 0 {
		return v, false
	}
	return f.log[len(f.log)-1], true
}

// seq yields the events from the latest one (fromLatest) or from the
// oldest kept, then each new one, until the log closes or ctx ends.
func (f *eventLog[T]) seq(ctx context.Context, fromLatest bool) iter.Seq[T] {
	return func(yield func(T) bool) {
		f.mu.Lock()
		next := f.first
		if fromLatest && len(f.log) > 0 {
			next = f.first + uint64(len(f.log)) - 1
		}
		f.mu.Unlock()
		for {
			f.mu.Lock()
			next = max(next, f.first)
			if i := next - f.first; i < uint64(len(f.log)) {
				v := f.log[i]
				f.mu.Unlock()
				next++
				if !yield(v) {
					return
				}
				continue
			}
			closed, wake := f.closed, f.wake
			f.mu.Unlock()
			if closed {
				return
			}
			select {
			case <-wake:
			case <-ctx.Done():
				return
			}
		}
	}
}
