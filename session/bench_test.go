package session

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"testing"

	"github.com/quic-go/quic-go"

	"github.com/moqp2p/moqp2p/broadcast"
	"github.com/moqp2p/moqp2p/internal/loadtest"
	"github.com/moqp2p/moqp2p/internal/wire"
	"github.com/moqp2p/moqp2p/transport/cert"
	"github.com/moqp2p/moqp2p/transport/rawquic"
)

// BenchmarkThroughput moves b.N frames from one publisher to one subscriber
// over loopback QUIC, through moq-lite sessions ("moq") and, in the same run,
// as the same bytes on raw quic-go streams ("raw": one uni stream per group,
// each frame size-prefixed, read back frame by frame). Both keep at most
// `window` groups ahead of the reader so neither outruns its peer's memory.
// Compare the two MB/s figures of one run; the machine is noisy.
func BenchmarkThroughput(b *testing.B) {
	for _, c := range []struct {
		name           string
		size, perGroup int
	}{{"1KiB", 1 << 10, 100}, {"64KiB", 64 << 10, 4}} {
		b.Run("frame="+c.name+"/moq", func(b *testing.B) { benchMoq(b, c.size, c.perGroup) })
		b.Run("frame="+c.name+"/raw", func(b *testing.B) { benchRaw(b, c.size, c.perGroup) })
	}
}

const window = 16 // groups the producer may run ahead of the consumer

func report(b *testing.B, size int) {
	b.SetBytes(int64(size))
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "frames/s")
}

func benchMoq(b *testing.B, size, perGroup int) {
	p := newPair(b, "moq-lite-04", Config{}, Config{})
	bc := broadcast.New(broadcast.Config{})
	tp, _ := bc.CreateTrack(broadcast.Track{Name: "t"})
	_, _ = p.origin.Publish("bench", bc.Consume())
	ctx := context.Background()
	tc, err := p.sub.Subscribe(ctx, "bench", "t", SubscribeOptions{})
	if err != nil {
		b.Fatal(err)
	}
	defer tc.Close()
	b.ResetTimer()
	if err := loadtest.Pump(ctx, tp, tc, make([]byte, size), b.N, perGroup, window); err != nil {
		b.Fatal(err)
	}
	b.StopTimer()
	report(b, size)
}

func benchRaw(b *testing.B, size, perGroup int) {
	crt, _ := cert.SelfSigned()
	ln, err := quic.ListenAddr("127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{crt}, NextProtos: []string{"bench"}}, rawquic.Config())
	if err != nil {
		b.Fatal(err)
	}
	defer ln.Close()
	ctx := context.Background()
	client, err := quic.DialAddr(ctx, ln.Addr().String(), &tls.Config{InsecureSkipVerify: true, NextProtos: []string{"bench"}}, rawquic.Config())
	if err != nil {
		b.Fatal(err)
	}
	defer client.CloseWithError(0, "")
	server, err := ln.Accept(ctx)
	if err != nil {
		b.Fatal(err)
	}
	defer server.CloseWithError(0, "")
	payload := make([]byte, size)
	credit := make(chan struct{}, window)
	for range window {
		credit <- struct{}{}
	}
	b.ResetTimer()
	go func() {
		var hdr []byte
		for written := 0; written < b.N; {
			<-credit
			st, err := server.OpenUniStreamSync(ctx)
			if err != nil {
				return
			}
			w := bufio.NewWriterSize(st, 32<<10)
			for i := 0; i < perGroup && written < b.N; i++ {
				_, _ = w.Write(wire.AppendFrameHeader(hdr[:0], uint64(size)))
				_, _ = w.Write(payload)
				written++
			}
			_ = w.Flush()
			_ = st.Close()
		}
	}()
	for read := 0; read < b.N; {
		st, err := client.AcceptUniStream(ctx)
		if err != nil {
			b.Fatal(err)
		}
		r := bufio.NewReaderSize(st, 16<<10)
		for {
			n, err := wire.ReadVarint(r)
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				b.Fatal(err)
			}
			f := make([]byte, n) // the moq side keeps every frame too
			if _, err := io.ReadFull(r, f); err != nil {
				b.Fatal(fmt.Errorf("frame %d: %w", read, err))
			}
			read++
		}
		credit <- struct{}{}
	}
	b.StopTimer()
	report(b, size)
}
