package session

import (
	"testing"

	"github.com/moqp2p/moqp2p/internal/wire"
)

// stampCases are the frame timestamps of the benchmarks below: none
// (lite-04), all 0 (frames written without one: delta 0, as P1's are),
// and frame i at i×33 (30 fps in milliseconds: delta 33, a real stream's).
var stampCases = []struct {
	name string
	v    wire.Version
	step uint64
}{{"lite-04", wire.Lite04, 0}, {"lite-05", wire.Lite05, 0}, {"lite-05/delta-33", wire.Lite05, 33}}

// The per-frame cost of lite-05's timestamps on the receive path: taking
// 1 KiB frames out of a chunk, with and without a timestamp delta before
// each.
func BenchmarkFrameScan(b *testing.B) {
	for _, c := range stampCases {
		stamped := c.v.HasFrameTimestamps()
		b.Run(c.name, func(b *testing.B) {
			var buf []byte
			payload := make([]byte, 1<<10)
			var prev uint64
			for i := range uint64(maxBatch) {
				if stamped {
					var err error
					if buf, err = wire.AppendTimestamp(buf, prev, i*c.step); err != nil {
						b.Fatal(err)
					}
					prev = i * c.step
				}
				buf = wire.AppendFrameHeader(buf, uint64(len(payload)))
				buf = append(buf, payload...)
			}
			var arr [maxBatch][]byte
			st := frameStamps{on: stamped, mul: 1, div: 1}
			b.SetBytes(int64(len(buf)))
			b.ReportAllocs()
			for b.Loop() {
				ch := chunks{buf: buf, hi: len(buf)}
				st.prev = 0
				batch, _ := ch.frames(arr[:0], 1<<20, &st)
				if len(batch) != maxBatch {
					b.Fatalf("%d frames", len(batch))
				}
			}
		})
	}
}

// The same on the send path: each frame's header.
func BenchmarkFrameHeaders(b *testing.B) {
	for _, c := range stampCases {
		b.Run(c.name, func(b *testing.B) {
			s := &Session{version: c.v}
			var hdr [24]byte
			b.ReportAllocs()
			for b.Loop() {
				var prev uint64
				for i := range uint64(maxBatch) {
					_ = s.appendFrameHeader(hdr[:0], &prev, i*c.step, 1<<10)
				}
			}
		})
	}
}
