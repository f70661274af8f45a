// Package keepalive detects a dead peer on connections that have no
// keep-alive of their own (WebSocket, libp2p streams): it sends a ping
// every period and gives the connection up when a ping goes unanswered
// for the whole bound. QUIC needs none of this: its idle timeout and
// keep-alive PINGs do the same in the transport.
package keepalive

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// DefaultTimeout is how long a peer may stay silent before it is
// considered dead, on every transport, unless configured otherwise.
const DefaultTimeout = 3 * time.Second

// ErrTimeout is the cause given to a connection whose peer did not answer
// a ping within the bound.
var ErrTimeout = errors.New("peer did not answer within the dead-peer timeout")

// Period is the ping interval for a bound: three pings per bound, so one
// lost or late ping is not fatal.
func Period(timeout time.Duration) time.Duration { return timeout / 3 }

// Resolve turns a configured bound into the one in force: 0 means
// DefaultTimeout, a negative value turns detection off (returns 0).
func Resolve(d time.Duration) time.Duration {
	switch {
	case d == 0:
		return DefaultTimeout
	case d < 0:
		return 0
	}
	return d
}

// Run pings every Period(timeout) until ctx ends. A ping is given the rest
// of the bound counted from the last sign of life; when it fails or runs
// out, dead is called once with an error wrapping ErrTimeout and Run
// returns. A ping error matching errors.ErrUnsupported (the peer has no ping
// service) ends Run quietly: such a peer is left to the transport's own
// detection. ping must return when its context ends.
//
// heard, if not nil, counts what has arrived from the peer (bytes, frames):
// traffic is a sign of life too. On a single ordered stream (WebSocket over
// TCP) the pong queues behind everything the peer sent before it, so a peer
// busy sending more than the bound's worth of data would otherwise be
// declared dead while it talks. Traffic seen between two samples is credited
// to the earlier one, so a peer that goes silent is still declared dead no
// later than the bound after the last thing it sent.
func Run(ctx context.Context, timeout time.Duration, ping func(context.Context) error, heard func() uint64, dead func(error)) {
	if timeout <= 0 {
		return
	}
	t := time.NewTimer(Period(timeout))
	defer t.Stop()
	last := time.Now() // the last sign of life (or the start)
	sampled, seen := last, uint64(0)
	if heard != nil {
		seen = heard()
	}
	sample := func() { // credits traffic since the previous sample to that sample's time
		now := time.Now()
		if heard != nil {
			if n := heard(); n != seen {
				seen = n
				if sampled.After(last) {
					last = sampled
				}
			}
		}
		sampled = now
	}
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		sample()
		before := seen
		pctx, cancel := context.WithDeadline(ctx, last.Add(timeout))
		err := ping(pctx)
		// Whether the ping ran out of time, whatever error it reports for
		// that (a stream whose deadline passed says so its own way).
		late := pctx.Err() != nil
		cancel()
		if ctx.Err() != nil {
			return
		}
		if errors.Is(err, errors.ErrUnsupported) {
			return
		}
		if err == nil {
			last = time.Now()
			t.Reset(Period(timeout))
			continue
		}
		sample()
		// The pong is late, but the peer talked while we waited for it: it
		// is alive. Only whether it talked counts here, not how long ago
		// the ping started: on a loaded machine this goroutine wakes late
		// (a ping's deadline seen 0.9 s late gave up a peer that sent
		// every 50 ms), and the lateness is ours, not the peer's.
		if (late || errors.Is(err, context.DeadlineExceeded)) && seen != before {
			t.Reset(Period(timeout))
			continue
		}
		dead(fmt.Errorf("%w (%v, last sign of life %v ago): %w", ErrTimeout, timeout, time.Since(last).Round(time.Millisecond), err))
		return
	}
}
