package discovery

import (
	"github.com/ipfs/go-cid"
	mh "github.com/multiformats/go-multihash"

	"github.com/moqp2p/moqp2p/broadcast"
)

// KeyPrefix is prepended to a broadcast name before hashing it into a DHT key.
const KeyPrefix = "moq:"

// Key is the DHT key under which the publishers of a broadcast are recorded:
// CIDv1 with codec raw over the sha2-256 multihash of KeyPrefix followed by
// the cleaned name (broadcast.CleanPath). Every moqp2p node derives the same
// key for the same name.
func Key(name string) cid.Cid {
	sum, err := mh.Sum([]byte(KeyPrefix+broadcast.CleanPath(name)), mh.SHA2_256, -1)
	if err != nil { // sha2-256 is always registered
		panic(err)
	}
	return cid.NewCidV1(cid.Raw, sum)
}
