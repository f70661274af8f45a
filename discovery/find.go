package discovery

import (
	"context"
	"iter"

	"github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/routing"
)

// Find yields the peers that provide the broadcast name in r (typically a
// DHT), each peer once, as the lookup finds them. It ends when the lookup
// completes, when ctx ends or when the caller stops iterating; it returns
// only after r's lookup has stopped. Records cannot be withdrawn, so a
// provider may be stale: gone, or no longer publishing name. A node that
// provides name itself may find itself.
func Find(ctx context.Context, r routing.ContentRouting, name string) iter.Seq[peer.AddrInfo] {
	return findKey(ctx, r, Key(name))
}

// findKey yields the providers of key in r, each once (see Find).
func findKey(ctx context.Context, r routing.ContentRouting, key cid.Cid) iter.Seq[peer.AddrInfo] {
	return func(yield func(peer.AddrInfo) bool) {
		ctx, cancel := context.WithCancel(ctx)
		found := r.FindProvidersAsync(ctx, key, 0) // 0: the whole lookup
		defer func() {
			cancel()
			for range found { // wait for the lookup to stop
			}
		}()
		seen := map[peer.ID]bool{}
		for info := range found {
			if ctx.Err() != nil {
				return
			}
			if seen[info.ID] {
				continue
			}
			seen[info.ID] = true
			if !yield(info) {
				return
			}
		}
	}
}
