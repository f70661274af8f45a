package main

import (
	"context"
	"crypto/tls"
	"testing"
	"time"

	"github.com/moqp2p/moqp2p/broadcast"
	"github.com/moqp2p/moqp2p/hang"
	"github.com/moqp2p/moqp2p/session"
	"github.com/moqp2p/moqp2p/transport/cert"
	"github.com/moqp2p/moqp2p/transport/rawquic"
)

// servePeer serves origin to every moql:// client of a raw QUIC listener
// on loopback (a publisher that is no moq node) and returns its URL.
func servePeer(t *testing.T, origin *broadcast.Origin) string {
	t.Helper()
	crt, err := cert.SelfSigned()
	if err != nil {
		t.Fatal(err)
	}
	ln, err := rawquic.Listen("127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{crt}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := ln.Accept(ctx)
			if err != nil {
				return
			}
			s, err := session.New(c, session.Config{Publish: origin})
			if err != nil {
				continue
			}
			context.AfterFunc(ctx, func() { _ = s.Close(broadcast.CodeCancel, "test over") })
		}
	}()
	t.Cleanup(func() {
		cancel()
		_ = ln.Close()
		<-done
	})
	return "moql://" + ln.Addr().String()
}

// A publisher's bad hang broadcast ends sub --media with one clear line
// and a non-zero exit, never a crash: a catalog that is not JSON, a codec
// MP4 output cannot carry, a frame without its timestamp.
func TestMediaBadPublisher(t *testing.T) {
	origin := broadcast.NewOrigin(0)
	url := servePeer(t, origin)
	publish := func(name string, catalog []byte, frame []byte) {
		b := broadcast.New(broadcast.Config{})
		t.Cleanup(b.Finish)
		ct, err := b.CreateTrack(broadcast.Track{Name: hang.CatalogTrack})
		if err != nil {
			t.Fatal(err)
		}
		if err := ct.WriteFrame(catalog); err != nil {
			t.Fatal(err)
		}
		vt, err := b.CreateTrack(broadcast.Track{Name: "video"})
		if err != nil {
			t.Fatal(err)
		}
		if frame != nil {
			if err := vt.WriteFrame(frame); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := origin.Publish(name, b.Consume()); err != nil {
			t.Fatal(err)
		}
	}
	h264 := []byte(`{"video":{"renditions":{"video":{"codec":"avc1.42e01f","container":{"kind":"legacy"}}}}}`)
	publish("notjson.hang", []byte(`{"video":`), nil)
	publish("vp8.hang", []byte(`{"video":{"renditions":{"video":{"codec":"vp8"}}}}`), nil)
	publish("badframe.hang", h264, []byte{0xc0, 1}) // an 8-byte varint cut short

	out := t.TempDir() + "/out.mp4"
	for name, want := range map[string]string{
		"notjson.hang":  "catalog: hang: bad catalog",
		"vp8.hang":      "unsupported codec: \"vp8\"",
		"badframe.hang": "hang: bad frame",
	} {
		t.Run(name, func(t *testing.T) {
			expectOneLineError(t, want, 30*time.Second, "sub", "--broadcast", name, "--media", out, "--connect", url, "--insecure")
		})
	}
}
