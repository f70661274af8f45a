package websocket

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"testing"
	"time"
)

// peerLive returns how many of the peer's uni streams c holds unfinished.
func peerLiveUni(c *Conn) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.peerLive[1]
}

// TestMoreStreamsThanCredit: 300 uni streams against a limit of 100. On
// qmux-00 the 101st open waits for MAX_STREAMS; on legacy the server's read
// loop holds back. Either way the server never holds more than 100 and
// every stream arrives intact.
func TestMoreStreamsThanCredit(t *testing.T) {
	for _, fr := range []Framing{FramingQmux, FramingLegacy} {
		t.Run(string(fr), func(t *testing.T) {
			c, s := dialPair(t, &Config{Framings: []Framing{fr}, MaxIncomingUniStreams: 100}, &Config{Framings: []Framing{fr}})
			const n, limit = 300, 100
			ctx := testCtx(t)
			var streams []io.WriteCloser
			for range limit {
				st, err := c.OpenUniStream(ctx)
				if err != nil {
					t.Fatal(err)
				}
				streams = append(streams, st)
			}
			if fr == FramingQmux {
				short, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
				_, err := c.OpenUniStream(short)
				cancel()
				if !errors.Is(err, context.DeadlineExceeded) {
					t.Fatalf("open beyond credit: %v, want a wait", err)
				}
			}
			var wg sync.WaitGroup
			wg.Go(func() {
				for i := range n {
					var st io.WriteCloser
					if i < limit {
						st = streams[i]
					} else {
						o, err := c.OpenUniStream(ctx)
						if err != nil {
							t.Errorf("open %d: %v", i, err)
							return
						}
						st = o
					}
					if _, err := fmt.Fprintf(st, "stream %d", i); err != nil {
						t.Errorf("write %d: %v", i, err)
					}
					_ = st.Close()
				}
			})
			peak := 0
			for i := range n {
				peak = max(peak, peerLiveUni(s))
				rs, err := s.AcceptUniStream(ctx)
				if err != nil {
					t.Fatal(err)
				}
				b, err := io.ReadAll(rs)
				if err != nil || string(b) != fmt.Sprintf("stream %d", i) {
					t.Fatalf("stream %d: %q, %v", i, b, err)
				}
				// Some slack for the read loop: give it a moment to hit the
				// limit. Not a negative check: the pause only makes a peak
				// more likely, and any length is safe for the assertions.
				if i%50 == 0 {
					time.Sleep(10 * time.Millisecond)
				}
			}
			wg.Wait()
			if peak > limit {
				t.Fatalf("server held %d peer streams, limit %d", peak, limit)
			}
			if peak < limit/2 {
				t.Logf("peak %d: the limit was hardly tested", peak)
			}
		})
	}
}

// TestSmallWindows: credit of a few KiB still moves megabytes, on several
// streams at once; the receiver's buffers never exceed the windows.
func TestSmallWindows(t *testing.T) {
	for _, fr := range []Framing{FramingQmux, FramingLegacy} {
		t.Run(string(fr), func(t *testing.T) {
			const sw, cw = 20 << 10, 48 << 10
			c, s := dialPair(t, &Config{Framings: []Framing{fr}, StreamWindow: sw, ConnWindow: cw}, &Config{Framings: []Framing{fr}})
			const streams, size = 3, 1 << 20
			var wg sync.WaitGroup
			for i := range streams {
				wg.Go(func() {
					st, err := c.OpenUniStream(testCtx(t))
					if err != nil {
						t.Error(err)
						return
					}
					p := make([]byte, size)
					for j := range p {
						p[j] = byte(i + j)
					}
					if _, err := st.Write(p); err != nil {
						t.Error(err)
					}
					_ = st.Close()
				})
			}
			stop := make(chan struct{})
			var peakStream, peakConn int
			wg.Go(func() { // sample the receiver's buffers
				for {
					s.mu.Lock()
					total := 0
					for _, st := range s.streams {
						peakStream = max(peakStream, st.buffered())
						total += st.buffered()
					}
					peakConn = max(peakConn, total)
					s.mu.Unlock()
					select {
					case <-stop:
						return
					case <-time.After(100 * time.Microsecond):
					}
				}
			})
			var rwg sync.WaitGroup
			for range streams {
				rs, err := s.AcceptUniStream(testCtx(t))
				if err != nil {
					t.Fatal(err)
				}
				rwg.Go(func() {
					// A slow reader, so the buffers fill first: this shapes the
					// load, and the checks hold for any pause.
					time.Sleep(20 * time.Millisecond)
					b, err := io.ReadAll(rs)
					if err != nil || len(b) != size {
						t.Errorf("read %d bytes, %v", len(b), err)
						return
					}
					base := b[0]
					for j := range b {
						if b[j] != base+byte(j) {
							t.Errorf("byte %d corrupt", j)
							return
						}
					}
				})
			}
			rwg.Wait()
			close(stop)
			wg.Wait()
			// Legacy admits a frame when the buffer is empty, so one
			// frame may exceed the window; qmux credit is exact.
			slack := 0
			if fr == FramingLegacy {
				slack = maxStreamPayload
			}
			if peakStream > sw+slack || peakConn > cw+slack {
				t.Fatalf("buffers peaked at %d per stream, %d total; windows %d, %d", peakStream, peakConn, sw, cw)
			}
			t.Logf("buffers peaked at %d per stream, %d total", peakStream, peakConn)
		})
	}
}

// TestLegacyBoundsOwnStreams: with no stream credit on the legacy framing,
// our own unfinished streams are capped by the configured limit, so a
// writer cannot queue without bound while the peer reads slowly.
func TestLegacyBoundsOwnStreams(t *testing.T) {
	c, s := dialPair(t, &Config{Framings: []Framing{FramingLegacy}},
		&Config{Framings: []Framing{FramingLegacy}, MaxIncomingUniStreams: 5})
	ctx := testCtx(t)
	var open []io.WriteCloser
	for range 5 {
		st, err := c.OpenUniStream(ctx)
		if err != nil {
			t.Fatal(err)
		}
		open = append(open, st)
	}
	short, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
	_, err := c.OpenUniStream(short)
	cancel()
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("sixth open: %v, want a wait", err)
	}
	_ = open[0].Close() // FIN sent: one slot frees up
	st, err := c.OpenUniStream(ctx)
	if err != nil {
		t.Fatalf("open after a stream finished: %v", err)
	}
	mustWrite(t, st, []byte("sixth"))
	_ = st.Close()
	// The sixth stream's frame opens the four idle ones below it too.
	for i := range 6 {
		rs, err := s.AcceptUniStream(ctx)
		if err != nil {
			t.Fatal(err)
		}
		want := map[int]string{0: "", 5: "sixth"}
		if w, ok := want[i]; ok {
			if got := mustReadAll(t, rs); string(got) != w {
				t.Fatalf("stream %d: %q", i, got)
			}
		}
	}
}
