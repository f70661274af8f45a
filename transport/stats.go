package transport

import "time"

// Stats are a connection's counters, for adaptive bitrate and monitoring.
// Counters are cumulative since the connection started; a connection shared
// by several sessions (a WebTransport HTTP/3 connection, a libp2p
// connection under p2pstream) reports the whole connection's.
type Stats struct {
	// Transport names where the counters come from: "quic" (moql://),
	// "p2pquic", "webtransport", "websocket" or "p2pstream"; empty if
	// unknown.
	Transport string        `json:"transport,omitempty"`
	RTT       time.Duration `json:"rtt_ns"` // smoothed round-trip time; 0 if unknown
	MinRTT    time.Duration `json:"min_rtt_ns"`
	// LatestRTT is the last RTT sample and RTTVar the RTT's mean deviation
	// (RFC 9002); 0 if unknown.
	LatestRTT     time.Duration `json:"latest_rtt_ns"`
	RTTVar        time.Duration `json:"rtt_var_ns"`
	BytesSent     uint64        `json:"bytes_sent"` // on the wire, retransmissions included
	BytesReceived uint64        `json:"bytes_received"`
	// BytesLost and PacketsLost count what the sender declared lost; quic-go
	// takes a packet back when it arrives after all, so they may go down.
	BytesLost   uint64 `json:"bytes_lost"`
	PacketsLost uint64 `json:"packets_lost"`
	// PacketsSent and PacketsReceived count packets on the wire (0 where
	// the transport has no packets of its own: WebSocket).
	PacketsSent     uint64 `json:"packets_sent"`
	PacketsReceived uint64 `json:"packets_received"`
	// CongestionWindow is the sender's window in bytes; 0 if unknown.
	CongestionWindow uint64 `json:"congestion_window"`
}

// StatsConn is implemented by connections that can report Stats.
type StatsConn interface {
	Stats() Stats
}

// LossRate is the share of the packets sent between two samples of one
// connection that were declared lost meanwhile (0 when none were sent): the
// loss rate over that window.
func LossRate(prev, cur Stats) float64 {
	if cur.PacketsSent <= prev.PacketsSent || cur.PacketsLost <= prev.PacketsLost {
		return 0
	}
	return min(1, float64(cur.PacketsLost-prev.PacketsLost)/float64(cur.PacketsSent-prev.PacketsSent))
}
