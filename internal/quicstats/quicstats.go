// Package quicstats converts quic-go's connection counters into the
// transport's, for the transports built on quic-go.
package quicstats

import (
	"github.com/quic-go/quic-go"

	"github.com/moqp2p/moqp2p/transport"
)

// Of is st as transport.Stats: the smoothed RTT as RTT, and the counters
// both report.
func Of(st quic.ConnectionStats) transport.Stats {
	return transport.Stats{
		RTT: st.SmoothedRTT, MinRTT: st.MinRTT,
		BytesSent: st.BytesSent, BytesReceived: st.BytesReceived,
		BytesLost: st.BytesLost, PacketsLost: st.PacketsLost,
		CongestionWindow: st.CongestionWindow,
	}
}
