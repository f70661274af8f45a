package session

import (
	"bytes"
	"testing"

	"github.com/moqp2p/moqp2p/internal/wire"
)

// appendFrameHeader is wire.AppendTimestamp's field then the size on
// lite-05, advancing prev; a jump no zigzag varint holds repeats the
// previous timestamp; lite-04 has the size alone.
func TestAppendFrameHeaderDeltas(t *testing.T) {
	s := &Session{version: wire.Lite05}
	for _, c := range [][2]uint64{{0, 0}, {0, 33}, {1000, 967}, {5, 1 << 20}, {1 << 40, 0}, {wire.MaxTimestamp, wire.MaxTimestamp - 1}} {
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
	for _, c := range [][2]uint64{{0, wire.MaxTimestamp}, {wire.MaxTimestamp, 0}, {7, wire.MaxTimestamp + 1}} {
		prev := c[0]
		got := s.appendFrameHeader([]byte("x"), &prev, c[1], 300)
		if want := wire.AppendFrameHeader([]byte("x\x00"), 300); !bytes.Equal(got, want) || prev != c[0] {
			t.Fatalf("%d after %d: % x (prev %d), want % x (a repeat)", c[1], c[0], got, prev, want)
		}
	}
	s.version = wire.Lite04
	prev := uint64(5)
	if got := s.appendFrameHeader(nil, &prev, 33, 300); !bytes.Equal(got, wire.AppendFrameHeader(nil, 300)) || prev != 5 {
		t.Fatalf("lite-04: % x (prev %d)", got, prev)
	}
}
