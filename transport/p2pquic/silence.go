package p2pquic

import (
	"sync/atomic"
	"time"

	"github.com/quic-go/quic-go"
)

// codeTimeout closes an accepted connection whose peer went silent.
const codeTimeout = 3

// Why an accepting end needs its own watch: QUIC's idle timeout in force
// is the smaller of both ends', but quic-go raises a peer's advertised idle
// timeout to at least 5 s before taking the smaller, and the listening
// socket, shared with libp2p's own connections, keeps libp2p's (longer)
// settings. So a dialer with a 3 s dead-peer bound gives up a silent
// acceptor in 3 s, while the acceptor, left to QUIC, noticed the dialer
// gone only after 5 s of idle timeout plus the last keep-alive's age (7 s
// measured). The watch holds accepted connections to this node's own
// bound instead, with a timer, not a goroutine, per connection.

// silenceBound is what the watch of accepted connections holds them to:
// given up after idle without a packet, checked every period. Zero
// periods mean no watch (a QUIC config without keep-alives, whose peers
// need not send anything while idle).
type silenceBound struct {
	idle, period atomic.Int64 // time.Duration
}

func (b *silenceBound) set(qc *quic.Config) {
	idle, period := qc.MaxIdleTimeout, qc.KeepAlivePeriod
	if idle <= 0 || period <= 0 {
		idle, period = 0, 0
	}
	b.idle.Store(int64(idle))
	b.period.Store(int64(period))
}

// silenceWatch closes qc once nothing has arrived from the peer for idle.
// A moqp2p dialer sends a keep-alive every period (rawquic.ConfigDeadPeer:
// a quarter of its bound, a third of idle), so a live peer is heard at
// least three times in every idle window; a late timer only sees more
// packets, never fewer, so it cannot give up a peer that is talking.
type silenceWatch struct {
	qc           *quic.Conn
	idle, period time.Duration
	heard        uint64    // packets received at the last check
	since        time.Time // when heard last moved
	t            *time.Timer
}

// watchSilence starts the watch of an accepted connection under b; it
// stops by itself once the connection has closed.
func watchSilence(qc *quic.Conn, b *silenceBound) {
	idle, period := time.Duration(b.idle.Load()), time.Duration(b.period.Load())
	if idle <= 0 || period <= 0 {
		return
	}
	w := &silenceWatch{qc: qc, idle: idle, period: period, heard: qc.ConnectionStats().PacketsReceived, since: time.Now()}
	w.t = time.AfterFunc(period, w.check)
}

func (w *silenceWatch) check() {
	if w.qc.Context().Err() != nil {
		return // closed: the watch ends with it
	}
	now := time.Now()
	if n := w.qc.ConnectionStats().PacketsReceived; n != w.heard {
		w.heard, w.since = n, now
	} else if now.Sub(w.since) >= w.idle {
		_ = w.qc.CloseWithError(codeTimeout, "peer silent for "+now.Sub(w.since).Round(time.Millisecond).String())
		return
	}
	w.t.Reset(w.period)
}
