package rawquic

import (
	"testing"
	"time"

	"github.com/moqp2p/moqp2p/transport"
)

// BenchmarkIdleKeepAlive measures what dead-peer detection costs an idle
// connection with the default bound: the bytes both ends put on the wire
// (keep-alive PINGs and their ACKs, UDP/IP headers not counted) per
// second, reported as B/s (both directions together). Each iteration is a
// one-second idle window.
func BenchmarkIdleKeepAlive(b *testing.B) {
	client, server, _ := proxiedPair(b)
	time.Sleep(time.Second) // the handshake's own traffic settles
	sent := func() uint64 {
		return client.(transport.StatsConn).Stats().BytesSent + server.(transport.StatsConn).Stats().BytesSent
	}
	before, start := sent(), time.Now()
	for b.Loop() {
		time.Sleep(time.Second)
	}
	b.ReportMetric(float64(sent()-before)/time.Since(start).Seconds(), "B/s")
	b.ReportMetric(0, "ns/op")
}
