package discovery

import (
	"time"

	dht "github.com/libp2p/go-libp2p-kad-dht"
	"github.com/libp2p/go-libp2p-kad-dht/records"
	"github.com/libp2p/go-libp2p/core/host"
)

// ProtocolPrefix is the protocol prefix of moqp2p's private DHT: its RPCs
// run on /moq/kad/1.0.0, apart from the public IPFS DHT (/ipfs/kad/1.0.0).
const ProtocolPrefix = "/moq"

// DefaultRecordTTL is how long a DHT made by NewDHT keeps a provider record
// (and the provider's addresses) that is not refreshed: three provide
// intervals, so a live broadcast survives two lost re-provides and an ended
// one disappears within a quarter of an hour.
const DefaultRecordTTL = 3 * DefaultProvideInterval

// NewDHT starts a Kademlia DHT on h for moqp2p: protocol prefix
// ProtocolPrefix, mode ModeAutoServer (a server unless the host knows it is
// unreachable, since moqp2p networks are often small or local) and provider
// records that expire after DefaultRecordTTL. opts come after these
// defaults, so they override them; for example tests on loopback add
// dht.Mode(dht.ModeServer) and RecordTTL with seconds. The caller closes the
// DHT, before closing h.
func NewDHT(h host.Host, opts ...dht.Option) (*dht.IpfsDHT, error) {
	defaults := []dht.Option{
		dht.ProtocolPrefix(ProtocolPrefix),
		dht.Mode(dht.ModeAutoServer),
		RecordTTL(DefaultRecordTTL),
	}
	return dht.New(h, append(defaults, opts...)...)
}

// RecordTTL makes the DHT keep the provider records it holds (and the
// providers' addresses that come with them) for d after their last refresh,
// and sweep expired ones every d. Expired records are never returned, swept
// or not. It sets kad-dht's provider-manager options
// (records.ProvideValidity, records.ProviderAddrTTL, records.CleanupInterval),
// replacing any given earlier with dht.ProviderManagerOpts.
func RecordTTL(d time.Duration) dht.Option {
	return dht.ProviderManagerOpts(
		records.ProvideValidity(d),
		records.ProviderAddrTTL(d),
		records.CleanupInterval(d),
	)
}
