package moq

import (
	"testing"
	"time"
)

// BenchmarkIdleSessionKeepAlive measures what an idle session between two
// nodes costs on the wire with the default dead-peer bound, both
// directions together, in B/s of UDP or TCP payload (IP headers and TCP
// ACKs not counted): over raw QUIC (QUIC PINGs and ACKs, plus the host's
// libp2p connection, which shares the proxy) and over libp2p streams on
// TCP (libp2p pings in yamux and Noise framing, plus libp2p's own
// traffic). Each iteration is a one-second idle window.
func BenchmarkIdleSessionKeepAlive(b *testing.B) {
	for _, tc := range []struct {
		name string
		udp  bool
	}{{"p2pquic", true}, {"p2pstream-tcp", false}} {
		b.Run(tc.name, func(b *testing.B) {
			var a, c *node
			if tc.udp {
				a, c = newNode(b), newNode(b)
			} else {
				a, c = newTCPNode(b), newTCPNode(b)
			}
			info, link := linkTo(b, c, tc.udp)
			if _, err := a.Connect(testCtx(b), info); err != nil {
				b.Fatal(err)
			}
			counter := link.(interface{ Bytes() int64 })
			time.Sleep(5 * time.Second) // identify, the handshakes and MTU discovery settle
			before, start := counter.Bytes(), time.Now()
			for b.Loop() {
				time.Sleep(time.Second)
			}
			b.ReportMetric(float64(counter.Bytes()-before)/time.Since(start).Seconds(), "B/s")
			b.ReportMetric(0, "ns/op")
		})
	}
}
