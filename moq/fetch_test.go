package moq

import (
	"context"
	"errors"
	"fmt"
	"io"
	"testing"
	"time"

	"github.com/moqp2p/moqp2p/broadcast"
	"github.com/moqp2p/moqp2p/session"
)

// TestSessionFetch: Session.Fetch gets one past group of a track the peer
// publishes, whole and byte-exact, over both of libp2p's paths (raw QUIC,
// and libp2p streams over TCP), on the moq-lite-05 they negotiate; a past
// group the peer does not have, an unknown broadcast or track is NotFound;
// a future group is waited for until ctx ends; an empty name is refused
// before anything is sent.
func TestSessionFetch(t *testing.T) {
	for _, c := range []struct {
		name string
		node func(testing.TB, ...Option) *node
	}{{"quic", newNode}, {"tcp", newTCPNode}} {
		t.Run(c.name, func(t *testing.T) {
			a, b := c.node(t), c.node(t)
			cam := publish(t, a, "cam")
			for _, g := range []uint64{0, 1, 2, 4} { // no 3
				if err := cam.track.WriteGroup(g, []byte(fmt.Sprint(g, "a")), []byte(fmt.Sprint(g, "b"))); err != nil {
					t.Fatal(err)
				}
			}
			s := b.connect(t, a)
			ctx := testCtx(t)
			g, err := s.Fetch(ctx, "cam", "video", 2)
			if err != nil {
				t.Fatalf("Fetch over %s: %v", s.Version(), err)
			}
			if s.Version() != "moq-lite-05" {
				t.Fatalf("version %s", s.Version())
			}
			var got []string
			for {
				f, err := g.ReadFrame(ctx)
				if errors.Is(err, io.EOF) {
					break
				}
				if err != nil {
					t.Fatal(err)
				}
				got = append(got, string(f))
			}
			if g.Sequence() != 2 || fmt.Sprint(got) != "[2a 2b]" {
				t.Fatalf("fetched group %d %v, want 2 [2a 2b]", g.Sequence(), got)
			}
			for _, f := range []struct {
				name, track string
				group       uint64
			}{{"cam", "video", 3}, {"cam", "audio", 0}, {"nope", "video", 0}} {
				if _, err := s.Fetch(ctx, f.name, f.track, f.group); !errors.Is(err, broadcast.ErrNotFound) {
					t.Errorf("Fetch %s/%s/%d: %v, want NotFound", f.name, f.track, f.group, err)
				}
			}
			if _, err := s.Fetch(ctx, "/", "video", 0); !errors.Is(err, broadcast.ErrInvalidPath) {
				t.Errorf("Fetch of an empty name: %v, want ErrInvalidPath", err)
			}
			// A group still to come is waited for (as moq-dev's publishers
			// do) until the fetcher's ctx ends.
			fctx, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
			_, err = s.Fetch(fctx, "cam", "video", 9)
			cancel()
			if !errors.Is(err, context.DeadlineExceeded) {
				t.Errorf("Fetch of a future group within 300 ms: %v, want the ctx's deadline", err)
			}
			// The session is still up after the refusals.
			if _, err := s.Fetch(ctx, "cam", "video", 4); err != nil {
				t.Errorf("Fetch after refusals: %v", err)
			}
			// On a session that ended: at once, with why.
			_ = s.Close(broadcast.CodeCancel, "done")
			for range 10 {
				if _, err := s.Fetch(ctx, "cam", "video", 4); !errors.Is(err, session.ErrClosed) || s.Err() == nil || !errors.Is(err, s.Err()) {
					t.Fatalf("Fetch on a closed session: %v, want ErrClosed wrapping %v", err, s.Err())
				}
			}
		})
	}
}
