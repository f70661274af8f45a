package webtransport

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"testing"

	"github.com/moqp2p/moqp2p/broadcast"
	"github.com/moqp2p/moqp2p/internal/testutil"
	"github.com/moqp2p/moqp2p/session"
)

// frame is the payload of frame i of group g: distinct and of varied size.
func frame(g, i int) []byte {
	return append(fmt.Appendf(nil, "%d.%d:", g, i), bytes.Repeat([]byte{byte(g*100 + i)}, i*37)...)
}

// A moq-lite session runs end to end over WebTransport: the server
// publishes, the browser-side client subscribes and gets every frame.
func TestMoqSessionOverWebTransport(t *testing.T) {
	for _, proto := range []string{"moq-lite-04", "moq-lite-03", "moql"} {
		t.Run(proto, func(t *testing.T) {
			f := newServer(t, Config{})
			cc, sc, _ := f.pair(t, []string{proto})
			if cc.Protocol() != proto {
				t.Fatalf("negotiated %q", cc.Protocol())
			}
			origin := broadcast.NewOrigin(0)
			pub, err := session.New(sc, session.Config{Publish: origin, Logger: testutil.Logger()})
			if err != nil {
				t.Fatal(err)
			}
			sub, err := session.New(cc, session.Config{Client: true, Logger: testutil.Logger()})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() {
				_ = sub.Close(broadcast.CodeCancel, "test over")
				_ = pub.Close(broadcast.CodeCancel, "test over")
			})

			b := broadcast.New(broadcast.Config{})
			tp, err := b.CreateTrack(broadcast.Track{Name: "video"})
			if err != nil {
				t.Fatal(err)
			}
			if _, err := origin.Publish("room/cam", b.Consume()); err != nil {
				t.Fatal(err)
			}
			tc, err := sub.Subscribe(testCtx(t), "room/cam", "video", session.SubscribeOptions{})
			if err != nil {
				t.Fatal(err)
			}
			defer tc.Close()

			const groups, perGroup = 10, 100
			go func() {
				for g := range groups {
					gp, err := tp.AppendGroup()
					if err != nil {
						t.Error(err)
						return
					}
					for i := range perGroup {
						_ = gp.WriteFrame(frame(g, i))
					}
					_ = gp.Finish()
				}
				_ = tp.Finish()
			}()

			seen := map[uint64]bool{}
			frames := 0
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
					t.Fatalf("group %d unexpected (seen %v)", seq, seen)
				}
				seen[g.Sequence()] = true
				for i := 0; ; i++ {
					p, err := g.ReadFrame(testCtx(t))
					if errors.Is(err, io.EOF) {
						if i != perGroup {
							t.Fatalf("group %d ended after %d frames", seq, i)
						}
						break
					}
					if err != nil {
						t.Fatalf("group %d frame %d: %v", seq, i, err)
					}
					if !bytes.Equal(p, frame(seq, i)) {
						t.Fatalf("group %d frame %d: got %q…", seq, i, p[:min(len(p), 16)])
					}
					frames++
				}
			}
			if len(seen) != groups || frames != groups*perGroup {
				t.Fatalf("received %d groups, %d frames; want %d, %d", len(seen), frames, groups, groups*perGroup)
			}
			if v := sub.Version(); (proto != "moql" && v != proto) || (proto == "moql" && v == "") {
				t.Errorf("session version %q over %q", v, proto)
			}
		})
	}
}
