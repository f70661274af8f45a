package fmp4

import (
	"bytes"
	"encoding/hex"
	"io"
	"os"
	"testing"

	"github.com/moqp2p/moqp2p/hang"
)

// Whatever the input, the reader returns samples or an error: no panic.
func FuzzReader(f *testing.F) {
	// A fragmented file, and a progressive one (its moov after its mdat),
	// both with H.264 and AAC.
	for _, seed := range []string{"testdata/seed.mp4", "testdata/seed-progressive.mp4"} {
		if b, err := os.ReadFile(seed); err == nil {
			f.Add(b)
		}
	}
	f.Add([]byte{0, 0, 0, 8, 'm', 'o', 'o', 'v'})
	f.Fuzz(func(t *testing.T, b []byte) {
		rd, err := NewReader(bytes.NewReader(b))
		if err != nil {
			return
		}
		for range 10_000 {
			if _, err := rd.Next(); err != nil {
				return
			}
		}
	})
}

// A publisher controls the description and the frames Writer turns into
// MP4 (sub --media): whatever they are, it writes or returns an error, no
// panic.
func FuzzWriter(f *testing.F) {
	f.Add([]byte{1, 0x42, 0xc0, 0x1e, 0xff, 0xe1, 0, 4, 0x67, 0x42, 0xc0, 0x1e, 1, 0, 2, 0x68, 0xce}, []byte{0, 0, 0, 1, 0x65, 0x88}, false)
	f.Add([]byte{}, []byte{0, 0, 0, 1, 0x67, 0x42, 0, 0, 1, 0x68, 0xce, 0, 0, 1, 0x65, 0x88}, true)
	f.Fuzz(func(t *testing.T, desc, payload []byte, annexB bool) {
		cfg := hang.VideoConfig{Codec: "avc1.42c01e", Container: hang.Legacy}
		if !annexB {
			cfg.Description = hex.EncodeToString(desc)
		}
		w, err := NewWriter(io.Discard, cfg)
		if err != nil {
			return
		}
		for i := range 3 {
			if err := w.WriteFrame(hang.Frame{Timestamp: uint64(i) * 40_000, Keyframe: i == 0, Payload: payload}); err != nil {
				return
			}
		}
		_ = w.Close()
	})
}
