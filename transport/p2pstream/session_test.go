package p2pstream

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"io"
	"testing"
	"time"

	"github.com/moqp2p/moqp2p/broadcast"
	"github.com/moqp2p/moqp2p/session"
	"github.com/moqp2p/moqp2p/transport"
)

// frame is the payload of frame f of group g: size bytes that name both.
func frame(g, f, size int) []byte {
	b := bytes.Repeat([]byte{byte(g*31 + f)}, size)
	binary.BigEndian.PutUint32(b, uint32(g))
	binary.BigEndian.PutUint32(b[4:], uint32(f))
	return b
}

// runMedia publishes groups×frames frames of size bytes from pub's end to
// sub's end through real moq-lite sessions, and checks every byte arrives.
// With backlog, every group exists before the subscription, which asks for
// all of them from group 0: the publisher then sends up to its in-flight
// limit at once, the burst that needs the raised resource-manager limits.
func runMedia(t *testing.T, pubConn, subConn *Conn, groups, frames, size int, backlog bool) {
	t.Helper()
	origin := broadcast.NewOrigin(0)
	pub, err := session.New(pubConn, session.Config{
		Publish: origin,
		Logger:  testLogger(),
		// More group streams in flight than libp2p's default per-protocol
		// allowance (about 150), fewer than yamux's accept backlog (256).
		Limits: session.Limits{MaxGroupsInFlight: 200},
	})
	if err != nil {
		t.Fatal(err)
	}
	sub, err := session.New(subConn, session.Config{
		Logger: testLogger(),
		// Group streams pass through libp2p's accept loop, negotiation and
		// our handler before the session sees them; on a loaded 2-core
		// machine under -race that can lag the subscription's FIN by more
		// than the default 100 ms, and late groups would be dropped.
		Limits: session.Limits{FinishGrace: 500 * time.Millisecond},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		_ = sub.Close(broadcast.CodeCancel, "test over")
		_ = pub.Close(broadcast.CodeCancel, "test over")
	}()
	if sub.Version() != "moq-lite-05" { // SETUP and TRACK streams, timestamped frames
		t.Fatalf("session version %s, want moq-lite-05", sub.Version())
	}
	b := broadcast.New(broadcast.Config{})
	tp, _ := b.CreateTrack(broadcast.Track{Name: "video"})
	if _, err := origin.Publish("cam", b.Consume()); err != nil {
		t.Fatal(err)
	}
	produce := func() {
		for g := range groups {
			gp, _ := tp.AppendGroup()
			for f := range frames {
				_ = gp.WriteFrame(frame(g, f, size))
			}
			_ = gp.Finish()
		}
		_ = tp.Finish()
	}
	var opts session.SubscribeOptions
	if backlog {
		produce()
		opts.Start = new(uint64)
	}
	tc, err := sub.Subscribe(testCtx(t), "cam", "video", opts)
	if err != nil {
		t.Fatal(err)
	}
	defer tc.Close()

	// Sample how many streams each end holds open at once.
	var pubPeak, subPeak int
	sampled := make(chan struct{})
	stopSampling := make(chan struct{})
	go func() {
		defer close(sampled)
		for {
			pubConn.mu.Lock()
			pubPeak = max(pubPeak, len(pubConn.streams))
			pubConn.mu.Unlock()
			subConn.mu.Lock()
			subPeak = max(subPeak, len(subConn.streams))
			subConn.mu.Unlock()
			select {
			case <-stopSampling:
				return
			case <-time.After(200 * time.Microsecond):
			}
		}
	}()
	start := time.Now()
	if !backlog {
		go produce()
	}
	seen := map[uint64]bool{}
	var bytesIn int
	for {
		g, err := tc.RecvGroup(testCtx(t))
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("after %d groups: %v", len(seen), err)
		}
		seq := int(g.Sequence())
		if seen[g.Sequence()] || seq >= groups {
			t.Fatalf("group %d twice or unexpected", seq)
		}
		seen[g.Sequence()] = true
		for f := 0; ; f++ {
			p, err := g.ReadFrame(testCtx(t))
			if errors.Is(err, io.EOF) {
				if f != frames {
					t.Fatalf("group %d: %d frames, want %d", seq, f, frames)
				}
				break
			}
			if err != nil {
				t.Fatalf("group %d frame %d: %v", seq, f, err)
			}
			if !bytes.Equal(p, frame(seq, f, size)) {
				t.Fatalf("group %d frame %d: wrong bytes", seq, f)
			}
			bytesIn += len(p)
		}
	}
	if len(seen) != groups {
		t.Fatalf("received %d groups, want %d", len(seen), groups)
	}
	elapsed := time.Since(start)
	close(stopSampling)
	<-sampled
	t.Logf("%d groups, %d KiB in %v (including the 500 ms finish grace); at most %d streams open at the publisher, %d at the subscriber",
		groups, bytesIn>>10, elapsed.Round(time.Millisecond), pubPeak, subPeak)
	if pub.Err() != nil || sub.Err() != nil {
		t.Fatalf("sessions ended: %v / %v", pub.Err(), sub.Err())
	}
}

func TestSessionOverLibp2p(t *testing.T) {
	forKinds(t, func(t *testing.T, kind string) {
		for _, c := range []struct {
			name                 string
			groups, frames, size int
			backlog              bool
		}{
			{"100 groups of 10 KiB", 100, 10, 1 << 10, false},
			{"300 one-frame groups", 300, 1, 1 << 10, false},
			{"300 cached groups at once", 300, 1, 1 << 10, true},
		} {
			t.Run(c.name, func(t *testing.T) {
				d, a := setup(t, kind)
				runMedia(t, a, d, c.groups, c.frames, c.size, c.backlog)
			})
		}
	})
}

// TestSessionCloseReachesPeer: a session's close code reaches the peer's
// session through the control stream.
func TestSessionCloseReachesPeer(t *testing.T) {
	d, a := setup(t, "tcp")
	ds, err := session.New(d, session.Config{Logger: testLogger()})
	if err != nil {
		t.Fatal(err)
	}
	as, err := session.New(a, session.Config{Logger: testLogger()})
	if err != nil {
		t.Fatal(err)
	}
	_ = ds.Close(broadcast.CodeUnauthorized, "no")
	select {
	case <-as.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("peer session still running")
	}
	want := transport.ConnError{Code: uint32(broadcast.CodeUnauthorized), Reason: "no", Remote: true}
	if ce := connErr(context.Cause(a.Context())); ce == nil || *ce != want {
		t.Fatalf("peer connection ended with %v, want %v", context.Cause(a.Context()), &want)
	}
	// The session reports the same: a stream read that fails with the
	// connection's end before the session saw it ends the session with
	// that cause (Session.connEnded), never with a decode error of its own.
	if ce := connErr(as.Err()); ce == nil || *ce != want {
		t.Errorf("peer session ended with %v", as.Err())
	}
	_ = as.Close(broadcast.CodeCancel, "")
}
