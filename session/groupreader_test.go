package session

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"os"
	"testing"
	"time"

	"github.com/moqp2p/moqp2p/broadcast"
	"github.com/moqp2p/moqp2p/internal/wire"
)

// chunkStream is a receive stream whose reads return the given chunks in
// turn, with deadlines (as rawquic's streams have).
type chunkStream struct {
	chunks   []chunk
	deadline time.Time
}

type chunk struct {
	data string
	err  error
}

func (s *chunkStream) Read(p []byte) (int, error) {
	if len(s.chunks) == 0 {
		return 0, io.EOF
	}
	c := s.chunks[0]
	s.chunks = s.chunks[1:]
	return copy(p, c.data), c.err
}
func (s *chunkStream) CancelRead(uint32)                 {}
func (s *chunkStream) SetReadDeadline(t time.Time) error { s.deadline = t; return nil }

func readRest(t *testing.T, gr *groupReader) string {
	t.Helper()
	b, err := io.ReadAll(gr)
	if err != nil {
		t.Fatalf("reading on: %v", err)
	}
	return string(b)
}

func TestGroupReaderArrived(t *testing.T) {
	for _, c := range []struct {
		name    string
		chunks  []chunk
		arrived bool
	}{
		{"whole stream in one read", []chunk{{"hello", io.EOF}}, true},
		{"empty stream", []chunk{{"", io.EOF}}, true},
		{"more to come", []chunk{{"hel", nil}, {"lo", io.EOF}}, false},
		// The deadline cut a read that got data: the data counts, the
		// error must not surface later.
		{"deadline after data", []chunk{{"hel", os.ErrDeadlineExceeded}, {"lo", io.EOF}}, false},
		{"deadline before data", []chunk{{"", os.ErrDeadlineExceeded}, {"hello", io.EOF}}, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			st := &chunkStream{chunks: c.chunks}
			gr := getGroupReader(st)
			defer putGroupReader(gr)
			if got := gr.arrived(); got != c.arrived {
				t.Fatalf("arrived() = %v, want %v", got, c.arrived)
			}
			// A stream read whole keeps its spent deadline (nothing is left
			// to read); one that is not must have it lifted for the reads
			// that wait.
			if !c.arrived && !st.deadline.IsZero() {
				t.Fatal("arrived left a read deadline set on a stream still to be read")
			}
			want := "hello"
			if c.name == "empty stream" {
				want = ""
			}
			if got := readRest(t, gr); got != want {
				t.Fatalf("read %q, want %q", got, want)
			}
		})
	}
	t.Run("no deadlines", func(t *testing.T) {
		gr := getGroupReader(&chunkStreamNoDeadline{&chunkStream{chunks: []chunk{{"hello", io.EOF}}}})
		defer putGroupReader(gr)
		if gr.arrived() {
			t.Fatal("a stream without deadlines cannot be known to have arrived")
		}
		if got := readRest(t, gr); got != "hello" {
			t.Fatalf("read %q", got)
		}
	})
}

// chunkStreamNoDeadline hides chunkStream's SetReadDeadline.
type chunkStreamNoDeadline struct{ s *chunkStream }

func (s *chunkStreamNoDeadline) Read(p []byte) (int, error) { return s.s.Read(p) }
func (s *chunkStreamNoDeadline) CancelRead(uint32)          {}

func frames(payloads ...string) []byte {
	var b []byte
	for _, p := range payloads {
		b = wire.AppendFrameHeader(b, uint64(len(p)))
		b = append(b, p...)
	}
	return b
}

func TestBufferedFrames(t *testing.T) {
	s := &Session{lim: Limits{MaxFrameSize: 8}.withDefaults()}
	data := append(frames("a", "", "bcd"), frames("0123456789")...) // the last is over MaxFrameSize
	r := bufio.NewReaderSize(bytes.NewReader(append(data, frames("tail")...)), 64)
	_, _ = r.Peek(1)
	batch, size := s.bufferedFrames(r, make([][]byte, 0, 8), &slab{}, &frameStamps{})
	if fmt.Sprintf("%q", strs(batch)) != `["a" "" "bcd"]` || size != 4 {
		t.Fatalf("got %q (%d bytes), want [a  bcd] (4 bytes)", strs(batch), size)
	}
	if cap(batch[0]) != 1 {
		t.Fatal("a frame's capacity reaches into the next one: an append would overwrite it")
	}
	// It stops at the oversized frame, which readFrames then reports.
	if batch, _ := s.bufferedFrames(r, nil, &slab{}, &frameStamps{}); len(batch) != 0 {
		t.Fatalf("got %q past an oversized frame", strs(batch))
	}
	// At most cap(dst) frames; an incomplete frame is left in the buffer.
	r = bufio.NewReaderSize(bytes.NewReader(append(frames("x", "y", "z"), 5, 'p')), 64)
	_, _ = r.Peek(1)
	if batch, _ := s.bufferedFrames(r, make([][]byte, 0, 2), &slab{}, &frameStamps{}); fmt.Sprint(strs(batch)) != "[x y]" {
		t.Fatalf("got %q, want [x y]", strs(batch))
	}
	if batch, _ := s.bufferedFrames(r, make([][]byte, 0, 2), &slab{}, &frameStamps{}); fmt.Sprint(strs(batch)) != "[z]" {
		t.Fatalf("got %q, want [z]", strs(batch))
	}
	if r.Buffered() != 2 {
		t.Fatalf("%d bytes left, want the 2 of the incomplete frame", r.Buffered())
	}
}

