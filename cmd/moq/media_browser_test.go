package main

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/moqp2p/moqp2p/internal/ffmpegtest"
	"github.com/moqp2p/moqp2p/internal/jspeer"
)

// moq pub --media --listen https://… prints a watch URL; @moq/watch in
// headless Chromium plays it: frames decode and keep decoding, and the
// canvas shows ffmpeg's moving test picture. With MOQP2P_WATCH_SCREENSHOT
// set, the canvas is saved there as PNG.
func TestWatchPagePlaysPub(t *testing.T) {
	ffmpegtest.Require(t)
	jspeer.RequireChromium(t)
	in := ffmpegtest.Make(t, t.TempDir(), "in.mp4", ffmpegtest.Video{Seconds: 4, FPS: 25, Width: 320, Height: 240, GOP: 25})
	pub := start(t, "pub --media", nil, "pub", "--broadcast", "demo.hang", "--media", in, "--loop",
		"--listen", "https://127.0.0.1:0/")
	page := field(pub.stderr.await(t, pub.name, "watch: ", 20*time.Second))
	if !strings.HasPrefix(page, "http://127.0.0.1:") || !strings.Contains(page, "/watch?name=demo.hang") {
		t.Fatalf("watch URL %q", page)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	r, err := jspeer.Watch(ctx, page, 20, jspeer.ChromiumOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Log(r)
	if err := r.Check(20); err != nil {
		t.Fatal(err)
	}
	if path := os.Getenv("MOQP2P_WATCH_SCREENSHOT"); path != "" {
		png, err := r.Screenshot()
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, png, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	pub.interrupt(t)
}
