package main

import (
	"fmt"
	"io"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

// isTerminal reports whether f is a character device (a terminal), which is
// when live progress is worth drawing.
func isTerminal(f *os.File) bool {
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

// progress draws one self-overwriting status line on a terminal: frames so
// far, the payload rate over the last interval, and the session's smoothed
// round-trip time when known. There is no end-to-end media latency: frames
// carry no send timestamp, and the network RTT is what can be measured
// honestly.
type progress struct {
	w      io.Writer
	verb   string // "sent" or "received"
	rtt    func() time.Duration
	frames atomic.Uint64
	bytes  atomic.Uint64

	stop chan struct{}
	done sync.WaitGroup
}

// startProgress starts drawing on w if it is a terminal; otherwise the
// returned progress only counts.
func startProgress(w io.Writer, verb string, rtt func() time.Duration) *progress {
	p := &progress{w: w, verb: verb, rtt: rtt, stop: make(chan struct{})}
	if f, ok := w.(*os.File); ok && isTerminal(f) {
		p.done.Go(p.run)
	}
	return p
}

// add counts one frame of n bytes.
func (p *progress) add(n int) {
	p.frames.Add(1)
	p.bytes.Add(uint64(n))
}

func (p *progress) run() {
	const every = 250 * time.Millisecond
	tick := time.NewTicker(every)
	defer tick.Stop()
	start, last, lastFrames, lastBytes := time.Now(), time.Now(), uint64(0), uint64(0)
	for {
		select {
		case <-p.stop:
			fmt.Fprint(p.w, "\r\033[K") // leave the line clean for what follows
			return
		case now := <-tick.C:
			f, b := p.frames.Load(), p.bytes.Load()
			secs := now.Sub(last).Seconds()
			line := fmt.Sprintf("%s %d frames, %.1f MiB in %s: %.0f frames/s, %.2f MiB/s",
				p.verb, f, float64(b)/(1<<20), now.Sub(start).Truncate(time.Second),
				float64(f-lastFrames)/secs, float64(b-lastBytes)/secs/(1<<20))
			last, lastFrames, lastBytes = now, f, b
			if p.rtt != nil {
				if rtt := p.rtt(); rtt > 0 {
					line += fmt.Sprintf(", rtt %s", rtt.Round(10*time.Microsecond))
				}
			}
			fmt.Fprintf(p.w, "\r\033[K%s", line)
		}
	}
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
