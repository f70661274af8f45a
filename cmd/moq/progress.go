package main

import (
	"fmt"
	"io"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

// status is what the live line shows besides the command's own frame and
// byte counts (progress.add).
type status struct {
	groups, skipped uint64
	rtt             time.Duration // 0: unknown
	peers           int
	subscribers     int    // subscriptions served; -1: not shown
	sent, received  uint64 // payload bytes, for moq node's line
}

// liveEvery is how often the live line is redrawn.
const liveEvery = 250 * time.Millisecond

// progress draws one self-overwriting status line on a terminal, a few
// times a second: frames and bytes so far and their rate over the last
// interval, groups, groups skipped (never started, or reset), the
// sessions' RTT (the largest), peers and subscribers; a node's or
// relay's line shows its peers, subscribers and payload rates both ways.
// There is no end-to-end media latency: frame timestamps (lite-05) are
// media times with no wall clock shared with the publisher, and the
// network RTT is what can be measured honestly. Off a terminal, or with
// --quiet, it draws nothing: it counts, and reads status at each tick.
type progress struct {
	w io.Writer
	// verb is "sent", "received", "node" or "relay"; the last two draw a
	// node's line (nodeLine).
	verb   string
	status func(frames uint64) status
	frames atomic.Uint64
	bytes  atomic.Uint64

	mu    sync.Mutex // the line against printf
	draw  bool       // on a terminal, not --quiet
	drawn bool

	stop chan struct{}
	done sync.WaitGroup
}

// startProgress starts drawing on w if it is a terminal and quiet is
// false; status, if not nil, is read on the drawing goroutine and given
// the frames counted so far.
func startProgress(w io.Writer, quiet bool, verb string, st func(frames uint64) status) *progress {
	p := &progress{w: w, verb: verb, status: st, stop: make(chan struct{})}
	if f, ok := w.(*os.File); ok && !quiet && isTerminal(f) {
		p.draw = true
	}
	if p.draw {
		p.done.Go(p.run)
	}
	return p
}

// add counts one frame of n bytes.
func (p *progress) add(n int) {
	p.frames.Add(1)
	p.bytes.Add(uint64(n))
}

// printf prints a line of its own, above the status line.
func (p *progress) printf(format string, args ...any) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.drawn {
		fmt.Fprint(p.w, "\r\033[K")
		p.drawn = false // redrawn at the next tick
	}
	fmt.Fprintf(p.w, format, args...)
}

func (p *progress) run() {
	tick := time.NewTicker(liveEvery)
	defer tick.Stop()
	start, last := time.Now(), time.Now()
	var lastFrames, lastBytes, lastSent, lastRecv uint64
	for {
		select {
		case <-p.stop:
			p.mu.Lock()
			if p.drawn {
				fmt.Fprint(p.w, "\r\033[K") // leave the line clean for what follows
			}
			p.mu.Unlock()
			return
		case now := <-tick.C:
			var st status
			f, b := p.frames.Load(), p.bytes.Load()
			if p.status != nil {
				st = p.status(f)
			}
			secs := now.Sub(last).Seconds()
			rate := func(cur, prev uint64) float64 {
				if cur < prev {
					return 0
				}
				return float64(cur-prev) / secs / (1 << 20)
			}
			line := p.line(st, f, b, now.Sub(start), float64(f-lastFrames)/secs, rate(b, lastBytes), rate(st.sent, lastSent), rate(st.received, lastRecv))
			last, lastFrames, lastBytes, lastSent, lastRecv = now, f, b, st.sent, st.received
			p.mu.Lock()
			fmt.Fprintf(p.w, "\r\033[K%s", line)
			p.drawn = true
			p.mu.Unlock()
		}
	}
}

// nodeLine reports whether p draws a node's or relay's line: peers,
// subscribers and payload both ways, from status (the command counts no
// frames of its own).
func (p *progress) nodeLine() bool { return p.verb == "node" || p.verb == "relay" }

// line renders the status line.
func (p *progress) line(st status, frames, bytes uint64, elapsed time.Duration, fps, mibps, sentMiBps, recvMiBps float64) string {
	var line string
	if p.nodeLine() {
		line = fmt.Sprintf("%s: %d peers, %d subscribers, sent %.1f MiB (%.2f MiB/s), received %.1f MiB (%.2f MiB/s), up %s",
			p.verb, st.peers, max(st.subscribers, 0), float64(st.sent)/(1<<20), sentMiBps, float64(st.received)/(1<<20), recvMiBps,
			elapsed.Truncate(time.Second))
	} else {
		line = fmt.Sprintf("%s %d frames, %d groups, %.1f MiB in %s: %.0f frames/s, %.2f MiB/s, %d skipped, %d peers",
			p.verb, frames, st.groups, float64(bytes)/(1<<20), elapsed.Truncate(time.Second), fps, mibps, st.skipped, st.peers)
		if st.subscribers >= 0 {
			line += fmt.Sprintf(", %d subscribers", st.subscribers)
		}
	}
	if st.rtt > 0 {
		line += fmt.Sprintf(", rtt %s", st.rtt.Round(10*time.Microsecond))
	}
	return line
}

// close erases the status line (if drawn) and stops drawing.
func (p *progress) close() {
	select {
	case <-p.stop:
	default:
		close(p.stop)
	}
	p.done.Wait()
}
