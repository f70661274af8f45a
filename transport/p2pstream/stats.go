package p2pstream

import (
	"github.com/quic-go/quic-go"

	"github.com/moqp2p/moqp2p/internal/quicstats"
	"github.com/moqp2p/moqp2p/transport"
)

var _ transport.StatsConn = (*Conn)(nil)

// Stats reports the counters of the libp2p connection the session runs on
// when it is a QUIC connection: shared with everything else libp2p carries
// on it (identify, the DHT, other sessions). Over TCP and relayed
// connections libp2p exposes no counters, and only Transport is set.
func (c *Conn) Stats() transport.Stats {
	var qc *quic.Conn
	if c.lconn.As(&qc) && qc != nil {
		return quicstats.Named("p2pstream", qc.ConnectionStats())
	}
	return transport.Stats{Transport: "p2pstream"}
}
