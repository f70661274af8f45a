package main

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/moqp2p/moqp2p/internal/ffmpegtest"
	"github.com/moqp2p/moqp2p/internal/jspeer"
)

// watchResult is what the watch page's report.js posts.
type watchResult struct {
	Error    string `json:"error"`
	Decoded1 int    `json:"decoded1"`
	Decoded2 int    `json:"decoded2"`
	Width    int    `json:"width"`
	Height   int    `json:"height"`
	Pixels   int    `json:"pixels"`
	Nonblank int    `json:"nonblank"`
	Changed  int    `json:"changed"`
	PNG      string `json:"png"`
}

// watchPage loads pageURL in headless Chromium and returns what the
// player showed, failing t unless frames decoded and kept decoding, and
// the picture is mostly not blank and moved within a second.
func watchPage(t *testing.T, pageURL string) watchResult {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	body, err := jspeer.RunPage(ctx, pageURL+"&frames=20&png=1", jspeer.ChromiumOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var r watchResult
	if err := json.Unmarshal(body, &r); err != nil {
		t.Fatalf("page result %q: %v", body, err)
	}
	t.Logf("decoded %d then %d frames; %dx%d, %d of %d pixels lit, %d changed in 1 s", r.Decoded1, r.Decoded2, r.Width, r.Height, r.Nonblank, r.Pixels, r.Changed)
	switch {
	case r.Error != "":
		t.Fatalf("page: %s", r.Error)
	case r.Decoded1 < 20 || r.Decoded2 <= r.Decoded1:
		t.Fatalf("decoded %d, then %d frames a second later: want ≥ 20, advancing", r.Decoded1, r.Decoded2)
	case r.Pixels == 0 || r.Nonblank < r.Pixels/2:
		t.Fatalf("%d of %d pixels lit: the picture is blank", r.Nonblank, r.Pixels)
	case r.Changed < r.Pixels/100:
		t.Fatalf("%d of %d pixels changed in a second: the picture does not move", r.Changed, r.Pixels)
	}
	if path := os.Getenv("MOQP2P_WATCH_SCREENSHOT"); path != "" {
		png, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(r.PNG, "data:image/png;base64,"))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, png, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return r
}

// moq pub --media --listen https://… prints a watch URL; @moq/watch in
// headless Chromium plays it: frames decode and keep decoding, and the
// canvas shows ffmpeg's moving test picture.
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
	watchPage(t, page)
	pub.interrupt(t)
}
