package session

import (
	"testing"

	"github.com/moqp2p/moqp2p/internal/wire"
)

// The per-frame cost of lite-05's timestamps on the receive path: taking
// 1 KiB frames out of a chunk, with and without a timestamp delta before
// each (frames written without a timestamp: delta 0, as P1's are).
func BenchmarkFrameScan(b *testing.B) {
	for _, stamped := range []bool{false, true} {
		name := "lite-04"
		if stamped {
			name = "lite-05"
		}
		b.Run(name, func(b *testing.B) {
			var buf []byte
			payload := make([]byte, 1<<10)
			for range maxBatch {
				if stamped {
					buf = append(buf, 0)
				}
				buf = wire.AppendFrameHeader(buf, uint64(len(payload)))
				buf = append(buf, payload...)
			}
			var arr [maxBatch][]byte
			st := frameStamps{on: stamped, mul: 1, div: 1}
			b.SetBytes(int64(len(buf)))
			b.ReportAllocs()
			for b.Loop() {
				c := chunks{buf: buf, hi: len(buf)}
				st.prev = 0
				batch, _ := c.frames(arr[:0], 1<<20, &st)
				if len(batch) != maxBatch {
					b.Fatalf("%d frames", len(batch))
				}
			}
		})
	}
}

// The same on the send path: each frame's header.
func BenchmarkFrameHeaders(b *testing.B) {
	for _, v := range []wire.Version{wire.Lite04, wire.Lite05} {
		b.Run(v.String(), func(b *testing.B) {
			s := &Session{version: v}
			var hdr [24]byte
			b.ReportAllocs()
			for b.Loop() {
				var prev uint64
				for range maxBatch {
					_ = s.appendFrameHeader(hdr[:0], &prev, 0, 1<<10)
				}
			}
		})
	}
}
