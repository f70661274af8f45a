package fmp4

import (
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/Eyevinn/mp4ff/avc"

	"github.com/moqp2p/moqp2p/hang"
	"github.com/moqp2p/moqp2p/internal/ffmpegtest"
)

var testVideo = ffmpegtest.Video{Seconds: 2, FPS: 25, Width: 320, Height: 240, GOP: 10}

func TestReadFFmpegFragmentedMP4(t *testing.T) {
	_, rd := testInput(t, t.TempDir(), testVideo)
	v := rd.Catalog().Video.Renditions[VideoTrack]
	if v.Codec != "avc1.42c00d" && v.Codec[:7] != "avc1.42" {
		t.Fatalf("codec %q, want constrained baseline avc1.42…", v.Codec)
	}
	if v.CodedWidth != 320 || v.CodedHeight != 240 || v.Description == "" || v.Container != hang.Legacy {
		t.Fatalf("rendition %+v", v)
	}
	if _, err := rd.Catalog().Marshal(); err != nil {
		t.Fatal(err)
	}
	var n, keys int
	eachSample(t, rd, func(s Sample) {
		if want := uint64(n) * 40_000; s.Timestamp != want || s.Duration != 40_000 {
			t.Fatalf("sample %d at %d µs for %d µs, want %d for 40000", n, s.Timestamp, s.Duration, want)
		}
		if s.Keyframe != (n%testVideo.GOP == 0) {
			t.Fatalf("sample %d keyframe %v", n, s.Keyframe)
		}
		if s.Keyframe {
			keys++
		}
		n++
	})
	if n != testVideo.Frames() || keys != testVideo.Frames()/testVideo.GOP {
		t.Fatalf("%d samples, %d keyframes", n, keys)
	}
}

// eachSample calls f with each sample rd reads, to the end.
func eachSample(t *testing.T, rd *Reader, f func(Sample)) {
	t.Helper()
	for {
		s, err := rd.Next()
		if errors.Is(err, io.EOF) {
			return
		}
		if err != nil {
			t.Fatal(err)
		}
		f(s)
	}
}

// testInput makes v in dir and opens a Reader on it.
func testInput(t *testing.T, dir string, v ffmpegtest.Video) (string, *Reader) {
	t.Helper()
	ffmpegtest.Require(t)
	in := ffmpegtest.Make(t, dir, "in.mp4", v)
	src, err := os.ReadFile(in)
	if err != nil {
		t.Fatal(err)
	}
	rd, err := NewReader(bytes.NewReader(src))
	if err != nil {
		t.Fatal(err)
	}
	return in, rd
}

func TestRoundTripThroughHang(t *testing.T) {
	dir := t.TempDir()
	in, rd := testInput(t, dir, testVideo)
	// Through the hang catalog's JSON, as a subscriber gets it.
	b, err := rd.Catalog().Marshal()
	if err != nil {
		t.Fatal(err)
	}
	cat, err := hang.ParseCatalog(b)
	if err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "out.mp4")
	of, err := os.Create(out)
	if err != nil {
		t.Fatal(err)
	}
	wr, err := NewWriter(of, cat.Video.Renditions[VideoTrack])
	if err != nil {
		t.Fatal(err)
	}
	eachSample(t, rd, func(s Sample) {
		// Through the legacy container's framing too.
		ts, payload, err := hang.ParseFrame(hang.AppendFrame(nil, s.Timestamp+7_000_000, s.Data))
		if err != nil {
			t.Fatal(err)
		}
		if err := wr.WriteFrame(hang.Frame{Timestamp: ts, Keyframe: s.Keyframe, Payload: payload}); err != nil {
			t.Fatal(err)
		}
	})
	if err := wr.Close(); err != nil {
		t.Fatal(err)
	}
	if err := of.Close(); err != nil {
		t.Fatal(err)
	}
	want, got := ffmpegtest.Probe(t, in), ffmpegtest.Probe(t, out)
	ffmpegtest.SameTiming(t, want, got, 1.0/float64(testVideo.FPS))
	if got.Width != 320 || got.Height != 240 {
		t.Fatalf("%dx%d", got.Width, got.Height)
	}
}

