package websocket

import (
	"io"
	"sync/atomic"
	"testing"
	"time"
)

// BenchmarkThroughput measures client→server throughput over loopback:
// one stream fed with 1 KiB or 64 KiB writes, and many short uni streams
// (1 KiB and FIN each, like small moq-lite groups). MB/s is payload.
func BenchmarkThroughput(b *testing.B) {
	for _, fr := range []Framing{FramingQmux, FramingLegacy} {
		for _, size := range []int{1 << 10, 64 << 10} {
			b.Run(string(fr)+"/stream-"+sizeName(size), func(b *testing.B) {
				benchOneStream(b, fr, size)
			})
		}
		b.Run(string(fr)+"/uni-streams-1KiB", func(b *testing.B) {
			benchUniStreams(b, fr, 1<<10)
		})
	}
}

func sizeName(n int) string {
	if n >= 1<<10 {
		return itoa(n>>10) + "KiB"
	}
	return itoa(n) + "B"
}

func itoa(n int) string {
	if n < 10 {
		return string(rune('0' + n))
	}
	return itoa(n/10) + string(rune('0'+n%10))
}

func benchPair(b *testing.B, fr Framing) (client, server *Conn) {
	b.Helper()
	return dialPair(b, &Config{Framings: []Framing{fr}}, &Config{Framings: []Framing{fr}})
}

func benchOneStream(b *testing.B, fr Framing, size int) {
	c, s := benchPair(b, fr)
	ctx := testCtx(b)
	st, err := c.OpenUniStream(ctx)
	if err != nil {
		b.Fatal(err)
	}
	mustWrite(b, st, []byte{0}) // opens the stream at the server
	rs, err := s.AcceptUniStream(ctx)
	if err != nil {
		b.Fatal(err)
	}
	done := make(chan int64)
	go func() {
		n, _ := io.Copy(io.Discard, rs)
		done <- n
	}()
	p := make([]byte, size)
	b.SetBytes(int64(size))
	b.ResetTimer()
	for b.Loop() {
		if _, err := st.Write(p); err != nil {
			b.Fatal(err)
		}
	}
	_ = st.Close()
	if n := <-done; n < int64(b.N*size) {
		b.Fatalf("received %d of %d bytes", n, b.N*size)
	}
}

func benchUniStreams(b *testing.B, fr Framing, size int) {
	c, s := benchPair(b, fr)
	ctx := testCtx(b)
	var received atomic.Int64
	done := make(chan error, 1)
	go func() { // reads streams until the connection closes
		buf := make([]byte, size)
		for {
			rs, err := s.AcceptUniStream(ctx)
			if err != nil {
				done <- nil
				return
			}
			if _, err := io.ReadFull(rs, buf); err != nil {
				done <- err
				return
			}
			if _, err := rs.Read(buf); err != io.EOF {
				done <- err
				return
			}
			received.Add(1)
		}
	}()
	p := make([]byte, size)
	b.SetBytes(int64(size))
	var sent int64
	for b.Loop() {
		st, err := c.OpenUniStream(ctx)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := st.Write(p); err != nil {
			b.Fatal(err)
		}
		_ = st.Close()
		sent++
	}
	for received.Load() < sent && ctx.Err() == nil {
		time.Sleep(time.Millisecond)
	}
	b.StopTimer()
	_ = c.CloseWithError(0, "")
	if err := <-done; err != nil || received.Load() != sent {
		b.Fatalf("received %d of %d streams: %v", received.Load(), sent, err)
	}
}
