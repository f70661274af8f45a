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
		LatestRTT: st.LatestRTT, RTTVar: st.MeanDeviation,
		BytesSent: st.BytesSent, BytesReceived: st.BytesReceived,
		BytesLost: st.BytesLost, PacketsLost: st.PacketsLost,
		PacketsSent: st.PacketsSent, PacketsReceived: st.PacketsReceived,
		CongestionWindow: st.CongestionWindow,
	}
}

// Named is Of with the transport's name set (see transport.Stats.Transport).
func Named(name string, st quic.ConnectionStats) transport.Stats {
	s := Of(st)
	s.Transport = name
	return s
}