func TestReaderRefuses(t *testing.T) {
	for name, in := range map[string][]byte{
		"empty":       {},
		"huge box":    {0xff, 0xff, 0xff, 0xff, 'm', 'd', 'a', 't'},
		"to the end":  {0, 0, 0, 0, 'm', 'd', 'a', 't'},
		"short box":   {0, 0, 0, 4, 'f', 't', 'y', 'p'},
		"cut box":     {0, 0, 0, 100, 'f', 't', 'y', 'p', 1, 2},
		"no moov":     {0, 0, 0, 8, 'f', 'r', 'e', 'e'},
		"garbage hdr": {0, 0},
	} {
		if _, err := NewReader(bytes.NewReader(in)); !errors.Is(err, ErrFormat) {
			t.Errorf("%s: %v, want ErrFormat", name, err)
		}
	}
}

func TestWriterRefusesOtherCodecs(t *testing.T) {
	if _, err := NewWriter(io.Discard, hang.VideoConfig{Codec: "vp8", Container: hang.Legacy}); !errors.Is(err, ErrCodec) {
		t.Fatalf("vp8: %v", err)
	}
}

// TestWriterTakesAnnexB writes what @moq/publish sends for H.264: Annex B
// with the parameter sets in band at each keyframe and no description.
func TestWriterTakesAnnexB(t *testing.T) {
	dir := t.TempDir()
	in, rd := testInput(t, dir, testVideo)
	v := rd.Catalog().Video.Renditions[VideoTrack]
	desc, err := v.DescriptionBytes()
	if err != nil {
		t.Fatal(err)
	}
	rec, err := avc.DecodeAVCDecConfRec(desc)
	if err != nil {
		t.Fatal(err)
	}
	startCode := []byte{0, 0, 0, 1}
	var ps []byte
	for _, n := range append(rec.SPSnalus, rec.PPSnalus...) {
		ps = append(append(ps, startCode...), n...)
	}
	v.Description, v.Codec = "", "avc1.42e01f"
	var out bytes.Buffer
	wr, err := NewWriter(&out, v)
	if err != nil {
		t.Fatal(err)
	}
	// A delta frame before the first keyframe is dropped, as a decoder
	// could not start there.
	if err := wr.WriteFrame(hang.Frame{Timestamp: 0, Payload: []byte{0, 0, 0, 1, 0x41, 0}}); err != nil {
		t.Fatal(err)
	}
	eachSample(t, rd, func(s Sample) {
		payload := avc.ConvertSampleToByteStream(s.Data)
		if s.Keyframe {
			payload = append(append([]byte(nil), ps...), payload...)
		}
		if err := wr.WriteFrame(hang.Frame{Timestamp: s.Timestamp + 40_000, Keyframe: s.Keyframe, Payload: payload}); err != nil {
			t.Fatal(err)
		}
	})
	if err := wr.Close(); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "annexb.mp4")
	if err := os.WriteFile(path, out.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	ffmpegtest.SameTiming(t, ffmpegtest.Probe(t, in), ffmpegtest.Probe(t, path), 1.0/float64(testVideo.FPS))
	if wr.Frames() != testVideo.Frames() {
		t.Fatalf("wrote %d frames, want %d", wr.Frames(), testVideo.Frames())
	}
}

