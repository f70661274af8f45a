package hang

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/moqp2p/moqp2p/broadcast"
)

// publishCatalog is the catalog @moq/publish 0.2.17 serves for a camera
// (its Video.#i and Root.#t build the object; JSON.stringify keeps that key
// order): one H.264 rendition in Annex B, so no description.
const publishCatalog = `{"video":{"renditions":{"video/hd":{"codec":"avc1.42e01f","bitrate":1209600,"framerate":30,"codedWidth":640,"codedHeight":480,"optimizeForLatency":true,"container":{"kind":"legacy"},"jitter":34}},"display":{"width":640,"height":480}}}`

func TestCatalogFromPublishRoundTrips(t *testing.T) {
	c, err := ParseCatalog([]byte(publishCatalog))
	if err != nil {
		t.Fatal(err)
	}
	r, ok := c.Video.Renditions["video/hd"]
	if !ok || r.Codec != "avc1.42e01f" || r.CodedWidth != 640 || r.CodedHeight != 480 || r.Framerate != 30 ||
		r.Container != Legacy || r.Jitter != 34 || r.OptimizeForLatency == nil || !*r.OptimizeForLatency {
		t.Fatalf("parsed %+v", r)
	}
	if c.Video.Display == nil || *c.Video.Display != (Display{640, 480}) {
		t.Fatalf("display %+v", c.Video.Display)
	}
	b, err := c.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	if string(b) != publishCatalog {
		t.Fatalf("re-encoded differently:\n got %s\nwant %s", b, publishCatalog)
	}
}

func TestCatalogDefaultsAndUnknownFields(t *testing.T) {
	// No container means legacy in hang's schema; unknown sections pass.
	c, err := ParseCatalog([]byte(`{"video":{"renditions":{"v":{"codec":"vp8"}}},"scte35":{"x":1},"audio":{"renditions":{"a":{"codec":"opus","container":{"kind":"legacy"},"sampleRate":48000,"numberOfChannels":2}}}}`))
	if err != nil {
		t.Fatal(err)
	}
	if c.Video.Renditions["v"].Container != Legacy {
		t.Fatalf("container %+v", c.Video.Renditions["v"].Container)
	}
	if a := c.Audio.Renditions["a"]; a.SampleRate != 48000 || a.NumberOfChannels != 2 {
		t.Fatalf("audio %+v", a)
	}
}

func TestCatalogRejects(t *testing.T) {
	for name, in := range map[string]string{
		"not json":      `{"video":`,
		"no codec":      `{"video":{"renditions":{"v":{"container":{"kind":"legacy"}}}}}`,
		"base64 desc":   `{"video":{"renditions":{"v":{"codec":"avc1.42e01f","description":"AAE="}}}}`,
		"cmaf no init":  `{"video":{"renditions":{"v":{"codec":"avc1.42e01f","container":{"kind":"cmaf"}}}}}`,
		"renditions []": `{"video":{"renditions":[1]}}`,
	} {
		if _, err := ParseCatalog([]byte(in)); !errors.Is(err, ErrCatalog) {
			t.Errorf("%s: err %v, want ErrCatalog", name, err)
		}
	}
}

