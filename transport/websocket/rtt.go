package websocket

import (
	"sync"
	"time"
)

// rttStats estimates a WebSocket connection's round-trip time from its
// answered pings, the way QUIC does from acknowledgements (RFC 9002 §5:
// smoothed RTT, mean deviation, minimum). A pong comes back after every
// message written before its ping has reached the peer, so a sample
// includes what waited in our send queue and TCP's: it is the delay media
// sees, not the bare network's, and a busy connection reads slower.
type rttStats struct {
	mu                            sync.Mutex
	smoothed, min, latest, rttVar time.Duration
}

func (r *rttStats) add(d time.Duration) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.latest = d
	if r.smoothed == 0 {
		r.smoothed, r.min, r.rttVar = d, d, d/2
		return
	}
	r.min = min(r.min, d)
	dev := r.smoothed - d
	if dev < 0 {
		dev = -dev
	}
	r.rttVar = (3*r.rttVar + dev) / 4
	r.smoothed = (7*r.smoothed + d) / 8
}

func (r *rttStats) read() (smoothed, minRTT, latest, rttVar time.Duration) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.smoothed, r.min, r.latest, r.rttVar
}