// An AAC track becomes the catalog's audio rendition as @moq/publish
// describes AAC, and its samples come interleaved with the video's in
// decode order, every one of both.
func TestReadAudio(t *testing.T) {
	v := testVideo
	v.Audio = true
	in, rd := testInput(t, t.TempDir(), v)
	a := rd.Catalog().Audio.Renditions[AudioTrack]
	if a.Codec != "mp4a.40.2" || a.SampleRate != 48000 || a.NumberOfChannels != 1 || a.Description == "" || a.Container != hang.Legacy {
		t.Fatalf("audio rendition %+v", a)
	}
	if _, err := rd.Catalog().Marshal(); err != nil {
		t.Fatal(err)
	}
	counts := map[string]int{}
	last := map[string]uint64{}
	eachSample(t, rd, func(s Sample) {
		if counts[s.Track] > 0 && s.Timestamp <= last[s.Track] {
			t.Fatalf("%s sample %d at %d µs, after %d", s.Track, counts[s.Track], s.Timestamp, last[s.Track])
		}
		if s.Track == AudioTrack && !s.Keyframe {
			t.Fatalf("audio sample %d not a sync sample", counts[s.Track])
		}
		counts[s.Track]++
		last[s.Track] = s.Timestamp
	})
	video, audio := ffmpegtest.Probe(t, in), ffmpegtest.ProbeStream(t, in, "a:0")
	if counts[VideoTrack] != len(video.PTS) || counts[AudioTrack] != len(audio.PTS) || audio.Codec != "aac" {
		t.Fatalf("read %v samples, ffprobe sees %d video and %d %s", counts, len(video.PTS), len(audio.PTS), audio.Codec)
	}
}

// avWriter makes test video with audio in dir, opens a Reader on it and a
// Writer (with its audio) into out.
func avWriter(t *testing.T, dir string) (in string, rd *Reader, wr *Writer, out *bytes.Buffer) {
	t.Helper()
	v := testVideo
	v.Audio = true
	in, rd = testInput(t, dir, v)
	out = new(bytes.Buffer)
	var err error
	if wr, err = NewWriter(out, rd.Catalog().Video.Renditions[VideoTrack]); err != nil {
		t.Fatal(err)
	}
	if err := wr.AddAudio(rd.Catalog().Audio.Renditions[AudioTrack]); err != nil {
		t.Fatal(err)
	}
	return in, rd, wr, out
}

// Video and AAC audio through hang and back: ffprobe reads both streams
// with the input's frame counts and timestamps.
func TestRoundTripWithAudio(t *testing.T) {
	dir := t.TempDir()
	in, rd, wr, out := avWriter(t, dir)
	// Audio first, as it may arrive: it waits for the video's keyframe.
	var video []Sample
	eachSample(t, rd, func(s Sample) {
		if s.Track == AudioTrack {
			if err := wr.WriteAudio(hang.Frame{Timestamp: s.Timestamp, Keyframe: true, Payload: s.Data}); err != nil {
				t.Fatal(err)
			}
			return
		}
		video = append(video, s)
	})
	for _, s := range video {
		if err := wr.WriteFrame(hang.Frame{Timestamp: s.Timestamp, Keyframe: s.Keyframe, Payload: s.Data}); err != nil {
			t.Fatal(err)
		}
	}
	if err := wr.Close(); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "out.mp4")
	if err := os.WriteFile(path, out.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	ffmpegtest.SameTiming(t, ffmpegtest.Probe(t, in), ffmpegtest.Probe(t, path), 1.0/float64(testVideo.FPS))
	wantAudio, gotAudio := ffmpegtest.ProbeStream(t, in, "a:0"), ffmpegtest.ProbeStream(t, path, "a:0")
	t.Logf("audio: %d frames in, %d out (%d taken while waiting)", len(wantAudio.PTS), len(gotAudio.PTS), wr.AudioFrames())
	ffmpegtest.SameTiming(t, wantAudio, gotAudio, 1024.0/48000)
}

// Audio frames that arrive out of order (one-frame groups on their own
// streams) are written in order, none lost; duplicates and frames later
// than the reordering window are dropped.
func TestWriterReordersAudio(t *testing.T) {
	dir := t.TempDir()
	in, rd, wr, out := avWriter(t, dir)
	var audio []hang.Frame
	eachSample(t, rd, func(s Sample) {
		fr := hang.Frame{Timestamp: s.Timestamp, Keyframe: s.Keyframe, Payload: s.Data}
		if s.Track == AudioTrack {
			audio = append(audio, fr)
			return
		}
		if err := wr.WriteFrame(fr); err != nil {
			t.Fatal(err)
		}
	})
	// Swap neighbours (a frame a step late), send one twice.
	for i := 0; i+1 < len(audio); i += 2 {
		audio[i], audio[i+1] = audio[i+1], audio[i]
	}
	audio = append(audio[:10], append([]hang.Frame{audio[3]}, audio[10:]...)...)
	for _, fr := range audio {
		if err := wr.WriteAudio(fr); err != nil {
			t.Fatal(err)
		}
	}
	if err := wr.Close(); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "out.mp4")
	if err := os.WriteFile(path, out.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	ffmpegtest.SameTiming(t, ffmpegtest.ProbeStream(t, in, "a:0"), ffmpegtest.ProbeStream(t, path, "a:0"), 1024.0/48000)
}

