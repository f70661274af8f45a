package actor

import (
	"context"
	"sync"
)

// SessionWatch follows the sessions registered on the node, for a caller
// waiting for something a session may bring (a resilient track waiting for
// an upstream): each registration is noted on the watch and kicks the
// caller's channel, without ever blocking run. The caller takes the
// sessions noted with Take, on its own goroutine.
type SessionWatch struct {
	a    *Actor
	kick chan<- struct{} // the caller's; run sends without blocking
	once sync.Once

	mu    sync.Mutex
	added []*Session // registered since the last Take
}

// sessionWatchReq starts a SessionWatch; run replies with the live
// sessions (those registered before it, which it will not note).
type sessionWatchReq struct {
	w     *SessionWatch
	reply chan []*Session // buffered: run never waits on it
}

// WatchSessions starts a watch: it returns the live sessions and, from
// then on, notes every session registered and sends on kick without
// blocking (give it a capacity of 1: a full channel already says "look").
// It fails with ErrShutdown once Shutdown has begun. The caller must Stop
// it.
func (a *Actor) WatchSessions(ctx context.Context, kick chan<- struct{}) (*SessionWatch, []*Session, error) {
	w := &SessionWatch{a: a, kick: kick}
	reply := make(chan []*Session, 1)
	if err := send(ctx, a, a.watchc, sessionWatchReq{w: w, reply: reply}); err != nil {
		return nil, nil, err
	}
	return w, <-reply, nil
}

// Take returns the sessions registered since the last Take (or the start).
func (w *SessionWatch) Take() []*Session {
	w.mu.Lock()
	defer w.mu.Unlock()
	list := w.added
	w.added = nil
	return list
}

// Stop ends the watch. It is idempotent.
func (w *SessionWatch) Stop() {
	w.once.Do(func() {
		select {
		case w.a.unwatchc <- w:
		case <-w.a.stopped:
		}
	})
}

// note hands a new session to the watch: mark and kick only (run's).
func (w *SessionWatch) note(s *Session) {
	w.mu.Lock()
	w.added = append(w.added, s)
	w.mu.Unlock()
	select {
	case w.kick <- struct{}{}:
	default:
	}
}
