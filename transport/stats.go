package transport

import "time"

// Stats are a connection's counters, for adaptive bitrate and monitoring.
type Stats struct {
	RTT           time.Duration // smoothed round-trip time; 0 if unknown
	MinRTT        time.Duration
	BytesSent     uint64 // on the wire, retransmissions included
	BytesReceived uint64
	BytesLost     uint64
	PacketsLost   uint64
	// CongestionWindow is the sender's window in bytes; 0 if unknown.
	CongestionWindow uint64
}

// StatsConn is implemented by connections that can report Stats. Transports
// without such counters (libp2p streams) do not implement it.
type StatsConn interface {
	Stats() Stats
}
