package p2pstream

import (
	"io"
	"testing"

	"github.com/libp2p/go-libp2p/core/network"
)

const benchFrame = 1 << 10

// BenchmarkStreamThroughput sends b.N 1 KiB writes one way over one
// p2pstream bidi stream and, in the same run, over a plain libp2p stream
// between the same kind of hosts, so the two MB/s figures of one run
// compare the adapter's cost with libp2p's own.
func BenchmarkStreamThroughput(b *testing.B) {
	for _, kind := range kinds {
		b.Run(kind+"/p2pstream", func(b *testing.B) {
			d, a := setup(b, kind)
			done := make(chan int64)
			go func() {
				st, err := a.AcceptStream(testCtx(b))
				if err != nil {
					b.Error(err)
					done <- 0
					return
				}
				n, _ := io.Copy(io.Discard, st)
				_ = st.Close()
				done <- n
			}()
			st, err := d.OpenStream(testCtx(b))
			if err != nil {
				b.Fatal(err)
			}
			sendFrames(b, st, st.Close, done)
			_, _ = io.Copy(io.Discard, st)
		})
		b.Run(kind+"/raw", func(b *testing.B) {
			ha, hb := newHost(b, kind), newHost(b, kind)
			connect(b, ha, hb)
			done := make(chan int64)
			hb.SetStreamHandler("/bench/raw", func(s network.Stream) {
				n, _ := io.Copy(io.Discard, s)
				_ = s.Close()
				done <- n
			})
			s, err := ha.NewStream(testCtx(b), hb.ID(), "/bench/raw")
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close()
			sendFrames(b, s, s.CloseWrite, done)
		})
	}
}

// sendFrames writes b.N frames to w, closes its write side and waits for
// the reader to count them all.
func sendFrames(b *testing.B, w io.Writer, closeWrite func() error, done <-chan int64) {
	b.Helper()
	frame := make([]byte, benchFrame)
	b.SetBytes(benchFrame)
	b.ResetTimer()
	for range b.N {
		if _, err := w.Write(frame); err != nil {
			b.Fatal(err)
		}
	}
	if err := closeWrite(); err != nil {
		b.Fatal(err)
	}
	if n := <-done; n != int64(b.N)*benchFrame {
		b.Fatalf("received %d bytes, want %d", n, b.N*benchFrame)
	}
	b.StopTimer()
}