// A progressive MP4 (ffmpeg's default: no fragments, the moov indexing
// every sample, after the media or, with +faststart, before it) read from
// a file gives the same samples a fragmented one does: every video frame
// 40 ms apart with its keyframe flag, every AAC frame; written back out
// they are what ffprobe reads in the input. From a pipe it is refused with
// the remux command.
func TestReadProgressiveMP4(t *testing.T) {
	for _, fast := range []bool{false, true} {
		t.Run(map[bool]string{false: "moov last", true: "faststart"}[fast], func(t *testing.T) {
			ffmpegtest.Require(t)
			dir := t.TempDir()
			v := testVideo
			v.Audio, v.Progressive, v.FastStart = true, true, fast
			in := ffmpegtest.Make(t, dir, "plain.mp4", v)
			f, err := os.Open(in)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			rd, err := NewReader(f)
			if err != nil {
				t.Fatal(err)
			}
			cat := rd.Catalog()
			if cat.Audio == nil || cat.Video.Renditions[VideoTrack].CodedWidth != 320 {
				t.Fatalf("catalog %+v", cat)
			}
			out := filepath.Join(dir, "out.mp4")
			of, err := os.Create(out)
			if err != nil {
				t.Fatal(err)
			}
			wr, err := NewWriter(of, cat.Video.Renditions[VideoTrack])
			if err != nil {
				t.Fatal(err)
			}
			if err := wr.AddAudio(cat.Audio.Renditions[AudioTrack]); err != nil {
				t.Fatal(err)
			}
			var n, audio int
			eachSample(t, rd, func(s Sample) {
				if s.Track == AudioTrack {
					audio++
					if err := wr.WriteAudio(hang.Frame{Timestamp: s.Timestamp, Keyframe: true, Payload: s.Data}); err != nil {
						t.Fatal(err)
					}
					return
				}
				if want := uint64(n) * 40_000; s.Timestamp != want || s.Duration != 40_000 || s.Keyframe != (n%v.GOP == 0) {
					t.Fatalf("sample %d at %d µs for %d µs, keyframe %v; want %d for 40000", n, s.Timestamp, s.Duration, s.Keyframe, want)
				}
				n++
				if err := wr.WriteFrame(hang.Frame{Timestamp: s.Timestamp, Keyframe: s.Keyframe, Payload: s.Data}); err != nil {
					t.Fatal(err)
				}
			})
			if err := wr.Close(); err != nil {
				t.Fatal(err)
			}
			if err := of.Close(); err != nil {
				t.Fatal(err)
			}
			wantAudio := ffmpegtest.ProbeStream(t, in, "a:0")
			if n != v.Frames() || audio != len(wantAudio.PTS) {
				t.Fatalf("%d video and %d audio samples, want %d and %d", n, audio, v.Frames(), len(wantAudio.PTS))
			}
			ffmpegtest.SameTiming(t, ffmpegtest.Probe(t, in), ffmpegtest.Probe(t, out), 1.0/float64(v.FPS))
			ffmpegtest.SameTiming(t, wantAudio, ffmpegtest.ProbeStream(t, out, "a:0"), 1024.0/48000)

			// From a pipe (no seeking), the error names the remux.
			if _, err := f.Seek(0, io.SeekStart); err != nil {
				t.Fatal(err)
			}
			_, err = NewReader(io.MultiReader(f))
			if !errors.Is(err, ErrFormat) || !strings.Contains(err.Error(), "-movflags frag_keyframe+empty_moov+default_base_moof") {
				t.Fatalf("from a pipe: %v, want ErrFormat naming the remux", err)
			}
		})
	}
}
