package main

import (
	"bytes"
	"context"
	"image"
	"image/png"
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

	decoded := func() int {
		var n int
		if err := b.Eval(ctx, "globalThis.moqDecoded ?? 0", &n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	// waitDecoded polls the page's count until it reaches n.
	waitDecoded := func(n int) int {
		for {
			if got := decoded(); got >= n {
				return got
			}
			select {
			case <-ctx.Done():
				t.Fatalf("the page decoded %d frames, want %d", decoded(), n)
			case <-time.After(50 * time.Millisecond):
			}
		}
	}
	shot := func() (image.Image, []byte) {
		b, err := b.Screenshot(ctx)
		if err != nil {
			t.Fatal(err)
		}
		img, err := png.Decode(bytes.NewReader(b))
		if err != nil {
			t.Fatal(err)
		}
		return img, b
	}
	n1 := waitDecoded(20)
	var rect struct{ X, Y, W, H int }
	if err := b.Eval(ctx, `(() => { const r = document.querySelector("moq-watch canvas").getBoundingClientRect();
		return {X: Math.round(r.x), Y: Math.round(r.y), W: Math.round(r.width), H: Math.round(r.height)}; })()`, &rect); err != nil {
		t.Fatal(err)
	}
	img1, _ := shot()
	n2 := waitDecoded(n1 + 10) // 0.4 s of video later
	img2, _ := shot()

	area := image.Rect(rect.X, rect.Y, rect.X+rect.W, rect.Y+rect.H).Intersect(img2.Bounds())
	var lit, changed int
	for y := area.Min.Y; y < area.Max.Y; y++ {
		for x := area.Min.X; x < area.Max.X; x++ {
			r1, g1, b1, _ := img1.At(x, y).RGBA()
			r2, g2, b2, _ := img2.At(x, y).RGBA()
			if (r2+g2+b2)>>8 > 30 {
				lit++
			}
			if absDiff(r1, r2)+absDiff(g1, g2)+absDiff(b1, b2) > 30<<8 {
				changed++
			}
		}
	}
	var audio int
	if err := b.Eval(ctx, "globalThis.moqAudioDecoded ?? 0", &audio); err != nil {
		t.Fatal(err)
	}
	if audio == 0 {
		t.Fatal("the page decoded no audio")
	}
	pixels := area.Dx() * area.Dy()
	t.Logf("decoded %d, then %d frames (and %d audio frames); player %v: %d of %d pixels lit, %d changed", n1, n2, audio, area, lit, pixels, changed)
	switch {
	case pixels < 100*100:
		t.Fatalf("the player is %v on the page", area)
	case lit < pixels/2:
		t.Fatalf("%d of %d pixels lit: the picture is blank", lit, pixels)
	case changed < pixels/100:
		t.Fatalf("%d of %d pixels changed over 10 frames: the picture does not move", changed, pixels)
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
		_, raw := shot() // the player, and the node line under it
		if err := os.WriteFile(path, raw, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	pub.interrupt(t)
}

func absDiff(a, b uint32) uint32 {
	if a > b {
		return a - b
	}
	return b - a
}
