package discovery

import (
	"context"
	"iter"

	"github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/routing"
	mh "github.com/multiformats/go-multihash"
)

// RelayKeyName is the string hashed into RelayKey. Its prefix differs from
// KeyPrefix, so no broadcast name shares the relays' key.
const RelayKeyName = "moq-relay:v1"

// relayKey is computed once: every relay and every lookup uses it.
var relayKey = func() cid.Cid {
	sum, err := mh.Sum([]byte(RelayKeyName), mh.SHA2_256, -1)
	if err != nil { // sha2-256 is always registered
		panic(err)
	}
	return cid.NewCidV1(cid.Raw, sum)
}()

// RelayKey is the DHT key under which moqp2p relays (nodes that forward
// broadcasts for others) are recorded as providers: CIDv1 with codec raw
// over the sha2-256 multihash of RelayKeyName. A relay provides it for as
// long as it forwards; nodes that want a relay look it up (FindRelays).
func RelayKey() cid.Cid { return relayKey }

// ProvideRelay provides RelayKey now and then every interval, as Provide
// does a broadcast name, until stop is called, ctx ends or the Provider is
// closed.
func (p *Provider) ProvideRelay(ctx context.Context) (stop func()) {
	return p.provideKey(ctx, relayKey, "relay")
}

// FindRelays yields the peers recorded as relays in r, each once, as the
// lookup finds them, with Find's guarantees: it returns only after r's
// lookup has stopped, and records may be stale.
func FindRelays(ctx context.Context, r routing.ContentRouting) iter.Seq[peer.AddrInfo] {
	return findKey(ctx, r, relayKey)
}
