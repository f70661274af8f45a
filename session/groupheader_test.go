package session

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"testing"
	"time"

	"github.com/moqp2p/moqp2p/broadcast"
	"github.com/moqp2p/moqp2p/internal/testutil"
	"github.com/moqp2p/moqp2p/internal/wire"
	"github.com/moqp2p/moqp2p/transport"
)

// watchHeaderDeadlines reports each group-header deadline of sess that
// passes, with whether it started again.
func watchHeaderDeadlines(t *testing.T, sess *Session) <-chan bool {
	passed := make(chan bool, 64)
	f := func(s *Session, extended bool) {
		if s != sess {
			return // an earlier test's session, still closing
		}
		select {
		case passed <- extended:
		default:
		}
	}
	headerDeadlinePassed.Store(&f)
	t.Cleanup(func() { headerDeadlinePassed.Store(nil) })
	return passed
}

// awaitExtended waits for n group-header deadlines to pass and start again;
// one that expired fails the test.
func awaitExtended(t *testing.T, ctx context.Context, passed <-chan bool, n int, what string) {
	t.Helper()
	for range n {
		select {
		case ok := <-passed:
			if !ok {
				t.Fatalf("%s: a group stream was stopped for its late header", what)
			}
		case <-ctx.Done():
			t.Fatalf("%s: no group-header deadline passed", what)
		}
	}
}

// sendLate writes group seq's header and one frame on st, opened long
// before, and finishes it.
func (p *rawPeer) sendLate(t *testing.T, st transport.SendStream, id, seq uint64) {
	t.Helper()
	rawWrite(t, st, rawCat(rawVarint(uint64(wire.UniGroup)), p.msg(t, &wire.Group{SubscribeID: id, Sequence: seq}), rawFrame(fmt.Sprint(seq))))
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
}

// recvAll reads tc's groups to the track's end and checks each one's frame:
// their sequences, in arrival order.
func recvAll(t *testing.T, ctx context.Context, tc *broadcast.TrackConsumer) []uint64 {
	t.Helper()
	var got []uint64
	for {
		g, err := tc.RecvGroup(ctx)
		if errors.Is(err, io.EOF) {
			return got
		}
		if err != nil {
			t.Fatalf("after groups %v: %v", got, err)
		}
		if f, err := groupFrames(ctx, g); err != nil && !errors.Is(err, io.EOF) || len(f) != 1 || f[0] != fmt.Sprint(g.Sequence()) {
			t.Fatalf("group %d: %q, %v", g.Sequence(), f, err)
		}
		got = append(got, g.Sequence())
	}
}

// A group stream can be accepted before any of its bytes arrived: QUIC
// makes it acceptable once a later stream's data is in (quic-go opens every
// lower stream then), and a publisher that sends the newest group first
// (ours does) sends it only when newer groups let it. While other groups
// keep arriving its header is not overdue: the group arrives, however long
// after HeaderTimeout.
func TestLateGroupHeaderBehindNewerGroups(t *testing.T) {
	// 2 s: groups must keep arriving within every HeaderTimeout, which a
	// loaded machine must not stall.
	p := newRawPeer(t, "moq-lite-04", Config{Interest: []string{}, Limits: Limits{HeaderTimeout: 2 * time.Second}}, true)
	passed := watchHeaderDeadlines(t, p.sess)
	ctx := testutil.Context(t, 60*time.Second)
	tc, st, sub := p.sessionSubscribe(t, ctx)
	late, err := p.raw.OpenUniStream(ctx) // group 0: nothing sent yet
	if err != nil {
		t.Fatal(err)
	}
	// Newer groups, one at a time, until group 0's deadline passed once.
	for seq := uint64(1); ; seq++ {
		gs := p.openGroup(t, ctx, sub.ID, seq)
		rawWrite(t, gs, rawFrame(fmt.Sprint(seq)))
		if err := gs.Close(); err != nil {
			t.Fatal(err)
		}
		g, err := tc.RecvGroup(ctx)
		if err != nil || g.Sequence() != seq {
			t.Fatalf("group %d: got %v, %v", seq, g, err)
		}
		select {
		case ok := <-passed:
			if !ok {
				t.Fatalf("group 0's stream was stopped for its late header while %d newer groups arrived", seq)
			}
		default:
			continue
		}
		break
	}
	p.sendLate(t, late, sub.ID, 0)
	_ = st.Close() // the publisher's FIN: the track ends after group 0
	g, err := tc.RecvGroup(ctx)
	if err != nil || g.Sequence() != 0 {
		t.Fatalf("got %v, %v; want group 0", g, err)
	}
	if got := recvAll(t, ctx, tc); len(got) != 0 {
		t.Fatalf("groups %v after group 0, want the end", got)
	}
}

