package jspeer

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"image"
	"image/png"
	"net/url"
	"strings"
	"time"
)

// WatchResult is what the node's watch page (moq/server/watch) reports
// when loaded with ?result=URL: decoded frame counts a second apart and
// two looks at the player's canvas.
type WatchResult struct {
	Error    string `json:"error"`
	Decoded1 int    `json:"decoded1"`
	Decoded2 int    `json:"decoded2"`
	Width    int    `json:"width"`
	Height   int    `json:"height"`
	Pixels   int    `json:"pixels"`
	Nonblank int    `json:"nonblank"`
	Changed  int    `json:"changed"`
	PNG      string `json:"png"` // data: URL of the canvas, if asked for
}

// Watch loads a watch page (http://host:port/watch?name=NAME) in headless
// Chromium, waits until it decoded minFrames, and returns its report.
func Watch(ctx context.Context, pageURL string, minFrames int, o ChromiumOptions) (WatchResult, error) {
	u, err := url.Parse(pageURL)
	if err != nil {
		return WatchResult{}, fmt.Errorf("jspeer: watch URL: %w", err)
	}
	q := u.Query()
	q.Set("frames", fmt.Sprint(minFrames))
	q.Set("png", "1")
	u.RawQuery = q.Encode()
	body, err := RunPage(ctx, u.String(), o)
	if err != nil {
		return WatchResult{}, err
	}
	var r WatchResult
	if err := json.Unmarshal(body, &r); err != nil {
		return WatchResult{}, fmt.Errorf("jspeer: watch page result %q: %w", body, err)
	}
	return r, nil
}

// Check says what is wrong with the playback r reports, nil if nothing:
// at least minFrames decoded and more a second later, a picture at least
// half lit, and at least 1% of it changing in that second.
func (r WatchResult) Check(minFrames int) error {
	switch {
	case r.Error != "":
		return fmt.Errorf("watch page: %s", r.Error)
	case r.Decoded1 < minFrames || r.Decoded2 <= r.Decoded1:
		return fmt.Errorf("decoded %d, then %d frames a second later: want ≥ %d, advancing", r.Decoded1, r.Decoded2, minFrames)
	case r.Pixels == 0 || r.Nonblank < r.Pixels/2:
		return fmt.Errorf("%d of %d pixels lit: the picture is blank", r.Nonblank, r.Pixels)
	case r.Changed < r.Pixels/100:
		return fmt.Errorf("%d of %d pixels changed in a second: the picture does not move", r.Changed, r.Pixels)
	}
	return nil
}

// String summarizes r for logs.
func (r WatchResult) String() string {
	return fmt.Sprintf("decoded %d then %d frames; %dx%d, %d of %d pixels lit, %d changed in 1 s",
		r.Decoded1, r.Decoded2, r.Width, r.Height, r.Nonblank, r.Pixels, r.Changed)
}

// Screenshot returns the canvas as PNG bytes.
func (r WatchResult) Screenshot() ([]byte, error) {
	data, ok := strings.CutPrefix(r.PNG, "data:image/png;base64,")
	if !ok {
		return nil, errors.New("jspeer: the watch page sent no PNG")
	}
	return base64.StdEncoding.DecodeString(data)
}

// FakeCamera are the Chromium flags that give a page a synthetic camera
// (a moving test pattern) without asking the user.
var FakeCamera = []string{"--use-fake-device-for-media-stream", "--use-fake-ui-for-media-stream"}

// Screens is what two screenshots of a watch page a few frames apart
// show: the real pixels the browser put on the screen, not what the page
// reads back from its canvas.
type Screens struct {
	Decoded1, Decoded2 int             // the page's decoded-frame count at each screenshot
	Player             image.Rectangle // the player's canvas on the screenshots
	Pixels             int             // in Player
	Lit                int             // pixels of Player not near black in the second screenshot
	Changed            int             // pixels of Player that differ between the two
	PNG                []byte          // the second screenshot
}

// WatchScreenshots waits until the watch page in b (launched with
// DevTools among its Args) decoded minFrames, takes a screenshot, waits
// for 10 frames more and takes another, and compares the player's area
// on the two.
func (b *Browser) WatchScreenshots(ctx context.Context, minFrames int) (Screens, error) {
	decoded := func(n int) (int, error) {
		for {
			var got int
			if err := b.Eval(ctx, "globalThis.moqDecoded ?? 0", &got); err != nil {
				return 0, err
			}
			if got >= n {
				return got, nil
			}
			select {
			case <-ctx.Done():
				return got, fmt.Errorf("jspeer: the page decoded %d frames, want %d: %w", got, n, ctx.Err())
			case <-time.After(50 * time.Millisecond):
			}
		}
	}
	shot := func() (image.Image, []byte, error) {
		raw, err := b.Screenshot(ctx)
		if err != nil {
			return nil, nil, err
		}
		img, err := png.Decode(bytes.NewReader(raw))
		return img, raw, err
	}
	var s Screens
	var err error
	if s.Decoded1, err = decoded(minFrames); err != nil {
		return s, err
	}
	var rect struct{ X, Y, W, H int }
	if err := b.Eval(ctx, `(() => { const r = document.querySelector("moq-watch canvas").getBoundingClientRect();
		return {X: Math.round(r.x), Y: Math.round(r.y), W: Math.round(r.width), H: Math.round(r.height)}; })()`, &rect); err != nil {
		return s, err
	}
	img1, _, err := shot()
	if err != nil {
		return s, err
	}
	if s.Decoded2, err = decoded(s.Decoded1 + 10); err != nil {
		return s, err
	}
	img2, raw, err := shot()
	if err != nil {
		return s, err
	}
	s.PNG = raw
	s.Player = image.Rect(rect.X, rect.Y, rect.X+rect.W, rect.Y+rect.H).Intersect(img2.Bounds()).Intersect(img1.Bounds())
	s.Pixels = s.Player.Dx() * s.Player.Dy()
	for y := s.Player.Min.Y; y < s.Player.Max.Y; y++ {
		for x := s.Player.Min.X; x < s.Player.Max.X; x++ {
			r1, g1, b1, _ := img1.At(x, y).RGBA()
			r2, g2, b2, _ := img2.At(x, y).RGBA()
			if (r2+g2+b2)>>8 > 30 {
				s.Lit++
			}
			if absDiff(r1, r2)+absDiff(g1, g2)+absDiff(b1, b2) > 30<<8 {
				s.Changed++
			}
		}
	}
	return s, nil
}

// Check says what is wrong with the picture s shows, nil if nothing: a
// player of at least 100×100 pixels, at least half of it lit, at least 1%
// of it changing over the 10 frames between the screenshots.
func (s Screens) Check() error {
	switch {
	case s.Pixels < 100*100:
		return fmt.Errorf("the player is %v on the page", s.Player)
	case s.Lit < s.Pixels/2:
		return fmt.Errorf("%d of %d pixels lit: the picture is blank", s.Lit, s.Pixels)
	case s.Changed < s.Pixels/100:
		return fmt.Errorf("%d of %d pixels changed over 10 frames: the picture does not move", s.Changed, s.Pixels)
	}
	return nil
}

// String summarizes s for logs.
func (s Screens) String() string {
	return fmt.Sprintf("decoded %d, then %d frames; screenshots of the player %v: %d of %d pixels lit, %d changed",
		s.Decoded1, s.Decoded2, s.Player, s.Lit, s.Pixels, s.Changed)
}

func absDiff(a, b uint32) uint32 {
	if a > b {
		return a - b
	}
	return b - a
}
