package session

import (
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

// TestChunkFrames: frames are taken out of a chunk while they lie complete
// in it, at most cap(dst) at a time, each capped at its end; a frame over
// MaxFrameSize or cut short stops the scan where it starts. A group stream
// that arrived whole is exactly whole frames when the scan ends at the end
// of its chunk.
func TestChunkFrames(t *testing.T) {
	for _, c := range []struct {
		name  string
		buf   []byte
		max   int // cap(dst)
		want  string
		whole bool
	}{
		{"no frames", nil, 3, "[]", true},
		{"two frames", frames("ab", ""), 3, "[ab ]", true},
		{"a frame cut short", frames("a", "bcd")[:5], 3, "[a]", false},
		{"a size cut short", []byte{0x40}, 3, "[]", false},
		{"over the size limit", append(frames("a"), frames("0123456789")...), 3, "[a]", false},
		{"more than max frames", frames("a", "b", "c", "d"), 3, "[a b c]", false},
		{"exactly max frames", frames("a", "b", "c"), 3, "[a b c]", true},
	} {
		c := c
		t.Run(c.name, func(t *testing.T) {
			ch := chunks{buf: c.buf, hi: len(c.buf)}
			batch, size := ch.frames(make([][]byte, 0, c.max), 8, &frameStamps{})
			var total uint64
			for _, f := range batch {
				total += uint64(len(f))
				if cap(f) != len(f) {
					t.Fatalf("frame %q has capacity %d: an append would overwrite what follows", f, cap(f))
				}
			}
			if got := fmt.Sprint(strs(batch)); got != c.want || size != total {
				t.Fatalf("got %s (%d bytes), want %s (%d bytes)", got, size, c.want, total)
			}
			if whole := ch.lo == ch.hi; whole != c.whole {
				t.Fatalf("scan ended at %d of %d: whole %v, want %v", ch.lo, ch.hi, whole, c.whole)
			}
		})
	}
}

// TestStartChunks: a group stream whose FIN came with its bytes gets a
// first chunk of exactly those bytes (one allocation, nothing unused); one
// still arriving gets at least chunkMin, so that what follows has room.
func TestStartChunks(t *testing.T) {
	data := string(frames("abc", "de"))
	for _, c := range []struct {
		name   string
		chunks []chunk
		size   int
	}{
		// What follows the FIN here no stream would send: reading it would
		// show that the stream was read past its end.
		{"whole", []chunk{{data, io.EOF}, {"X", nil}}, len(data)},
		{"more to come", []chunk{{data, nil}, {"X", io.EOF}}, chunkMin},
	} {
		t.Run(c.name, func(t *testing.T) {
			gr := getGroupReader(&chunkStream{chunks: c.chunks})
			defer putGroupReader(gr)
			_, _ = gr.Peek(1)
			ch := gr.startChunks()
			if len(ch.buf) != c.size || string(ch.buf[ch.lo:ch.hi]) != data || gr.Buffered() != 0 {
				t.Fatalf("first chunk of %d bytes holding %q (%d left buffered), want %d bytes holding %q",
					len(ch.buf), ch.buf[ch.lo:ch.hi], gr.Buffered(), c.size, data)
			}
			// Past its frames, a whole stream's end is known without a
			// read, so no chunk is made for it either.
			ch.lo = ch.hi
			first := &ch.buf[0]
			err := ch.read(1)
			got := string(ch.buf[ch.lo:ch.hi])
			if c.size == len(data) && (err != io.EOF || got != "" || &ch.buf[0] != first) {
				t.Fatalf("reading past a whole stream: %v, read %q, new chunk %v; want io.EOF, nothing, none", err, got, &ch.buf[0] != first)
			}
			if c.size != len(data) && (err != nil || got != "X") {
				t.Fatalf("reading on: %v, read %q; want X", err, got)
			}
		})
	}
}

func strs(frames [][]byte) []string {
	out := make([]string, len(frames))
	for i, f := range frames {
		out[i] = string(f)
	}
	return out
}

// TestReadFramesSplits reads a group stream whose bytes arrive in awkward
// pieces (one byte, a few, a packet's worth, everything) straight into
// payload memory: every frame comes out whole and in order, frames carved
// from one chunk never reach into each other, and the receive budget holds
// nothing afterwards. Sizes cover empty frames, frames that straddle
// chunks, and frames of chunkMax and more (memory of their own).
func TestReadFramesSplits(t *testing.T) {
	var payloads []string
	for i, n := range []int{0, 1, 100, 1000, 1021, 3000, 0, 7, chunkMax - 1, chunkMax, 20000, 5, 1200, 1200, 1200, 1200} {
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
			c := gr.startChunks()
			if err := s.readFrames(c, g, nil, &frameStamps{}); err != nil {
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
