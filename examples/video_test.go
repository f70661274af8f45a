package examples_test

import (
	"context"
	"net/url"
	"path/filepath"
	"regexp"
	"testing"
	"time"

	"github.com/moqp2p/moqp2p/internal/ffmpegtest"
	"github.com/moqp2p/moqp2p/internal/jspeer"
)

// videoNodes starts the video example and returns it, node A's multiaddr
// and the publish and watch page URLs it prints.
func videoNodes(t *testing.T) (p *proc, nodeA, publish, watch string) {
	t.Helper()
	p = start(t, nil, "video", "-a", "127.0.0.1:0", "-b", "127.0.0.1:0")
	nodeA = p.waitFor(t, `^node A: (/\S+)$`)[1]
	publish = p.waitFor(t, `^publish: (http://\S+)$`)[1]
	watch = p.waitFor(t, `^watch: (http://\S+)$`)[1]
	t.Cleanup(p.interrupt)
	return p, nodeA, publish, watch
}

// carried waits for the example's nodes to carry broadcast name: node A
// prints it with the transport of the session it came on, which it
// returns, and node B prints its hang catalog, which must offer H.264
// video.
func carried(t *testing.T, p *proc, name string) (transport string) {
	t.Helper()
	transport = p.waitFor(t, `^A: `+regexp.QuoteMeta(name)+` from (\S+) `)[1]
	cat := p.waitFor(t, `^B: `+regexp.QuoteMeta(name)+` catalog: (.*video .* avc1\..*)$`)[1]
	t.Logf("A: %s from %s; B: its catalog: %s", name, transport, cat)
	return transport
}

// withName returns page with its name parameter set to name.
func withName(t *testing.T, page, name string) string {
	t.Helper()
	u, err := url.Parse(page)
	if err != nil {
		t.Fatal(err)
	}
	q := u.Query()
	q.Set("name", name)
	u.RawQuery = q.Encode()
	return u.String()
}

// watch plays page in headless Chromium and fails t unless the page
// decodes frames and screenshots of the browser a few frames apart show
// the player's picture lit and moving.
func watch(t *testing.T, page string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), runTimeout)
	defer cancel()
	b, err := jspeer.LaunchChromium(ctx, page, jspeer.ChromiumOptions{Args: []string{jspeer.DevTools, "--window-size=620,660"}})
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if t.Failed() {
			t.Logf("watching page's browser log:\n%s", b.Log())
		}
		_ = b.Close()
	}()
	s, err := b.WatchScreenshots(ctx, 20)
	if err != nil {
		t.Fatal(err)
	}
	t.Log(s)
	if err := s.Check(); err != nil {
		t.Fatal(err)
	}
}

// ffmpeg test video → moq pub --media → libp2p → node A → libp2p → node B
// → @moq/watch in headless Chromium: frames decode, and screenshots show
// the picture lit and moving. Node B has no address of the publisher; it
// reaches the broadcast only through A.
func TestVideoFFmpegThroughPeers(t *testing.T) {
	t.Parallel()
	ffmpegtest.Require(t)
	jspeer.RequireChromium(t)
	in := ffmpegtest.Make(t, t.TempDir(), "in.mp4", ffmpegtest.Video{Seconds: 4, FPS: 25, Width: 320, Height: 240, GOP: 25})
	p, nodeA, _, page := videoNodes(t)
	pub := start(t, nil, "moq", "pub", "--broadcast", "movie.hang", "--media", in, "--loop", "--connect", nodeA)
	t.Cleanup(pub.interrupt)
	watch(t, withName(t, page, "movie.hang"))
	if tr := carried(t, p, "movie.hang"); tr != "p2pquic" {
		t.Fatalf("node A got movie.hang over %s, want libp2p's p2pquic", tr)
	}
}

// camera opens the publish page in headless Chromium with its fake camera,
// until the test ends.
func camera(t *testing.T, publish string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), runTimeout)
	cam, err := jspeer.LaunchChromium(ctx, publish, jspeer.ChromiumOptions{Args: jspeer.FakeCamera})
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("publishing page's browser log:\n%s", cam.Log())
		}
		_ = cam.Close()
		cancel()
	})
}

// Chromium's fake camera → @moq/publish (page 1) → WebTransport → node A →
// libp2p → node B → @moq/watch (page 2): frames decode and the picture
// moves. Page 1's session with node A is WebTransport (@moq/net would
// fall back to WebSocket, on the same port, if WebTransport failed).
func TestVideoCameraThroughPeers(t *testing.T) {
	t.Parallel()
	jspeer.RequireChromium(t)
	p, _, publish, page := videoNodes(t)
	camera(t, publish)
	start := time.Now()
	watch(t, page)
	t.Logf("camera to player through two nodes: %s", time.Since(start).Round(time.Millisecond))
	if tr := carried(t, p, "camera.hang"); tr != "webtransport" {
		t.Fatalf("page 1 published to node A over %s, want webtransport", tr)
	}
}

// Chromium's fake camera → @moq/publish (H.264 in Annex B, no description)
// → node A → libp2p → moq sub --media out.mp4: ffprobe reads 60 H.264
// frames of the camera's size.
func TestVideoCameraToMP4(t *testing.T) {
	t.Parallel()
	ffmpegtest.Require(t)
	jspeer.RequireChromium(t)
	_, nodeA, publish, _ := videoNodes(t)
	camera(t, publish)
	out := filepath.Join(t.TempDir(), "camera.mp4")
	sub := start(t, nil, "moq", "sub", "--broadcast", "camera.hang", "--media", out, "--count", "60", "--connect", nodeA)
	t.Log(sub.wait(t))
	got := ffmpegtest.Probe(t, out)
	if got.Codec != "h264" || len(got.PTS) != 60 || got.Width == 0 || !got.Keys[0] {
		t.Fatalf("ffprobe: %s, %d frames, %dx%d, first a keyframe: %v", got.Codec, len(got.PTS), got.Width, got.Height, got.Keys[0])
	}
	for i := 1; i < len(got.PTS); i++ {
		if got.PTS[i] <= got.PTS[i-1] {
			t.Fatalf("frame %d at %.3f s, after %.3f s", i, got.PTS[i], got.PTS[i-1])
		}
	}
}
