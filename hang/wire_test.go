package hang

import (
	"crypto/tls"
	"errors"
	"io"
	"testing"

	"github.com/moqp2p/moqp2p/broadcast"
	"github.com/moqp2p/moqp2p/session"
	"github.com/moqp2p/moqp2p/transport"
	"github.com/moqp2p/moqp2p/transport/cert"
	"github.com/moqp2p/moqp2p/transport/rawquic"
)

// sessions connects a publishing session (serving origin) and a
// subscribing one over raw QUIC on loopback, speaking alpn.
func sessions(t *testing.T, alpn string, origin *broadcast.Origin) *session.Session {
	t.Helper()
	ctx := testCtx(t)
	crt, err := cert.SelfSigned()
	if err != nil {
		t.Fatal(err)
	}
	ln, err := rawquic.Listen("127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{crt}, NextProtos: []string{alpn}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	dialer, err := rawquic.NewEndpoint("127.0.0.1:0", nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = dialer.Close(); _ = ln.Close() })
	accepted := make(chan transport.Conn, 1)
	go func() {
		c, _ := ln.Accept(ctx)
		accepted <- c
	}()
	tc := cert.PinnedConfig(cert.Fingerprint(crt))
	tc.NextProtos = []string{alpn}
	cc, err := dialer.Dial(ctx, ln.Addr().String(), tc)
	if err != nil {
		t.Fatal(err)
	}
	sc := <-accepted
	if sc == nil {
		t.Fatal("no connection accepted")
	}
	pub, err := session.New(sc, session.Config{Publish: origin})
	if err != nil {
		t.Fatal(err)
	}
	sub, err := session.New(cc, session.Config{Client: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = sub.Close(broadcast.CodeCancel, "test over")
		_ = pub.Close(broadcast.CodeCancel, "test over")
	})
	return sub
}

// A hang broadcast over real moq-lite sessions: on every version the
// reader gets each frame's timestamp from the payload, a group per
// keyframe; on moq-lite-05 the frames also carry the same timestamp on the
// wire (microsecond timescale), while lite-03/04 frames arrive with none.
func TestOverTheWire(t *testing.T) {
	for _, alpn := range []string{"moq-lite-03", "moq-lite-04", "moq-lite-05"} {
		t.Run(alpn, func(t *testing.T) {
			origin := broadcast.NewOrigin(0)
			b := broadcast.New(broadcast.Config{})
			defer b.Finish()
			ct, err := b.CreateTrack(broadcast.Track{Name: CatalogTrack})
			if err != nil {
				t.Fatal(err)
			}
			vt, err := b.CreateTrack(MediaTrack("video", 1))
			if err != nil {
				t.Fatal(err)
			}
			if _, err := origin.Publish("demo.hang", b.Consume()); err != nil {
				t.Fatal(err)
			}
			want := &Catalog{Video: &Video{Renditions: map[string]VideoConfig{"video": {Codec: "vp8", Container: Legacy}}}}
			if err := NewCatalogWriter(ct).Write(want); err != nil {
				t.Fatal(err)
			}
			sub := sessions(t, alpn, origin)
			ctx := testCtx(t)

			tc, err := sub.Subscribe(ctx, "demo.hang", CatalogTrack, session.SubscribeOptions{})
			if err != nil {
				t.Fatal(err)
			}
			cr := NewCatalogReader(tc)
			defer cr.Close()
			got, err := cr.Next(ctx)
			if err != nil || got.Video.Renditions["video"].Codec != "vp8" {
				t.Fatalf("catalog %+v %v", got, err)
			}

			vc, err := sub.Subscribe(ctx, "demo.hang", "video", session.SubscribeOptions{})
			if err != nil {
				t.Fatal(err)
			}
			// A second consumer of the same received track (subscriptions
			// are shared), to read the wire's own timestamps.
			raw, err := sub.Subscribe(ctx, "demo.hang", "video", session.SubscribeOptions{})
			if err != nil {
				t.Fatal(err)
			}
			defer raw.Close()
			r := NewTrackReader(vc)
			defer r.Close()
			w := NewTrackWriter(vt)
			const frames = 9
			// A group at a time, read before the next is written, as live
			// pacing does: a live reader skips a group that arrives after a
			// newer one, and group streams may arrive in any order.
			for i := range frames {
				if err := w.WriteFrame(uint64(i)*33_333+1_000_000, i%3 == 0, []byte{byte(i)}); err != nil {
					t.Fatal(err)
				}
				if i%3 != 2 {
					continue
				}
				for j := i - 2; j <= i; j++ {
					f, err := r.ReadFrame(ctx)
					if err != nil {
						t.Fatalf("frame %d: %v", j, err)
					}
					if f.Timestamp != uint64(j)*33_333+1_000_000 || f.Keyframe != (j%3 == 0) || f.Group != uint64(j/3) || f.Payload[0] != byte(j) {
						t.Fatalf("frame %d: %+v", j, f)
					}
				}
			}
			if err := w.Close(); err != nil {
				t.Fatal(err)
			}
			if _, err := r.ReadFrame(ctx); !errors.Is(err, io.EOF) {
				t.Fatalf("after the last frame: %v", err)
			}
			for g := range frames / 3 {
				gc, err := raw.RecvGroup(ctx)
				if err != nil {
					t.Fatal(err)
				}
				for i := range 3 {
					b, ts, err := gc.ReadFrameAt(ctx)
					if err != nil {
						t.Fatal(err)
					}
					pts, _, _ := ParseFrame(b)
					// The received track states its own timescale; the
					// session converts the wire's to it.
					wantTS := uint64(0)
					if alpn == "moq-lite-05" {
						wantTS = pts * raw.Info().Scale() / Timescale
					}
					if ts != wantTS {
						t.Fatalf("group %d frame %d: wire timestamp %d (timescale %d), want %d (payload says %d µs)", g, i, ts, raw.Info().Scale(), wantTS, pts)
					}
				}
			}
		})
	}
}
