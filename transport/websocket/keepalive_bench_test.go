package websocket

import (
	"strings"
	"testing"
	"time"

	"github.com/moqp2p/moqp2p/internal/impair"
	"github.com/moqp2p/moqp2p/internal/testutil"
)

// BenchmarkIdleKeepAlive measures what dead-peer detection costs an idle
// WebSocket connection with the default bound: the bytes both ends write
// (pings and pongs with their WebSocket framing; TCP/IP headers and ACKs
// not counted) per second, both directions together. Each iteration is a
// one-second idle window.
func BenchmarkIdleKeepAlive(b *testing.B) {
	ts := newTestServer(b, nil)
	proxy, err := impair.NewTCPProxy(strings.TrimPrefix(ts.URL, "http://"), impair.Config{})
	if err != nil {
		b.Fatal(err)
	}
	defer proxy.Close()
	c, err := Dial(testCtx(b), "ws://"+proxy.Addr().String()+"/moq", &Config{Logger: testutil.Logger()})
	if err != nil {
		b.Fatal(err)
	}
	defer c.CloseWithError(0, "")
	ts.next(b)
	time.Sleep(time.Second) // the handshake and transport parameters settle
	before, start := proxy.Bytes(), time.Now()
	for b.Loop() {
		time.Sleep(time.Second)
	}
	b.ReportMetric(float64(proxy.Bytes()-before)/time.Since(start).Seconds(), "B/s")
	b.ReportMetric(0, "ns/op")
}
