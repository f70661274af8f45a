package main

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
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

// A plain (progressive, non-fragmented) MP4, as ffmpeg writes by default
// and phones record, publishes as a fragmented one does: ffmpeg test video
// with AAC audio → moq pub --media plain.mp4 → libp2p → moq sub --media
// out.mp4: ffprobe reads the same codecs, frame counts, keyframes and
// timestamps. From stdin, which cannot seek, it is refused in one line
// naming the ffmpeg remux.
func TestMediaNotFragmented(t *testing.T) {
	ffmpegtest.Require(t)
	dir := t.TempDir()
	v := mediaVideo
	v.Progressive = true
	in := ffmpegtest.Make(t, dir, "plain.mp4", v)
	out := filepath.Join(dir, "out.mp4")
	pub, connect := listenFor(t, "pub", "/ip4/127.0.0.1/udp/0/quic-v1", false,
		"--broadcast", "plain.hang", "--media", in, "--wait")
	sub := start(t, "sub", nil, append([]string{"sub", "--broadcast", "plain.hang", "--media", out}, connect...)...)
	sub.mustSucceed(t, 60*time.Second)
	pub.mustSucceed(t, 30*time.Second)

	wantAudio := ffmpegtest.ProbeStream(t, in, "a:0")
	if st := lastMedia(t, "pub", pub.stdout.all()); st.Frames != v.Frames() || st.Keyframes != v.Frames()/v.GOP || st.AudioFrames != len(wantAudio.PTS) {
		t.Errorf("pub summary %+v, want %d frames and %d audio frames", st, v.Frames(), len(wantAudio.PTS))
	}
	ffmpegtest.SameTiming(t, ffmpegtest.Probe(t, in), ffmpegtest.Probe(t, out), 1.0/float64(v.FPS))
	ffmpegtest.SameTiming(t, wantAudio, ffmpegtest.ProbeStream(t, out, "a:0"), 1024.0/48000)

	src, err := os.Open(in)
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	p := start(t, "pub --media - < plain.mp4", io.MultiReader(src), "pub", "--broadcast", "plain.hang", "--media", "-", "--listen", "/ip4/127.0.0.1/udp/0/quic-v1")
	if code := p.wait(t, 20*time.Second); code == 0 {
		t.Fatalf("pub --media - of a plain MP4 exited 0\nstderr:\n%s", p.stderr.bytes())
	}
	if errs := p.stderr.all(); len(errs) == 0 || !strings.Contains(errs[len(errs)-1], "-movflags frag_keyframe+empty_moov+default_base_moof") {
		t.Fatalf("pub --media - of a plain MP4: stderr %q, want the remux command", errs)
	}
}

// An MP4 with no samples (here a fragmented file's init segment alone)
// publishes nothing: pub --media says so and exits non-zero at once, and
// with --loop too, rather than going round the empty file for ever. An
// empty file is refused as promptly.
func TestMediaNoFrames(t *testing.T) {
	ffmpegtest.Require(t)
	dir := t.TempDir()
	full, err := os.ReadFile(ffmpegtest.Make(t, dir, "in.mp4", ffmpegtest.Video{Seconds: 1, FPS: 25, Width: 160, Height: 120, GOP: 25}))
	if err != nil {
		t.Fatal(err)
	}
	// The boxes before the first moof: ftyp, moov.
	n := 0
	for n+8 <= len(full) && string(full[n+4:n+8]) != "moof" {
		n += int(binary.BigEndian.Uint32(full[n:]))
	}
	files := map[string][]byte{"init.mp4": full[:n], "empty.mp4": nil}
	want := map[string]string{"init.mp4": "no frames", "empty.mp4": "no moov box"}
	for name, b := range files {
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, b, 0o644); err != nil {
			t.Fatal(err)
		}
		for _, loop := range []bool{false, true} {
			args := []string{"pub", "--broadcast", "empty.hang", "--media", path, "--listen", "/ip4/127.0.0.1/udp/0/quic-v1"}
			if loop {
				args = append(args, "--loop")
			}
			p := start(t, strings.Join(args, " "), nil, args...)
			begin := time.Now()
			code := p.wait(t, 15*time.Second)
			took := time.Since(begin)
			errs := p.stderr.all()
			if code == 0 || len(errs) == 0 || !strings.Contains(errs[len(errs)-1], want[name]) {
				t.Fatalf("%s, loop %v: exit %d, stderr %q; want non-zero, ending with %q", name, loop, code, errs, want[name])
			}
			if took > 5*time.Second {
				t.Fatalf("%s, loop %v: exit after %s", name, loop, took)
			}
			t.Logf("%s, loop %v: exit %d after %s: %s", name, loop, code, took.Round(time.Millisecond), errs[len(errs)-1])
		}
	}
}

