// Package faults runs live media through an impaired link and checks what
// a subscriber sees, for the fault tests of every transport: a paced
// publisher (one frame per group), a recorder of arrivals, and the
// latency, loss and recovery profile with its pass conditions.
package faults

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/moqp2p/moqp2p/broadcast"
	"github.com/moqp2p/moqp2p/internal/impair"
)

// Link is an impairment that can change during a test (impair.UDPProxy,
// impair.TCPProxy, impair.Conn).
type Link interface{ Set(impair.Config) }

// KernelLink is a Link whose loss the kernel makes: SetLoss installs it
// (netns.Link's SetKernelLoss or SetLoopbackLoss) and Dropped counts what it
// dropped (netns.Link.KernelDropped). When a loss ends it logs the count,
// and fails the test if nothing was dropped: a loss phase that dropped
// nothing tested nothing. Only the loss of a phase applies; delay and
// jitter need a proxy.
type KernelLink struct {
	T       testing.TB
	SetLoss func(p float64) error
	Dropped func() (uint64, error)
	loss    float64 // the loss set last
}

// Set applies c's loss.
func (k *KernelLink) Set(c impair.Config) {
	if k.loss > 0 {
		n, err := k.Dropped()
		switch {
		case err != nil:
			k.T.Error(err)
		case n == 0:
			k.T.Errorf("the kernel dropped no packet at %g loss", k.loss)
		default:
			k.T.Logf("the kernel dropped %d packets", n)
		}
	}
	if err := k.SetLoss(c.Loss); err != nil {
		k.T.Errorf("setting the kernel's loss to %g: %v", c.Loss, err)
	}
	k.loss = c.Loss
}

// Pace writes one frame per group to tp, the frame naming its index, at
// fps until the test ends.
func Pace(t testing.TB, tp *broadcast.TrackProducer, fps int) { PaceFrom(t, tp, fps, 0) }

// PaceFrom is Pace with indices counted from first: publishers of the
// same name whose frames must be told apart count from far apart.
func PaceFrom(t testing.TB, tp *broadcast.TrackProducer, fps, first int) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		tick := time.NewTicker(time.Second / time.Duration(fps))
		defer tick.Stop()
		for i := first; ; i++ {
			_ = tp.WriteFrame([]byte(strconv.Itoa(i)))
			select {
			case <-tick.C:
			case <-ctx.Done():
				return
			}
		}
	}()
	t.Cleanup(func() { cancel(); <-done })
}

// Arrival is a frame received: the publisher's index, when.
type Arrival struct {
	Index int
	At    time.Time
}

// Recorder reads groups with next until it fails and keeps the arrival of
// each group's first frame.
type Recorder struct {
	mu   sync.Mutex
	got  []Arrival
	err  error
	done chan struct{}
}

// Record starts reading; stop (called at cleanup too) must make next fail.
func Record(t testing.TB, next func(context.Context) (*broadcast.GroupConsumer, error)) *Recorder {
	r := &Recorder{done: make(chan struct{})}
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		defer close(r.done)
		for {
			g, err := next(ctx)
			if err != nil {
				r.mu.Lock()
				r.err = err
				r.mu.Unlock()
				return
			}
			f, err := g.ReadFrame(ctx)
			if err != nil {
				continue
			}
			i, _ := strconv.Atoi(string(f))
			r.mu.Lock()
			r.got = append(r.got, Arrival{i, time.Now()})
			r.mu.Unlock()
		}
	}()
	t.Cleanup(func() { cancel(); <-r.done })
	return r
}

// Between returns the arrivals in [from, to).
func (r *Recorder) Between(from, to time.Time) []Arrival {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []Arrival
	for _, a := range r.got {
		if !a.At.Before(from) && a.At.Before(to) {
			out = append(out, a)
		}
	}
	return out
}

// Err is why reading stopped, if it did.
func (r *Recorder) Err() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.err
}

// Smooth is iroh-live's smoothness threshold at 15 frames/s: a gap of at
// most three frame intervals.
const Smooth = 200 * time.Millisecond

// LongGaps counts the gaps between consecutive arrivals longer than Smooth,
// and the gaps in all.
func LongGaps(as []Arrival) (long, all int) {
	for i := 1; i < len(as); i++ {
		all++
		if as[i].At.Sub(as[i-1].At) > Smooth {
			long++
		}
	}
	return long, all
}

// Phase is one step of a profile: an impairment held for a while, and the
// least frames that must arrive meanwhile.
type Phase struct {
	Name      string
	Impair    impair.Config
	For       time.Duration
	MinFrames int
	// Recovery phases (no impairment) also bound the share of long gaps.
	MaxLongGaps float64
}