// A back-pressured subscription whose reader is slow holds the group-stream
// accept loop, and with it the connection's window: a group stream it
// accepted before its header arrived is held up by us, not by the peer,
// and waits past HeaderTimeout; once the reader reads on, its group
// arrives.
func TestLateGroupHeaderWhileBackpressureHolds(t *testing.T) {
	// 1 s: until the loop is held, the groups' progress excuses the late
	// header, which a loaded machine must not stall that long.
	lim := Limits{HeaderTimeout: time.Second, MaxGroupsInFlight: 1, Model: broadcast.Limits{CacheMaxGroups: 1}}
	p := newRawPeer(t, "moq-lite-04", Config{Interest: []string{}, Limits: lim}, true)
	passed := watchHeaderDeadlines(t, p.sess)
	ctx := testutil.Context(t, 60*time.Second)
	tc, st, sub := p.sessionSubscribeWith(t, ctx, SubscribeOptions{Backpressure: true})
	late, err := p.raw.OpenUniStream(ctx) // group 0: nothing sent yet
	if err != nil {
		t.Fatal(err)
	}
	for seq := range uint64(3) {
		gs := p.openGroup(t, ctx, sub.ID, seq+1)
		rawWrite(t, gs, rawFrame(fmt.Sprint(seq+1)))
		if err := gs.Close(); err != nil {
			t.Fatal(err)
		}
	}
	// Group 1 in the track, unread; group 2 read ahead, waiting for room;
	// group 3 waiting in the accept loop.
	p.sess.mu.Lock()
	s := p.sess.subs[sub.ID]
	p.sess.mu.Unlock()
	eventually(t, func() bool {
		s.mu.Lock()
		defer s.mu.Unlock()
		return s.ahead == 1 && p.sess.uniBusy.Load()
	})
	awaitExtended(t, ctx, passed, 2, "while back-pressure held the accept loop")
	p.sendLate(t, late, sub.ID, 0)
	_ = st.Close() // the publisher's FIN
	got := recvAll(t, ctx, tc)
	slices.Sort(got)
	if !slices.Equal(got, []uint64{0, 1, 2, 3}) {
		t.Fatalf("groups %v, want 0 to 3", got)
	}
}

// A large newer group can take longer than HeaderTimeout to arrive, and an
// older group's stream waits behind it with no byte arrived: while a group
// is being read, that header is not overdue either.
func TestLateGroupHeaderBehindALargeGroup(t *testing.T) {
	// 1 s: group 1's header must be read within it, which a loaded
	// machine must not stall that long.
	p := newRawPeer(t, "moq-lite-04", Config{Interest: []string{}, Limits: Limits{HeaderTimeout: time.Second}}, true)
	passed := watchHeaderDeadlines(t, p.sess)
	ctx := testutil.Context(t, 60*time.Second)
	tc, st, sub := p.sessionSubscribe(t, ctx)
	late, err := p.raw.OpenUniStream(ctx) // group 0: nothing sent yet
	if err != nil {
		t.Fatal(err)
	}
	// Group 1, one frame, of which only the start has come.
	big := p.openGroup(t, ctx, sub.ID, 1)
	rawWrite(t, big, rawVarint(1))
	awaitExtended(t, ctx, passed, 2, "while group 1 was arriving")
	rawWrite(t, big, []byte("1"))
	if err := big.Close(); err != nil {
		t.Fatal(err)
	}
	p.sendLate(t, late, sub.ID, 0)
	_ = st.Close() // the publisher's FIN
	got := recvAll(t, ctx, tc)
	slices.Sort(got)
	if !slices.Equal(got, []uint64{0, 1}) {
		t.Fatalf("groups %v, want 0 and 1", got)
	}
}
