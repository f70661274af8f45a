package jspeer

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"strings"
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