func strs(frames [][]byte) []string {
	out := make([]string, len(frames))
	for i, f := range frames {
		out[i] = string(f)
	}
	return out
}

// TestSlab checks that frames carved from one slab never reach into each
// other (an append to one must not overwrite the next), that the first
// allocation is exact, and that slabs grow only up to slabMax.
func TestSlab(t *testing.T) {
	var m slab
	a := m.take(3)
	if len(a) != 3 || cap(a) != 3 {
		t.Fatalf("first take: len %d cap %d, want 3 3", len(a), cap(a))
	}
	copy(a, "abc")
	b := m.take(2) // a new slab of 6: room for the next takes
	c := m.take(4)
	copy(b, "de")
	copy(c, "fghi")
	_ = append(b, 'X') // must reallocate, not write into c
	if string(a) != "abc" || string(b) != "de" || string(c) != "fghi" {
		t.Fatalf("frames overlap: %q %q %q", a, b, c)
	}
	allocs := testing.AllocsPerRun(100, func() {
		var m slab
		for range 64 {
			m.take(1024)
		}
	})
	// 1 KiB, 2 KiB, 4 KiB, 8 KiB, then 16 KiB slabs: 64 KiB in 8 allocations.
	if allocs > 8 {
		t.Fatalf("%.0f allocations for 64 frames of 1 KiB, want at most 8", allocs)
	}
	if big := m.take(slabMax); len(big) != slabMax || cap(big) != slabMax {
		t.Fatalf("large take: len %d cap %d", len(big), cap(big))
	}
}

// TestCompleteFrames: where the complete frames of a buffer end tells
// whether a fully-arrived group stream is exactly whole frames.
func TestCompleteFrames(t *testing.T) {
	s := &Session{lim: Limits{MaxFrameSize: 8}.withDefaults()}
	for _, c := range []struct {
		name  string
		buf   []byte
		count int
		whole bool
	}{
		{"no frames", nil, 0, true},
		{"two frames", frames("ab", ""), 2, true},
		{"a frame cut short", frames("a", "bcd")[:5], 1, false},
		{"a size cut short", []byte{0x40}, 0, false},
		{"over the size limit", frames("0123456789"), 0, false},
		{"more than max frames", frames("a", "b", "c", "d"), 3, false},
		{"exactly max frames", frames("a", "b", "c"), 3, true},
	} {
		count, _, end := s.completeFrames(c.buf, 3, 0)
		if count != c.count || (end == len(c.buf)) != c.whole {
			t.Errorf("%s: %d frames ending at %d of %d, want %d frames, whole %v", c.name, count, end, len(c.buf), c.count, c.whole)
		}
	}
}

// TestReadFramesSplits reads a group stream whose bytes arrive in awkward
// pieces (one byte, a few, a packet's worth, everything) straight into
// payload memory: every frame comes out whole and in order, frames carved
// from one chunk never reach into each other, and the receive budget holds
// nothing afterwards. Sizes cover empty frames, frames that straddle
// chunks, and frames of slabMax and more (memory of their own).
func TestReadFramesSplits(t *testing.T) {
	var payloads []string
	for i, n := range []int{0, 1, 100, 1000, 1021, 3000, 0, 7, slabMax - 1, slabMax, 20000, 5, 1200, 1200, 1200, 1200} {
		payloads = append(payloads, string(bytes.Repeat([]byte{byte('a' + i)}, n)))
	}
	data := frames(payloads...)
	for _, piece := range []int{1, 7, 1300, 4096, len(data)} {
		t.Run(fmt.Sprint(piece), func(t *testing.T) {
			budget := broadcast.NewBudget(1<<20, nil)
			s := &Session{lim: Limits{Model: broadcast.Limits{Budget: budget}}.withDefaults()}
			gr := getGroupReader(&pieceStream{rest: data, piece: piece})
			defer putGroupReader(gr)
			_, _ = gr.Peek(1) // as the header's read leaves it: some bytes buffered
			tp := broadcast.NewTrack(broadcast.Track{Name: "t"}, broadcast.Limits{Budget: budget})
			g, _ := tp.CreateGroup(0)
			if err := s.readFrames(gr, g, nil, &frameStamps{}); err != nil {
				t.Fatalf("readFrames: %v", err)
			}
			_ = g.Finish()
			gc := g.Consume()
			var got [][]byte
			for {
				f, ok, err := gc.TryReadFrame()
				if !ok || err != nil {
					break
				}
				got = append(got, f)
			}
			if len(got) != len(payloads) {
				t.Fatalf("%d frames, want %d", len(got), len(payloads))
			}
			for _, f := range got {
				_ = append(f, '!') // must not write into the next frame
			}
			for i, f := range got {
				if string(f) != payloads[i] {
					t.Fatalf("frame %d: %d bytes of %q…, want %d", i, len(f), f[:min(len(f), 1)], len(payloads[i]))
				}
			}
			tp.Abort(nil)
			if used := budget.Used(); used != 0 {
				t.Fatalf("budget holds %d bytes after the track ended", used)
			}
		})
	}
}

// pieceStream is a receive stream whose reads return at most piece bytes
// each, then io.EOF.
type pieceStream struct {
	rest  []byte
	piece int
}

func (s *pieceStream) Read(p []byte) (int, error) {
	if len(s.rest) == 0 {
		return 0, io.EOF
	}
	n := copy(p[:min(len(p), s.piece)], s.rest)
	s.rest = s.rest[n:]
	return n, nil
}
func (s *pieceStream) CancelRead(uint32) {}
