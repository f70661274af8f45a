package webtransport

import (
	"net/http"

	"github.com/moqp2p/moqp2p/transport"
)

// accepted is a session waiting for Accept: a WebTransport one with its
// CONNECT request, or a raw-QUIC one with none.
type accepted struct {
	conn transport.Conn
	req  *http.Request
}

// acceptQueue holds at most its capacity of sessions. A place is reserved
// before the session is set up (so a WebTransport request can still be
// refused with a status) and freed when Accept takes the session, so push
// never blocks and a slow Accept caller costs bounded memory.
type acceptQueue struct {
	places chan struct{}  // one token per reserved place
	items  chan *accepted // never more than cap(places)
}

func newAcceptQueue(size int) *acceptQueue {
	return &acceptQueue{places: make(chan struct{}, size), items: make(chan *accepted, size)}
}

// reserve takes a place, reporting false when the queue is full.
func (q *acceptQueue) reserve() bool {
	select {
	case q.places <- struct{}{}:
		return true
	default:
		return false
	}
}

// release gives back a place: one reserved but not pushed, or that of a
// session taken from items.
func (q *acceptQueue) release() { <-q.places }

// push queues a session into a reserved place.
func (q *acceptQueue) push(a *accepted) { q.items <- a }

// drain empties the queue, handing each session to f.
func (q *acceptQueue) drain(f func(*accepted)) {
	for {
		select {
		case a := <-q.items:
			q.release()
			f(a)
		default:
			return
		}
	}
}
