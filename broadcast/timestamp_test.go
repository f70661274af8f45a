package broadcast

import (
	"errors"
	"io"
	"slices"
	"testing"
)

// Frame timestamps: stored beside the frames, 0 for frames written
// without one, kept aligned when the group evicts its oldest frames.
func TestFrameTimestamps(t *testing.T) {
	g := newTestGroup(Limits{GroupMaxFrames: 4})
	c := g.Consume()
	_ = g.WriteFrame([]byte("a"))         // none: 0
	_ = g.WriteFrameAt(1000, []byte("b")) // the first timestamp
	_ = g.WriteFramesAt([]uint64{1033, 1066}, []byte("c"), []byte("d"))
	if f, ts, err := c.ReadFrameAt(testCtx(t)); err != nil || string(f) != "a" || ts != 0 {
		t.Fatalf("a: %q %d %v", f, ts, err)
	}
	frames, stamps, err := c.TryReadFramesAt(nil, nil, 10)
	if err != nil || len(frames) != 3 || !slices.Equal(stamps, []uint64{1000, 1033, 1066}) {
		t.Fatalf("batch: %q %v %v", frames, stamps, err)
	}
	_ = g.WriteFrames([]byte("e"), []byte("f")) // evicts a and b (4 frames at most)
	late := g.Consume()
	late.SkipEvicted()
	if f, ts, ok, err := late.TryReadFrameAt(); !ok || err != nil || string(f) != "c" || ts != 1033 {
		t.Fatalf("after eviction: %q %d %v %v", f, ts, ok, err)
	}
	if err := g.WriteFramesAt([]uint64{1}, []byte("x"), []byte("y")); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("mismatched timestamps: %v", err)
	}
	_ = g.Finish()
	var got []uint64
	for {
		_, ts, err := late.ReadFrameAt(testCtx(t))
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, ts)
	}
	if !slices.Equal(got, []uint64{1066, 0, 0}) {
		t.Fatalf("timestamps after eviction %v, want [1066 0 0]", got)
	}
}

func TestWriteGroupAt(t *testing.T) {
	tp := NewTrack(Track{Name: "v", Timescale: 90000}, Limits{})
	tc := tp.Consume()
	if err := tp.WriteGroupAt(0, []uint64{5, 3}, []byte("a"), []byte("b")); err != nil {
		t.Fatal(err)
	}
	g, err := tc.RecvGroup(testCtx(t))
	if err != nil {
		t.Fatal(err)
	}
	frames, ts, err := g.TryReadFramesAt(nil, nil, 10)
	if err != nil || len(frames) != 2 || !slices.Equal(ts, []uint64{5, 3}) {
		t.Fatalf("%q %v %v", frames, ts, err)
	}
	if tp.Info().Scale() != 90000 || (Track{}).Scale() != DefaultTimescale {
		t.Fatal("Scale")
	}
	if err := tp.WriteGroupAt(1, []uint64{1}); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("mismatched: %v", err)
	}
}
