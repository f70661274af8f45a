package main

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/moqp2p/moqp2p/internal/ffmpegtest"
)

var mediaVideo = ffmpegtest.Video{Seconds: 3, FPS: 25, Width: 320, Height: 240, GOP: 25, Audio: true}

// lastMedia parses the media summary pub and sub print.
func lastMedia(t *testing.T, who string, ls []string) mediaStats {
	t.Helper()
	if len(ls) == 0 {
		t.Fatalf("%s printed no summary", who)
	}
	var st mediaStats
	if err := json.Unmarshal([]byte(ls[len(ls)-1]), &st); err != nil {
		t.Fatalf("%s summary %q: %v", who, ls[len(ls)-1], err)
	}
	return st
}

// ffmpeg test video (with AAC audio) → moq pub --media → libp2p (raw QUIC
// on the host's socket) → moq sub --media out.mp4: ffprobe reads the same
// codecs, frame counts, keyframes and timestamps (within one frame) as in
// the input, for the video and the audio.
func TestMediaThroughPeers(t *testing.T) {
	ffmpegtest.Require(t)
	dir := t.TempDir()
	in := ffmpegtest.Make(t, dir, "in.mp4", mediaVideo)
	out := filepath.Join(dir, "out.mp4")
	pub, connect := listenFor(t, "pub", "/ip4/127.0.0.1/udp/0/quic-v1", false,
		"--broadcast", "demo.hang", "--media", in, "--wait")
	sub := start(t, "sub", nil, append([]string{"sub", "--broadcast", "demo.hang", "--media", out}, connect...)...)
	sub.mustSucceed(t, 60*time.Second)
	pub.mustSucceed(t, 30*time.Second)

	frames := mediaVideo.Frames()
	audio := len(ffmpegtest.ProbeStream(t, in, "a:0").PTS)
	if st := lastMedia(t, "pub", pub.stdout.all()); st.Frames != frames || st.Keyframes != frames/mediaVideo.GOP || st.Codec[:7] != "avc1.42" || st.AudioFrames != audio {
		t.Errorf("pub summary %+v, want %d audio frames", st, audio)
	}
	if st := lastMedia(t, "sub", sub.stdout.all()); st.Frames != frames || st.AudioFrames != audio {
		t.Errorf("sub summary %+v, want %d audio frames", st, audio)
	}
	want, got := ffmpegtest.Probe(t, in), ffmpegtest.Probe(t, out)
	ffmpegtest.SameTiming(t, want, got, 1.0/float64(mediaVideo.FPS))
	ffmpegtest.SameTiming(t, ffmpegtest.ProbeStream(t, in, "a:0"), ffmpegtest.ProbeStream(t, out, "a:0"), 1024.0/48000)
}

// pub --media - reads ffmpeg's pipe output from stdin, and sub --media -
// --count 50 writes fragmented MP4 to stdout (what ffplay - reads): ffprobe
// reads the input's first 50 frames.
func TestMediaToStdout(t *testing.T) {
	ffmpegtest.Require(t)
	dir := t.TempDir()
	in := ffmpegtest.Make(t, dir, "in.mp4", mediaVideo)
	src, err := os.Open(in)
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	// From stdin too: ffmpeg's pipe output is what pub --media - reads.
	pub := start(t, "pub --media -", src, "pub", "--listen", "/ip4/127.0.0.1/udp/0/quic-v1",
		"--broadcast", "demo.hang", "--media", "-", "--wait")
	connect := []string{"--connect", field(pub.stderr.await(t, pub.name, "listening: /", 20*time.Second))}
	out := filepath.Join(dir, "piped.mp4")
	f, err := os.Create(out)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sub := startCmd(t, "sub --media -", nil, time.Minute, func(ctx context.Context) *exec.Cmd {
		c := exec.CommandContext(ctx, moqBin, append([]string{"sub", "--broadcast", "demo.hang", "--media", "-", "--count", "50"}, connect...)...)
		c.Stdout = f
		return c
	})
	sub.mustSucceed(t, 60*time.Second)
	pub.mustSucceed(t, 30*time.Second)
	// --count 50: the first 50 frames, no more.
	want := ffmpegtest.Probe(t, in)
	want.PTS, want.Keys = want.PTS[:50], want.Keys[:50]
	ffmpegtest.SameTiming(t, want, ffmpegtest.Probe(t, out), 1.0/float64(mediaVideo.FPS))
}

// pub --media --loop starts the file over with timestamps after the
// previous round's: 75 frames of a 50-frame file play on, one frame
// duration apart, a keyframe where the file starts again.
func TestMediaLoop(t *testing.T) {
	ffmpegtest.Require(t)
	dir := t.TempDir()
	v := ffmpegtest.Video{Seconds: 2, FPS: 25, Width: 160, Height: 120, GOP: 25}
	in := ffmpegtest.Make(t, dir, "in.mp4", v)
	out := filepath.Join(dir, "out.mp4")
	pub, connect := listenFor(t, "pub", "/ip4/127.0.0.1/udp/0/quic-v1", false,
		"--broadcast", "loop.hang", "--media", in, "--loop", "--wait")
	sub := start(t, "sub", nil, append([]string{"sub", "--broadcast", "loop.hang", "--media", out, "--count", "75"}, connect...)...)
	sub.mustSucceed(t, 60*time.Second)
	pub.interrupt(t)
	got := ffmpegtest.Probe(t, out)
	want := ffmpegtest.Stream{Codec: "h264"}
	for i := range 75 {
		want.PTS = append(want.PTS, float64(i)/float64(v.FPS))
		want.Keys = append(want.Keys, i%v.GOP == 0)
	}
	ffmpegtest.SameTiming(t, want, got, 1.0/float64(v.FPS))
}
