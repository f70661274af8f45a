package moq

import (
	"context"

	"github.com/moqp2p/moqp2p/actor"
	"github.com/moqp2p/moqp2p/broadcast"
)

// nameWatch wakes a goroutine waiting for some session to announce a name
// (a resilient track between upstreams): its kick channel receives when
// a session's peer announces or withdraws something at or under the name,
// when a session's announcements end, and when a session is registered
// (a new peer, or a kept link's redial landing). It is driven by its
// owner's goroutine: refresh, then look, then wait on kick. Its watches
// of the sessions' announcements make each session ask its peer for them
// (Session.Remote), so it is for outages only: idle sessions otherwise
// keep that interest lazy.
type nameWatch struct {
	name    string
	kick    chan struct{} // capacity 1: a pending kick already says "look"
	sw      *actor.SessionWatch
	remotes map[*actor.Session]*broadcast.Watch
}

// watchName starts a nameWatch over the live sessions and those to come.
func (m *Moq) watchName(ctx context.Context, name string) (*nameWatch, error) {
	w := &nameWatch{name: name, kick: make(chan struct{}, 1), remotes: map[*actor.Session]*broadcast.Watch{}}
	sw, live, err := m.a.WatchSessions(ctx, w.kick)
	if err != nil {
		return nil, err
	}
	w.sw = sw
	w.add(live)
	return w, nil
}

// poke is every watch's callback: it runs under an origin's lock, so it
// only marks.
func (w *nameWatch) poke() {
	select {
	case w.kick <- struct{}{}:
	default:
	}
}

// add watches the announcements of sessions not watched yet.
func (w *nameWatch) add(list []*actor.Session) {
	for _, s := range list {
		if _, ok := w.remotes[s]; ok || s.Context().Err() != nil {
			continue
		}
		w.remotes[s] = s.Remote().WatchSince(w.name, nil, w.poke)
	}
}

// refresh takes the sessions registered since the last call, forgets the
// ended ones and drops the changes the watches hold (the look that
// follows reads the sessions' announcements themselves).
func (w *nameWatch) refresh() {
	w.add(w.sw.Take())
	for s, rw := range w.remotes {
		if s.Context().Err() != nil || rw.Closed() {
			rw.Stop()
			delete(w.remotes, s)
			continue
		}
		for {
			if _, _, ok := rw.Next(); !ok {
				break
			}
		}
	}
}

// stop ends the watch.
func (w *nameWatch) stop() {
	w.sw.Stop()
	for _, rw := range w.remotes {
		rw.Stop()
	}
	w.remotes = nil
}
