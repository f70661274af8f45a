package moq

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/moqp2p/moqp2p/broadcast"
	"github.com/moqp2p/moqp2p/internal/faults"
	"github.com/moqp2p/moqp2p/internal/impair"
	"github.com/moqp2p/moqp2p/internal/testutil"
)

// arrival is a group received by a reader: its sequence, its frame (the
// publisher's index), when.
type arrival struct {
	seq   uint64
	index int
	at    time.Time
}

// recorder reads a resilient track and keeps what arrived.
type recorder struct {
	mu   sync.Mutex
	got  []arrival
	done chan struct{}
	err  error
}

// record reads tr in arrival order (RecvGroup), so that no group is
// skipped for arriving after a newer one.
func record(t *testing.T, tr *ResilientTrack) *recorder {
	r := &recorder{done: make(chan struct{})}
	go func() {
		defer close(r.done)
		for {
			g, err := tr.RecvGroup(context.Background())
			if err != nil {
				r.err = err
				return
			}
			f, err := g.ReadFrame(context.Background())
			if err != nil {
				t.Logf("group %d at %v: %v", g.Sequence(), time.Now().Format("15:04:05.000"), err)
				continue
			}
			i, _ := strconv.Atoi(string(f))
			r.mu.Lock()
			r.got = append(r.got, arrival{g.Sequence(), i, time.Now()})
			r.mu.Unlock()
		}
	}()
	t.Cleanup(func() { tr.Close(); <-r.done })
	return r
}

func (r *recorder) snapshot() []arrival {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]arrival(nil), r.got...)
}

// paced publishes one frame per group, naming its index, at fps until the
// test ends; it returns when each index was published.
func paced(t *testing.T, m *media, fps int) func() map[int]time.Time {
	ctx, cancel := context.WithCancel(context.Background())
	var mu sync.Mutex
	sent := map[int]time.Time{}
	done := make(chan struct{})
	go func() {
		defer close(done)
		tick := time.NewTicker(time.Second / time.Duration(fps))
		defer tick.Stop()
		for i := 0; ; i++ {
			mu.Lock()
			sent[i] = time.Now()
			mu.Unlock()
			_ = m.track.WriteFrame([]byte(fmt.Sprint(i)))
			select {
			case <-tick.C:
			case <-ctx.Done():
				return
			}
		}
	}()
	t.Cleanup(func() { cancel(); <-done })
	return func() map[int]time.Time {
		mu.Lock()
		defer mu.Unlock()
		out := make(map[int]time.Time, len(sent))
		for k, v := range sent {
			out[k] = v
		}
		return out
	}
}

// A 5 s partition in the middle of a 15 frames/s stream: the session dies
// (dead-peer detection), the resilient track resubscribes once the link
// heals, resuming within 1 s of the heal (faults.ResumeBound), and every
// group published after it resumed arrives. The reader sees a gap and Lost/Live events, never an error.
func TestResilientTrackSurvivesPartition(t *testing.T) {
	t.Run("p2pquic", func(t *testing.T) { testSurvivesPartition(t, true) })
	t.Run("p2pstream-tcp", func(t *testing.T) { testSurvivesPartition(t, false) })
}

