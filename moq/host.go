package moq

import (
	"github.com/libp2p/go-libp2p"

	"github.com/moqp2p/moqp2p/transport/p2pstream"
)

// HostOptions returns the libp2p options a host needs to run moqp2p well:
// q's socket sharing (so moq-lite QUIC connections use the host's UDP port;
// pass nil to run over libp2p streams only) and a resource manager whose
// stream limits allow one stream per group on the moq protocols. The host
// must listen for QUIC on an unspecified address (/ip4/0.0.0.0/udp/P/quic-v1)
// for q to share its socket. Pass the result to libp2p.New with your own
// options, then give q to New with WithQUIC.
func HostOptions(q *QUICTransport) []libp2p.Option {
	opts := []libp2p.Option{p2pstream.ResourceManager(0)}
	if q != nil {
		opts = append(opts, q.Option())
	}
	return opts
}
