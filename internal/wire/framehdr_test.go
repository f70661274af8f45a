package wire

import (
	"bytes"
	"errors"
	"testing"
)

// frameHeaderCases are previous and next timestamps around the inline
// encodings' edges: one and two zigzag bytes each way, the largest
// timestamps, and deltas that take the general encoding.
func frameHeaderCases() [][2]uint64 {
	var out [][2]uint64
	for _, prev := range []uint64{0, 1, 31, 32, 1000, smallDelta - 1, smallDelta, smallDelta + 1, 1 << 40, MaxTimestamp - smallDelta, MaxTimestamp - 1, MaxTimestamp} {
		for _, d := range []int64{0, 1, -1, 31, 32, -32, -33, 33, 63, -64, smallDelta - 1, smallDelta, -smallDelta, -smallDelta - 1, 1 << 20, -(1 << 20)} {
			ts := uint64(int64(prev) + d)
			if (d < 0 && uint64(-d) > prev) || ts > MaxTimestamp {
				continue
			}
			out = append(out, [2]uint64{prev, ts})
		}
	}
	return out
}

// AppendTimestamp's inline deltas are exactly the general encoding's,
// and so are its refusals.
func TestAppendTimestampInline(t *testing.T) {
	cases := append(frameHeaderCases(), [2]uint64{MaxTimestamp + 1, MaxTimestamp}, [2]uint64{MaxTimestamp + 1, MaxTimestamp + 1},
		[2]uint64{0, MaxTimestamp + 1}, [2]uint64{0, MaxTimestamp}, [2]uint64{MaxTimestamp, 0})
	for _, c := range cases {
		got, err := AppendTimestamp([]byte("x"), c[0], c[1])
		want, werr := appendTimestamp([]byte("x"), c[0], c[1])
		if !bytes.Equal(got, want) || (err == nil) != (werr == nil) {
			t.Fatalf("%d after %d: % x %v, want % x %v", c[1], c[0], got, err, want, werr)
		}
	}
}

// ParseFrameHeader's inline deltas are exactly ParseTimestamp's, in range
// or not, whole or cut short; the size follows as ParseVarint reads it.
func TestParseFrameHeaderDeltas(t *testing.T) {
	for _, c := range frameHeaderCases() {
		b, _ := AppendTimestamp(nil, c[0], c[1])
		b = AppendFrameHeader(b, 300)
		for i := range len(b) + 1 {
			checkFrameHeader(t, b[:i], true, c[0])
			checkFrameHeader(t, b[:i], false, c[0])
		}
	}
	// Every one- and two-byte zigzag, against previous timestamps at the
	// edges of the range: deltas out of range fail as ParseTimestamp does.
	for _, prev := range []uint64{0, 1, 100, smallDelta, MaxTimestamp - 100, MaxTimestamp, MaxTimestamp + 1} {
		for z := uint64(0); z < 1<<14; z++ {
			checkFrameHeader(t, AppendFrameHeader(AppendVarint(nil, z), 5), true, prev)
			// The two-byte form of every value, the non-minimal ones (z
			// under 64, zero included) too: valid varints a peer may send.
			checkFrameHeader(t, AppendFrameHeader([]byte{0x40 | byte(z>>8), byte(z)}, 5), true, prev)
		}
	}
}

// checkFrameHeader checks ParseFrameHeader against ParseTimestamp (if
// stamped) and ParseVarint, field by field.
func checkFrameHeader(t *testing.T, b []byte, stamped bool, prev uint64) {
	t.Helper()
	ts, size, n, err := ParseFrameHeader(b, stamped, prev)
	var wts, wsize uint64
	var k, m int
	var werr error
	if stamped {
		wts, k, werr = ParseTimestamp(b, prev)
	}
	if werr == nil {
		wsize, m, werr = ParseVarint(b[k:])
	}
	switch {
	case (err == nil) != (werr == nil) || (err != nil && errors.Is(err, ErrShort) != errors.Is(werr, ErrShort)):
		t.Fatalf("% x after %d (stamped %v): %v, want %v", b, prev, stamped, err, werr)
	case err != nil:
		checkSentinel(t, err)
	case ts != wts || size != wsize || n != k+m:
		t.Fatalf("% x after %d (stamped %v): %d, size %d, %d bytes; want %d, %d, %d", b, prev, stamped, ts, size, n, wts, wsize, k+m)
	}
}