func testSurvivesPartition(t *testing.T, udp bool) {
	pub, sub := newNode(t), newNode(t)
	if !udp {
		pub, sub = newTCPNode(t), newTCPNode(t)
	}
	info, link := linkTo(t, pub, udp)
	if _, err := sub.Connect(testCtx(t), info); err != nil {
		t.Fatal(err)
	}
	m := publish(t, pub, "live")
	paced(t, m, 15)
	tr, err := sub.SubscribeResilient(testCtx(t), "live", "video", ResilientOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(tr.Close)
	rec := faults.Record(t, tr.RecvGroup)
	time.Sleep(time.Second)
	link.Set(impair.Config{Loss: 1})
	time.Sleep(5 * time.Second)
	healed := faults.Heal(link)
	resumed, kinds := resumedAfter(t, tr, healed)
	time.Sleep(3 * time.Second)
	faults.CheckResumed(t, rec, healed, resumed, faults.ResumeBound)
	if !slices.Contains(kinds, "lost") || kinds[0] != "live" {
		t.Errorf("events %v, want live, lost, ..., resumed", kinds)
	}
	t.Logf("skipped %d; events %v", tr.Skipped(), kinds)
}

// resumedAfter waits for tr's first TrackResumed event after healed and
// returns when it came (its first group from the new upstream), and the
// events up to it; it fails the test if it never comes.
func resumedAfter(t *testing.T, tr *ResilientTrack, healed time.Time) (time.Time, []string) {
	t.Helper()
	var kinds []string
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for ev := range tr.Events(ctx) {
		kinds = append(kinds, ev.Kind.String())
		if ev.Kind == TrackResumed && ev.At.After(healed) {
			return ev.At, kinds
		}
	}
	t.Fatalf("no group from a new upstream after the partition healed (events %v)", kinds)
	return time.Time{}, nil
}

// An unpinned resilient track names the peer its upstream subscription was
// made at. Here that is the DHT's provider, reached on a session of its
// own, while an older session, to a peer that does not provide the name,
// holds a subscription of the node's to the same track: a guess from the
// sessions' subscriptions would name that older session's peer.
func TestResilientTrackNamesItsUpstream(t *testing.T) {
	nodes := newDHTNet(t, 2)
	provider := nodes[0]
	// The subscriber asks for no announcements under "live": every
	// subscription it makes is asked for directly.
	sub := addDHTNode(t, provider, nil, nil, WithInterest("elsewhere"))
	other := addDHTNode(t, provider, nil, nil, WithProvide(false))
	for _, p := range []*dhtNode{provider, other} {
		paced(t, publish(t, p.node, "live"), 30)
	}
	waitProvided(t, sub, "live", provider)
	older := sub.connect(t, other.node)
	tc, err := older.s.Subscribe(testCtx(t), "live", "video", SubscribeOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer tc.Close()
	ctx := testutil.Context(t, dhtWait)
	tr, err := sub.SubscribeResilient(ctx, "live", "video", ResilientOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Close()
	for ev := range tr.Events(ctx) {
		if ev.Kind == TrackLive {
			if ev.Peer != provider.h.ID() {
				t.Fatalf("live at %s, want the provider %s (the older session's peer is %s)", ev.Peer, provider.h.ID(), other.h.ID())
			}
			return
		}
	}
	t.Fatal("no live event")
}

// A resilient track's ends never read as the reader's own ctx ending: after
// Close its reads fail with broadcast.ErrCancelled (as a plain track's do),
// and an outage's error does not match context.DeadlineExceeded although its
// last attempt ended with the outage bound's deadline.
func TestResilientEndsAreNotContextErrors(t *testing.T) {
	pub, sub := newNode(t), newNode(t)
	m := publish(t, pub, "live")
	paced(t, m, 30)
	sub.connect(t, pub)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	closed, err := sub.SubscribeResilient(ctx, "live", "video", ResilientOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := closed.RecvGroup(ctx); err != nil {
		t.Fatal(err)
	}
	closed.Close()
	for {
		_, err := closed.RecvGroup(ctx)
		if err == nil {
			continue // groups cached before the close
		}
		if !errors.Is(err, broadcast.ErrCancelled) || errors.Is(err, context.Canceled) {
			t.Fatalf("read after Close: %v, want broadcast.ErrCancelled and not context.Canceled", err)
		}
		break
	}

	tr, err := sub.SubscribeResilient(ctx, "live", "video", ResilientOptions{MaxOutage: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Close()
	if _, err := tr.RecvGroup(ctx); err != nil {
		t.Fatal(err)
	}
	m.pub.Unpublish() // no provider is left anywhere
	for {
		_, err := tr.RecvGroup(ctx)
		if err == nil {
			continue
		}
		if ctx.Err() != nil {
			t.Fatalf("the outage did not end the track: %v", err)
		}
		if !errors.Is(err, ErrOutage) || errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
			t.Fatalf("outage end: %v, want ErrOutage and no context error", err)
		}
		break
	}
}