func TestFrameTimestampPrefix(t *testing.T) {
	// hang's legacy container: the timestamp as a QUIC varint (2 bytes for
	// 1 s = 1 000 000 µs needs 4), then the payload.
	b := AppendFrame(nil, 1_000_000, []byte{0xaa})
	if !bytes.Equal(b, []byte{0x80, 0x0f, 0x42, 0x40, 0xaa}) {
		t.Fatalf("encoded % x", b)
	}
	ts, p, err := ParseFrame(b)
	if err != nil || ts != 1_000_000 || !bytes.Equal(p, []byte{0xaa}) {
		t.Fatalf("parsed %d % x %v", ts, p, err)
	}
	if _, _, err := ParseFrame([]byte{0x80, 0x0f}); !errors.Is(err, ErrFrame) {
		t.Fatalf("truncated: %v", err)
	}
}

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func TestTrackGroupsStartAtKeyframes(t *testing.T) {
	ctx := testCtx(t)
	tp := broadcast.NewTrack(MediaTrack("video", 2), broadcast.Limits{})
	w := NewTrackWriter(tp)
	if err := w.WriteFrame(0, false, []byte("p")); !errors.Is(err, ErrNoKeyframe) {
		t.Fatalf("delta first: %v", err)
	}
	r := NewTrackReader(tp.Consume())
	defer r.Close()
	in := []struct {
		ts  uint64
		key bool
	}{{0, true}, {33_333, false}, {66_666, false}, {100_000, true}, {133_333, false}}
	for i, f := range in {
		if err := w.WriteFrame(f.ts, f.key, []byte{byte(i)}); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	for i, want := range in {
		f, err := r.ReadFrame(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if f.Timestamp != want.ts || f.Keyframe != want.key || !bytes.Equal(f.Payload, []byte{byte(i)}) {
			t.Fatalf("frame %d: %+v", i, f)
		}
		wantGroup := uint64(0)
		if i >= 3 {
			wantGroup = 1
		}
		if f.Group != wantGroup {
			t.Fatalf("frame %d in group %d, want %d", i, f.Group, wantGroup)
		}
	}
	if _, err := r.ReadFrame(ctx); !errors.Is(err, io.EOF) {
		t.Fatalf("after the end: %v", err)
	}
}

func TestTrackStampsLite05Timestamps(t *testing.T) {
	// On moq-lite-05 the frame's own timestamp (microsecond timescale)
	// matches the payload's prefix.
	ctx := testCtx(t)
	tp := broadcast.NewTrack(MediaTrack("video", 0), broadcast.Limits{})
	tc := tp.Consume()
	defer tc.Close()
	w := NewTrackWriter(tp)
	if err := w.WriteFrame(2_500_000, true, []byte("k")); err != nil {
		t.Fatal(err)
	}
	g, err := tc.NextGroup(ctx)
	if err != nil {
		t.Fatal(err)
	}
	b, ts, err := g.ReadFrameAt(ctx)
	if err != nil {
		t.Fatal(err)
	}
	pts, _, err := ParseFrame(b)
	if err != nil || ts != 2_500_000 || pts != ts {
		t.Fatalf("frame timestamp %d, payload timestamp %d, %v", ts, pts, err)
	}
}

func TestCatalogTrackSnapshotThenPatches(t *testing.T) {
	ctx := testCtx(t)
	tp := broadcast.NewTrack(broadcast.Track{Name: CatalogTrack}, broadcast.Limits{})
	r := NewCatalogReader(tp.Consume())
	defer r.Close()
	// A group as @moq/json writes it: snapshot, then merge patches.
	g, err := tp.AppendGroup()
	if err != nil {
		t.Fatal(err)
	}
	if err := g.WriteFrames([]byte(publishCatalog),
		[]byte(`{"video":{"renditions":{"video/hd":{"bitrate":800000}}}}`),
		[]byte(`{"video":{"display":null}}`)); err != nil {
		t.Fatal(err)
	}
	c, err := r.Next(ctx)
	if err != nil || c.Video.Renditions["video/hd"].Bitrate != 1209600 {
		t.Fatalf("snapshot %+v %v", c, err)
	}
	c, err = r.Next(ctx)
	if err != nil || c.Video.Renditions["video/hd"].Bitrate != 800000 || c.Video.Renditions["video/hd"].Codec != "avc1.42e01f" {
		t.Fatalf("patched %+v %v", c, err)
	}
	c, err = r.Next(ctx)
	if err != nil || c.Video.Display != nil {
		t.Fatalf("deleted display: %+v %v", c, err)
	}
	// A new group is a fresh snapshot from CatalogWriter.
	_ = g.Finish()
	w := NewCatalogWriter(tp)
	want := &Catalog{Video: &Video{Renditions: map[string]VideoConfig{"v": {Codec: "vp8", Container: Legacy}}}}
	if err := w.Write(want); err != nil {
		t.Fatal(err)
	}
	c, err = r.Next(ctx)
	if err != nil || len(c.Video.Renditions) != 1 || c.Video.Renditions["v"].Codec != "vp8" {
		t.Fatalf("second group %+v %v", c, err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Next(ctx); !errors.Is(err, io.EOF) {
		t.Fatalf("finished: %v", err)
	}
}

func TestCatalogReaderRefusesBadFrame(t *testing.T) {
	ctx := testCtx(t)
	tp := broadcast.NewTrack(broadcast.Track{Name: CatalogTrack}, broadcast.Limits{})
	r := NewCatalogReader(tp.Consume())
	defer r.Close()
	if err := tp.WriteFrame([]byte(`{"video":{"renditions":{"v":{}}}}`)); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Next(ctx); !errors.Is(err, ErrCatalog) {
		t.Fatalf("got %v, want ErrCatalog", err)
	}
}

// A publisher that keeps patching a catalog group cannot grow what the
// reader holds past MaxBytes.
func TestCatalogReaderBound(t *testing.T) {
	ctx := testCtx(t)
	tp := broadcast.NewTrack(broadcast.Track{Name: CatalogTrack}, broadcast.Limits{})
	r := NewCatalogReader(tp.Consume())
	r.MaxBytes = 64 << 10
	defer r.Close()
	g, err := tp.AppendGroup()
	if err != nil {
		t.Fatal(err)
	}
	if err := g.WriteFrame([]byte(publishCatalog)); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Next(ctx); err != nil {
		t.Fatal(err)
	}
	pad := strings.Repeat("x", 1000)
	var got error
	for i := 0; got == nil; i++ {
		if i > 100 {
			t.Fatal("no error after 100 KB of patches")
		}
		if err := g.WriteFrame(fmt.Appendf(nil, `{"pad%d":%q}`, i, pad)); err != nil {
			t.Fatal(err)
		}
		_, got = r.Next(ctx)
	}
	if !errors.Is(got, ErrCatalog) || r.size > r.MaxBytes+len(pad)+32 {
		t.Fatalf("got %v after %d bytes", got, r.size)
	}
}

// Older publishers' catalogs: video as an array of {track, config}, audio
// as one {track, config}; @moq/hang still reads them, and so do we.
func TestCatalogOldForm(t *testing.T) {
	c, err := ParseCatalog([]byte(`{"video":[{"track":{"name":"video"},"config":{"codec":"avc1.42e01f","codedWidth":640,"codedHeight":360,"displayAspectWidth":16,"displayAspectHeight":9}}],` +
		`"audio":{"track":{"name":"audio"},"config":{"codec":"opus","sampleRate":48000,"numberOfChannels":2}}}`))
	if err != nil {
		t.Fatal(err)
	}
	v := c.Video.Renditions["video"]
	if v.Codec != "avc1.42e01f" || v.CodedWidth != 640 || v.Container != Legacy || c.Video.Display == nil || *c.Video.Display != (Display{16, 9}) {
		t.Fatalf("video %+v, display %+v", v, c.Video.Display)
	}
	if a := c.Audio.Renditions["audio"]; a.Codec != "opus" || a.SampleRate != 48000 || a.Container != Legacy {
		t.Fatalf("audio %+v", a)
	}
	// Written back in today's form.
	b, err := c.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), `"renditions":{"video":{`) || !strings.Contains(string(b), `"renditions":{"audio":{`) {
		t.Fatalf("re-encoded %s", b)
	}
}

// A recording reader takes a group that arrives after a newer one; a live
// reader skips it.
func TestRecordingReaderTakesLateGroups(t *testing.T) {
	ctx := testCtx(t)
	tp := broadcast.NewTrack(MediaTrack("audio", 0), broadcast.Limits{})
	live, rec := NewTrackReader(tp.Consume()), NewRecordingReader(tp.Consume())
	defer live.Close()
	defer rec.Close()
	for _, seq := range []uint64{0, 2, 1} { // group 1 arrives late
		if err := tp.WriteGroup(seq, AppendFrame(nil, seq*21_333, []byte{byte(seq)})); err != nil {
			t.Fatal(err)
		}
	}
	if err := tp.Finish(); err != nil {
		t.Fatal(err)
	}
	read := func(r *TrackReader) (groups []uint64) {
		for {
			f, err := r.ReadFrame(ctx)
			if errors.Is(err, io.EOF) {
				return groups
			}
			if err != nil {
				t.Fatal(err)
			}
			groups = append(groups, f.Group)
		}
	}
	if got := read(live); fmt.Sprint(got) != "[0 2]" {
		t.Fatalf("live reader read groups %v, want [0 2]", got)
	}
	if got := read(rec); fmt.Sprint(got) != "[0 2 1]" {
		t.Fatalf("recording reader read groups %v, want [0 2 1]", got)
	}
}