// moq sub --media - | ffmpeg -i - (the README's pipe), live: ffmpeg decodes
// every frame of the 3 s clip from the pipe and exits 0, and the fragments
// come out of sub at the clip's pace, as pub paces them by their
// timestamps, not all at once.
func TestMediaLivePipeToFFmpeg(t *testing.T) {
	ffmpegtest.Require(t)
	v := ffmpegtest.Video{Seconds: 3, FPS: 25, Width: 320, Height: 240, GOP: 25}
	in := ffmpegtest.Make(t, t.TempDir(), "in.mp4", v)
	pub, connect := listenFor(t, "pub", "/ip4/127.0.0.1/udp/0/quic-v1", false,
		"--broadcast", "live.hang", "--media", in, "--wait")

	// sub's stdout → a tap noting when each moof arrives → ffmpeg's stdin.
	subOut, tapIn := pipe(t)
	ffIn, ffFeed := pipe(t)
	sub := startCmd(t, "sub --media -", nil, time.Minute, func(ctx context.Context) *exec.Cmd {
		c := exec.CommandContext(ctx, moqBin, append([]string{"sub", "--broadcast", "live.hang", "--media", "-"}, connect...)...)
		c.Stdout = tapIn
		return c
	})
	_ = tapIn.Close() // sub holds it now: its exit is the tap's EOF
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	ff := exec.CommandContext(ctx, "ffmpeg", "-hide_banner", "-loglevel", "error", "-i", "-", "-map", "0:v", "-f", "framemd5", "-")
	ff.Stdin = ffIn
	var ffOut, ffErr strings.Builder
	ff.Stdout, ff.Stderr = &ffOut, &ffErr
	if err := ff.Start(); err != nil {
		t.Fatal(err)
	}
	_ = ffIn.Close()
	var moofs []time.Time
	tapErr := make(chan error, 1)
	go func() {
		defer ffFeed.Close()
		var hdr [8]byte
		for {
			if _, err := io.ReadFull(subOut, hdr[:]); err != nil {
				if errors.Is(err, io.EOF) {
					err = nil
				}
				tapErr <- err
				return
			}
			if string(hdr[4:]) == "moof" {
				moofs = append(moofs, time.Now())
			}
			size := int64(binary.BigEndian.Uint32(hdr[:4]))
			if size < 8 {
				tapErr <- fmt.Errorf("a %q box of %d bytes", hdr[4:], size)
				return
			}
			if _, err := ffFeed.Write(hdr[:]); err != nil {
				tapErr <- err
				return
			}
			if _, err := io.CopyN(ffFeed, subOut, size-8); err != nil {
				tapErr <- err
				return
			}
		}
	}()
	sub.mustSucceed(t, time.Minute)
	pub.mustSucceed(t, 30*time.Second)
	if err := <-tapErr; err != nil {
		t.Fatalf("reading sub's output: %v", err)
	}
	if err := ff.Wait(); err != nil {
		t.Fatalf("ffmpeg -i -: %v\n%s", err, ffErr.String())
	}
	var decoded int
	for line := range strings.Lines(ffOut.String()) {
		if !strings.HasPrefix(line, "#") && strings.TrimSpace(line) != "" {
			decoded++
		}
	}
	clip := time.Duration(v.Frames()) * time.Second / time.Duration(v.FPS)
	if decoded != v.Frames() || len(moofs) != v.Frames() {
		t.Fatalf("ffmpeg decoded %d frames from %d fragments, want %d", decoded, len(moofs), v.Frames())
	}
	spread := moofs[len(moofs)-1].Sub(moofs[0])
	t.Logf("ffmpeg decoded %d frames; sub wrote them over %s (clip %s)", decoded, spread.Round(time.Millisecond), clip)
	// The clip's second half: a subscriber that joined late gets the
	// frames it missed at once (a loaded machine can take a second to set
	// up sub's subscriptions), but from the live edge on they come at the
	// clip's pace. Unpaced, they would all come within milliseconds.
	half := len(moofs) / 2
	want := time.Duration(len(moofs)-1-half) * time.Second / time.Duration(v.FPS)
	if got := moofs[len(moofs)-1].Sub(moofs[half]); got < want*8/10 {
		t.Fatalf("the %s clip's second half (%s of frames) came out of sub within %s: not paced", clip, want, got)
	}
}