// Profile is iroh-live's impairment profile at 15 frames/s: +300 ms ±
// 60 ms for 5 s (at least 15 frames), 20 % loss for 3 s (at least 10), and
// after each, 3 s with at least 20 frames and at most 10 % of the gaps
// over Smooth. lossy false leaves the loss phases out (a TCP link cannot
// lose packets, only delay them).
func Profile(lossy bool) []Phase {
	ps := []Phase{
		{Name: "latency 300±60 ms", Impair: impair.Config{Delay: 300 * time.Millisecond, Jitter: 60 * time.Millisecond, Seed: 1}, For: 5 * time.Second, MinFrames: 15},
		recovery("latency"),
	}
	if lossy {
		ps = append(ps, Loss()...)
	}
	return ps
}

// Loss is the profile's loss phases: 20 % loss for 3 s (at least 10
// frames), then 3 s of recovery (at least 20 frames, at most 10 % of the
// gaps over Smooth).
func Loss() []Phase {
	return []Phase{
		{Name: "loss 20%", Impair: impair.Config{Loss: 0.2, Seed: 2}, For: 3 * time.Second, MinFrames: 10},
		recovery("loss"),
	}
}

func recovery(after string) Phase {
	return Phase{Name: "after " + after, For: 3 * time.Second, MinFrames: 20, MaxLongGaps: 0.10}
}

// Result is what a phase measured.
type Result struct {
	Phase          Phase
	Frames         int
	LongGaps, Gaps int
}

func (r Result) String() string {
	return fmt.Sprintf("%s: %d frames, %d of %d gaps over %v", r.Phase.Name, r.Frames, r.LongGaps, r.Gaps, Smooth)
}

// Run applies each phase to link in turn and checks what rec received
// during it; it returns the measurements.
func Run(t testing.TB, link Link, rec *Recorder, phases []Phase) []Result {
	t.Helper()
	var out []Result
	for _, p := range phases {
		link.Set(p.Impair)
		start := time.Now()
		time.Sleep(p.For)
		as := rec.Between(start, time.Now())
		long, all := LongGaps(as)
		r := Result{Phase: p, Frames: len(as), LongGaps: long, Gaps: all}
		out = append(out, r)
		t.Log(r)
		if r.Frames < p.MinFrames {
			t.Errorf("%s: %d frames, want at least %d (reader: %v)", p.Name, r.Frames, p.MinFrames, rec.Err())
		}
		if p.MaxLongGaps > 0 && all > 0 && float64(long)/float64(all) > p.MaxLongGaps {
			t.Errorf("%s: %d of %d gaps over %v, want at most %.0f%%", p.Name, long, all, Smooth, 100*p.MaxLongGaps)
		}
	}
	link.Set(impair.Config{})
	return out
}

// ResumeBound is how soon after a partition heals a resilient track must
// have its first group from the new upstream. What the library
// guarantees: a redial is under way at most its kept link's MaxBackoff
// (500 ms by default) after the heal (its attempts overlap, so none waits
// out a handshake's retransmission timer that grew during the outage),
// the track subscribes over the redialed session as soon as it is up, and
// the subscription's first group is at most one group interval away (67 ms
// at 15 frames/s). The rest of the second is a handshake and two round
// trips on a loaded machine.
const ResumeBound = time.Second

// CheckResumed checks a track that lost its upstream to a fault that
// ended at healed (a partition healed, a publisher killed while another
// one exists) and resumed at resumed (its first group from the new
// upstream, as the track's TrackResumed event or the recorder timed it):
// within bound of healed, and every group rec got from then on follows the
// previous one (in whatever order the group streams landed).
func CheckResumed(t testing.TB, rec *Recorder, healed, resumed time.Time, bound time.Duration) {
	t.Helper()
	if d := resumed.Sub(healed); d > bound {
		t.Errorf("track resumed %v after the fault ended, want within %v", d, bound)
	}
	after := rec.Between(resumed, resumed.Add(time.Hour))
	if len(after) == 0 {
		t.Fatalf("nothing read after the track resumed (reader: %v)", rec.Err())
	}
	idx := make([]int, len(after))
	for i, a := range after {
		idx[i] = a.Index
	}
	slices.Sort(idx)
	for i := 1; i < len(idx); i++ {
		if idx[i] != idx[i-1]+1 {
			t.Errorf("after resuming, groups %d to %d missing (received %v)", idx[i-1]+1, idx[i]-1, idx)
		}
	}
	t.Logf("resumed %v after the fault ended (first read %v after); %d groups after", resumed.Sub(healed), after[0].At.Sub(healed), len(after))
}

// Heal lifts any impairment on link and returns when it did: the clock is
// read right as the link heals, so a resume bound measured from it counts
// nothing before.
func Heal(link Link) time.Time {
	link.Set(impair.Config{})
	return time.Now()
}
