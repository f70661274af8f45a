// Package ffmpegtest makes test video with ffmpeg and inspects results with
// ffprobe, for the tests of the media ingest and egress paths.
package ffmpegtest

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"
)

// RequireEnv turns missing ffmpeg/ffprobe from a skip into a failure; CI
// sets it, so the media tests cannot pass there by skipping.
const RequireEnv = "MOQP2P_REQUIRE_FFMPEG"

// Require makes sure ffmpeg and ffprobe are on PATH: the test is skipped
// with the reason when they are not, or fails when RequireEnv is set.
func Require(t testing.TB) {
	t.Helper()
	for _, tool := range []string{"ffmpeg", "ffprobe"} {
		if _, err := exec.LookPath(tool); err != nil {
			if os.Getenv(RequireEnv) != "" {
				t.Fatalf("%s not found (%s=%s)", tool, RequireEnv, os.Getenv(RequireEnv))
			}
			t.Skipf("skipping: %s not found (apt-get install ffmpeg; set %s=1 to fail instead)", tool, RequireEnv)
		}
	}
}

// Video describes test video to generate: ffmpeg's testsrc pattern with a
// running frame counter, H.264 constrained baseline (no B-frames, decoded
// by WebCodecs everywhere), as fragmented MP4 with a fragment per keyframe.
type Video struct {
	Seconds float64
	FPS     int
	Width   int
	Height  int
	// GOP is the keyframe interval in frames.
	GOP int
	// Audio adds an AAC track (a 440 Hz tone, 48 kHz mono) as long as the
	// video.
	Audio bool
	// Progressive writes a progressive (non-fragmented) MP4 instead, as
	// ffmpeg does by default: its moov, indexing every sample, after the
	// media; with FastStart too, before it.
	Progressive, FastStart bool
}

// Frames returns the number of frames v has.
func (v Video) Frames() int { return int(v.Seconds * float64(v.FPS)) }

// Make writes v to dir/name and returns the path.
func Make(t testing.TB, dir, name string, v Video) string {
	t.Helper()
	out := filepath.Join(dir, name)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	args := []string{"-hide_banner", "-loglevel", "error", "-y",
		"-f", "lavfi", "-i", fmt.Sprintf("testsrc2=size=%dx%d:rate=%d", v.Width, v.Height, v.FPS)}
	if v.Audio {
		args = append(args, "-f", "lavfi", "-t", fmt.Sprint(v.Seconds), "-i", "sine=frequency=440:sample_rate=48000", "-c:a", "aac")
	}
	args = append(args, "-frames:v", strconv.Itoa(v.Frames()),
		"-c:v", "libx264", "-profile:v", "baseline", "-pix_fmt", "yuv420p", "-preset", "ultrafast",
		"-g", strconv.Itoa(v.GOP), "-keyint_min", strconv.Itoa(v.GOP), "-sc_threshold", "0",
		"-f", "mp4")
	switch {
	case v.Progressive && v.FastStart:
		args = append(args, "-movflags", "+faststart")
	case !v.Progressive:
		args = append(args, "-movflags", "frag_keyframe+empty_moov+default_base_moof")
	}
	args = append(args, out)
	cmd := exec.CommandContext(ctx, "ffmpeg", args...)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("ffmpeg: %v\n%s", err, b)
	}
	return out
}

// Stream is what ffprobe reports about a stream of a file.
type Stream struct {
	Codec  string    // codec_name, e.g. "h264"
	Width  int       // coded width
	Height int       // coded height
	PTS    []float64 // every packet's presentation time in seconds, in decode order
	Keys   []bool    // which packets are keyframes
}

// Probe runs ffprobe on path's first video stream, failing t if ffprobe
// cannot read it.
func Probe(t testing.TB, path string) Stream {
	t.Helper()
	return ProbeStream(t, path, "v:0")
}

// ProbeStream is Probe for the stream that ffprobe's -select_streams
// specifier sel picks ("a:0": the first audio stream).
func ProbeStream(t testing.TB, path, sel string) Stream {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, "ffprobe", "-v", "error", "-select_streams", sel,
		"-show_entries", "stream=codec_name,width,height:packet=pts_time,flags",
		"-of", "json", path).Output()
	if err != nil {
		var stderr []byte
		if ee, ok := err.(*exec.ExitError); ok {
			stderr = ee.Stderr
		}
		t.Fatalf("ffprobe %s: %v\n%s", path, err, stderr)
	}
	var r struct {
		Streams []struct {
			CodecName string `json:"codec_name"`
			Width     int    `json:"width"`
			Height    int    `json:"height"`
		} `json:"streams"`
		Packets []struct {
			PTS   string `json:"pts_time"`
			Flags string `json:"flags"`
		} `json:"packets"`
	}
	if err := json.Unmarshal(out, &r); err != nil {
		t.Fatalf("ffprobe output: %v", err)
	}
	if len(r.Streams) == 0 {
		t.Fatalf("ffprobe: %s has no stream %s", path, sel)
	}
	s := Stream{Codec: r.Streams[0].CodecName, Width: r.Streams[0].Width, Height: r.Streams[0].Height}
	for _, p := range r.Packets {
		pts, err := strconv.ParseFloat(p.PTS, 64)
		if err != nil {
			t.Fatalf("ffprobe: packet pts %q", p.PTS)
		}
		s.PTS = append(s.PTS, pts)
		s.Keys = append(s.Keys, len(p.Flags) > 0 && p.Flags[0] == 'K')
	}
	return s
}

// SameTiming fails t unless got has as many packets as want, of the same
// codec, with keyframes at the same places and each presentation time,
// taken from each stream's first, within tol seconds.
func SameTiming(t testing.TB, want, got Stream, tol float64) {
	t.Helper()
	if got.Codec != want.Codec {
		t.Fatalf("codec %q, want %q", got.Codec, want.Codec)
	}
	if len(got.PTS) != len(want.PTS) {
		t.Fatalf("%d frames, want %d", len(got.PTS), len(want.PTS))
	}
	for i := range want.PTS {
		d := (got.PTS[i] - got.PTS[0]) - (want.PTS[i] - want.PTS[0])
		if d > tol || d < -tol {
			t.Fatalf("frame %d at %.6f s, want %.6f s (relative to the first; tolerance %.6f)", i, got.PTS[i]-got.PTS[0], want.PTS[i]-want.PTS[0], tol)
		}
		if got.Keys[i] != want.Keys[i] {
			t.Fatalf("frame %d keyframe %v, want %v", i, got.Keys[i], want.Keys[i])
		}
	}
}
