package testutil

import (
	"context"
	"sync/atomic"
	"testing"

	"github.com/libp2p/go-libp2p/core/peer"
)

// BlockingAdmission is an admission function (moq.WithAdmission) that
// blocks every admission until Release is closed, a token lets it through
// or its context ends, counting those running and the most that ever ran
// at once.
type BlockingAdmission struct {
	Release          chan struct{}
	Tokens           chan struct{} // each lets one admission through
	Running, MaxSeen atomic.Int32
	entered          chan struct{} // one value per admission that started
	Ended            chan error    // why each admission returned
}

// NewBlockingAdmission makes a BlockingAdmission with room for 256
// admissions' events.
func NewBlockingAdmission() *BlockingAdmission {
	return &BlockingAdmission{Release: make(chan struct{}), Tokens: make(chan struct{}, 256), entered: make(chan struct{}, 256), Ended: make(chan error, 256)}
}

// Admit is the admission function.
func (b *BlockingAdmission) Admit(ctx context.Context, _ peer.ID) error {
	now := b.Running.Add(1)
	defer b.Running.Add(-1)
	for {
		old := b.MaxSeen.Load()
		if now <= old || b.MaxSeen.CompareAndSwap(old, now) {
			break
		}
	}
	b.entered <- struct{}{}
	var err error
	select {
	case <-b.Release:
	case <-b.Tokens:
	case <-ctx.Done():
		err = ctx.Err()
	}
	b.Ended <- err
	return err
}

// WaitEntered waits until n more admissions have started.
func (b *BlockingAdmission) WaitEntered(t testing.TB, ctx context.Context, n int) {
	t.Helper()
	for range n {
		select {
		case <-b.entered:
		case <-ctx.Done():
			t.Fatal("admission never started")
		}
	}
}
