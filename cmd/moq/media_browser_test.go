package main

import (
	"context"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/moqp2p/moqp2p/internal/ffmpegtest"
	"github.com/moqp2p/moqp2p/internal/jspeer"
)

// moq pub --media --listen https://… prints a watch URL; @moq/watch in
// headless Chromium plays it (video with AAC audio): the page's decoded-frame count advances,
// it decodes audio, and
// screenshots of the page a few frames apart show the player's area lit
// and moving. With MOQP2P_WATCH_SCREENSHOT set, a screenshot taken once
// the node's stats line shows is saved there (docs/watch.png comes from
// this test).
func TestWatchPagePlaysPub(t *testing.T) {
	ffmpegtest.Require(t)
	jspeer.RequireChromium(t)
	in := ffmpegtest.Make(t, t.TempDir(), "in.mp4", ffmpegtest.Video{Seconds: 4, FPS: 25, Width: 320, Height: 240, GOP: 25, Audio: true})
	pub := start(t, "pub --media", nil, "pub", "--broadcast", "demo.hang", "--media", in, "--loop",
		"--listen", "https://127.0.0.1:0/")
	page := field(pub.stderr.await(t, pub.name, "watch: ", 20*time.Second))
	if !strings.HasPrefix(page, "http://127.0.0.1:") || !strings.Contains(page, "/watch?name=demo.hang") {
		t.Fatalf("watch URL %q", page)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	b, err := jspeer.LaunchChromium(ctx, page, jspeer.ChromiumOptions{Args: []string{jspeer.DevTools, "--window-size=620,780"}})
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if t.Failed() {
			t.Logf("browser log:\n%s", b.Log())
		}
		_ = b.Close()
	}()

	// Real screenshots of the page a few frames apart: the player lit and
	// moving.
	scr, err := b.WatchScreenshots(ctx, 20)
	if err != nil {
		t.Fatal(err)
	}
	var audio int
	if err := b.Eval(ctx, "globalThis.moqAudioDecoded ?? 0", &audio); err != nil {
		t.Fatal(err)
	}
	if audio == 0 {
		t.Fatal("the page decoded no audio")
	}
	t.Logf("%s (and %d audio frames)", scr, audio)
	if err := scr.Check(); err != nil {
		t.Fatal(err)
	}
	// Beside the player, the page shows the node's live stats: its
	// sessions (the page's own among them), its broadcast, media going out.
	nodeLine := regexp.MustCompile(`^node: [1-9]\d* sessions · broadcasts: demo\.hang · sending ([0-9.]+) MiB/s`)
	for {
		var text string
		if err := b.Eval(ctx, `document.getElementById("node").textContent`, &text); err != nil {
			t.Fatal(err)
		}
		if m := nodeLine.FindStringSubmatch(text); m != nil && m[1] != "0.00" {
			t.Logf("page's node line: %s", text)
			break
		}
		select {
		case <-ctx.Done():
			t.Fatalf("the page's node line %q, want sessions, demo.hang and media going out", text)
		case <-time.After(100 * time.Millisecond):
		}
	}
	if path := os.Getenv("MOQP2P_WATCH_SCREENSHOT"); path != "" {
		raw, err := b.Screenshot(ctx) // the player, and the node line under it
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, raw, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	pub.interrupt(t)
}
