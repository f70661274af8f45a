package session

import "sync/atomic"

// Stats counts a session's media: payload bytes and frames of the groups it
// sent and received (transport overhead excluded; see transport.StatsConn
// for that).
type Stats struct {
	GroupsSent, GroupsReceived uint64
	FramesSent, FramesReceived uint64
	BytesSent, BytesReceived   uint64
	// DatagramsSent and DatagramsReceived count the groups among the above
	// that travelled as datagrams (moq-lite-05).
	DatagramsSent, DatagramsReceived uint64
}

type counters struct {
	groupsSent, groupsReceived       atomic.Uint64
	framesSent, framesReceived       atomic.Uint64
	bytesSent, bytesReceived         atomic.Uint64
	datagramsSent, datagramsReceived atomic.Uint64
}

// Stats returns the session's counters so far.
func (s *Session) Stats() Stats {
	c := &s.counters
	return Stats{
		GroupsSent: c.groupsSent.Load(), GroupsReceived: c.groupsReceived.Load(),
		FramesSent: c.framesSent.Load(), FramesReceived: c.framesReceived.Load(),
		BytesSent: c.bytesSent.Load(), BytesReceived: c.bytesReceived.Load(),
		DatagramsSent: c.datagramsSent.Load(), DatagramsReceived: c.datagramsReceived.Load(),
	}
}
