package webtransport

import (
	"context"
	"io"
	"testing"

	"github.com/moqp2p/moqp2p/transport"
)

// BenchmarkThroughput writes frames of 1 KiB and 64 KiB on one
// unidirectional stream over a WebTransport session and, in the same run and
// to the same server socket, over a raw-QUIC moq-lite connection, both on
// loopback. An op is one frame; the time includes the receiver draining the
// stream. Compare the MB/s of the two in one run: the machine is noisy.
func BenchmarkThroughput(b *testing.B) {
	f := newServer(b, Config{})
	wtClient, wtServer, _ := f.pair(b, nil)
	rawClient := f.dialRaw(b, "moq-lite-04")
	rawServer, _ := f.accept(b)
	for _, size := range []struct {
		name  string
		bytes int
	}{{"1KiB", 1 << 10}, {"64KiB", 64 << 10}} {
		b.Run("frame="+size.name+"/webtransport", func(b *testing.B) { benchStream(b, wtClient, wtServer, size.bytes) })
		b.Run("frame="+size.name+"/rawquic", func(b *testing.B) { benchStream(b, rawClient, rawServer, size.bytes) })
	}
}

// benchStream sends b.N frames of size bytes from one side to the other.
func benchStream(b *testing.B, from, to transport.Conn, size int) {
	ctx := context.Background()
	received := make(chan int64, 1)
	go func() {
		rs, err := to.AcceptUniStream(ctx)
		if err != nil {
			b.Error(err)
			received <- 0
			return
		}
		n, err := io.Copy(io.Discard, rs)
		if err != nil {
			b.Error(err)
		}
		received <- n
	}()
	frame := make([]byte, size)
	b.SetBytes(int64(size))
	b.ResetTimer()
	s, err := from.OpenUniStream(ctx)
	if err != nil {
		b.Fatal(err)
	}
	for range b.N {
		if _, err := s.Write(frame); err != nil {
			b.Fatal(err)
		}
	}
	if err := s.Close(); err != nil {
		b.Fatal(err)
	}
	if n := <-received; n != int64(b.N*size) {
		b.Fatalf("received %d bytes, want %d", n, b.N*size)
	}
	b.StopTimer()
}
