package session

import (
	"bytes"
	"errors"
	"testing"

	"github.com/moqp2p/moqp2p/internal/wire"
)

// frameHeaderCases are previous and next timestamps around the inline
// encodings' edges: one and two zigzag bytes each way, the largest
// timestamps, and deltas that need wire.AppendTimestamp.
func frameHeaderCases() [][2]uint64 {
	var out [][2]uint64
	for _, prev := range []uint64{0, 1, 31, 32, 1000, smallDelta - 1, smallDelta, smallDelta + 1, 1 << 40, wire.MaxTimestamp - smallDelta, wire.MaxTimestamp - 1, wire.MaxTimestamp} {
		for _, d := range []int64{0, 1, -1, 31, 32, -32, -33, 33, 63, -64, smallDelta - 1, smallDelta, -smallDelta, -smallDelta - 1, 1 << 20, -(1 << 20)} {
			ts := uint64(int64(prev) + d)
			if (d < 0 && uint64(-d) > prev) || ts > wire.MaxTimestamp {
				continue
			}
			out = append(out, [2]uint64{prev, ts})
		}
	}
	return out
}

// appendFrameHeader's inline deltas are exactly wire.AppendTimestamp's.
func TestAppendFrameHeaderDeltas(t *testing.T) {
	s := &Session{version: wire.Lite05}
	for _, c := range frameHeaderCases() {
		prev := c[0]
		got := s.appendFrameHeader([]byte("x"), &prev, c[1], 300)
		want, err := wire.AppendTimestamp([]byte("x"), c[0], c[1])
		if err != nil {
			t.Fatalf("%d after %d: %v", c[1], c[0], err)
		}
		want = wire.AppendFrameHeader(want, 300)
		if !bytes.Equal(got, want) || prev != c[1] {
			t.Fatalf("%d after %d: % x (prev %d), want % x", c[1], c[0], got, prev, want)
		}
	}
}

// parseFrameHeader's inline deltas are exactly wire.ParseTimestamp's,
// in range or not, whole or cut short.
func TestParseFrameHeaderDeltas(t *testing.T) {
	check := func(buf []byte, prev uint64) {
		t.Helper()
		ts, size, n, err := parseFrameHeader(buf, true, prev)
		wts, k, werr := wire.ParseTimestamp(buf, prev)
		var wsize uint64
		var m int
		if werr == nil {
			wsize, m, werr = wire.ParseVarint(buf[k:])
		}
		switch {
		case (err == nil) != (werr == nil) || (err != nil && !errors.Is(err, wire.ErrShort) != !errors.Is(werr, wire.ErrShort)):
			t.Fatalf("% x after %d: %v, want %v", buf, prev, err, werr)
		case err == nil && (ts != wts || size != wsize || n != k+m):
			t.Fatalf("% x after %d: %d, size %d, %d bytes; want %d, %d, %d", buf, prev, ts, size, n, wts, wsize, k+m)
		}
	}
	for _, c := range frameHeaderCases() {
		b, _ := wire.AppendTimestamp(nil, c[0], c[1])
		b = wire.AppendFrameHeader(b, 300)
		for i := range len(b) + 1 {
			check(b[:i], c[0])
		}
	}
	// Every one- and two-byte zigzag, against previous timestamps at the
	// edges of the range: deltas out of range fail as ParseTimestamp does.
	for _, prev := range []uint64{0, 1, 100, smallDelta, wire.MaxTimestamp - 100, wire.MaxTimestamp} {
		for z := uint64(0); z < 1<<14; z++ {
			check(wire.AppendFrameHeader(wire.AppendVarint(nil, z), 5), prev)
			// The two-byte form of every value, the non-minimal ones (z
			// under 64, zero included) too: valid varints a peer may send.
			check(wire.AppendFrameHeader([]byte{0x40 | byte(z>>8), byte(z)}, 5), prev)
		}
	}
}
