package websocket

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"testing"
	"time"

	"github.com/moqp2p/moqp2p/broadcast"
	"github.com/moqp2p/moqp2p/internal/testutil"
	"github.com/moqp2p/moqp2p/session"
	"github.com/moqp2p/moqp2p/transport"
)

// mediaFrame is frame f of group g: size bytes that name both.
func mediaFrame(g, f, size int) []byte {
	b := bytes.Repeat([]byte{byte(g*31 + f)}, size)
	binary.BigEndian.PutUint32(b, uint32(g))
	binary.BigEndian.PutUint32(b[4:], uint32(f))
	return b
}

// TestSessionEndToEnd runs real moq-lite sessions over both framings: the
// server publishes a broadcast, the client subscribes and receives 1000
// frames in 10 groups, every byte checked. "" negotiates no app protocol,
// so the sessions run the compat SETUP (lite-02).
func TestSessionEndToEnd(t *testing.T) {
	for _, fr := range []Framing{FramingQmux, FramingLegacy} {
		for _, app := range []string{"moq-lite-04", "moq-lite-03", ""} {
			t.Run(string(fr)+"/"+app, func(t *testing.T) {
				scfg, ccfg := configsFor(fr, app)
				client, server := dialPair(t, scfg, ccfg)
				runSession(t, server, client, 10, 100, 1200)
			})
		}
	}
}

func runSession(t *testing.T, pubConn, subConn transport.Conn, groups, frames, size int) {
	t.Helper()
	origin := broadcast.NewOrigin(0)
	pub, err := session.New(pubConn, session.Config{Publish: origin, Logger: testutil.Logger()})
	if err != nil {
		t.Fatal(err)
	}
	sub, err := session.New(subConn, session.Config{Logger: testutil.Logger(), Client: true,
		Limits: session.Limits{FinishGrace: 500 * time.Millisecond}})
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		_ = sub.Close(broadcast.CodeCancel, "test over")
		_ = pub.Close(broadcast.CodeCancel, "test over")
	}()
	b := broadcast.New(broadcast.Config{})
	tp, _ := b.CreateTrack(broadcast.Track{Name: "video"})
	if _, err := origin.Publish("cam", b.Consume()); err != nil {
		t.Fatal(err)
	}
	ctx := testCtx(t)
	tc, err := sub.Subscribe(ctx, "cam", "video", session.SubscribeOptions{})
	if err != nil {
		t.Fatalf("subscribe: %v", err)
	}
	defer tc.Close()
	go func() {
		for g := range groups {
			gp, _ := tp.AppendGroup()
			for f := range frames {
				_ = gp.WriteFrame(mediaFrame(g, f, size))
			}
			_ = gp.Finish()
		}
		_ = tp.Finish()
	}()
	seen := map[uint64]bool{}
	total := 0
	for {
		g, err := tc.RecvGroup(ctx)
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
			p, err := g.ReadFrame(ctx)
			if errors.Is(err, io.EOF) {
				if f != frames {
					t.Fatalf("group %d: %d frames, want %d", seq, f, frames)
				}
				break
			}
			if err != nil {
				t.Fatalf("group %d frame %d: %v", seq, f, err)
			}
			if !bytes.Equal(p, mediaFrame(seq, f, size)) {
				t.Fatalf("group %d frame %d: wrong bytes", seq, f)
			}
			total++
		}
	}
	if len(seen) != groups || total != groups*frames {
		t.Fatalf("received %d groups, %d frames; want %d, %d", len(seen), total, groups, groups*frames)
	}
	if pub.Err() != nil || sub.Err() != nil {
		t.Fatalf("sessions ended: %v / %v", pub.Err(), sub.Err())
	}
}
