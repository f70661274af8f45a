// Resource scopes: each inbound connection gets a resource-manager scope before
// its ALPN is known, and flow-control window growth is charged to it.

package p2pquic

import (
	"context"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/p2p/transport/quicreuse"
	"github.com/quic-go/quic-go"
)

// connContext is the host's ConnContext: the resource manager opens a scope
// for each inbound connection, which whoever accepts it moves to the peer.
func (t *Transport) connContext(rm network.ResourceManager) func(context.Context, *quic.ClientInfo) (context.Context, error) {
	return func(ctx context.Context, ci *quic.ClientInfo) (context.Context, error) {
		addr, err := quicreuse.ToQuicMultiaddr(ci.RemoteAddr, quic.Version1)
		if err != nil {
			addr = nil // let the resource manager decide without an address
		}
		scope, err := rm.OpenConnection(network.DirInbound, false, addr)
		if err != nil {
			return ctx, err
		}
		ctx = network.WithConnManagementScope(ctx, scope)
		// A moq-lite connection that admit keeps has the scope released
		// by its own close hook instead (takeScope).
		vk := &verifiedKey{}
		vk.stopScope = context.AfterFunc(ctx, scope.Done)
		return context.WithValue(ctx, verifiedKeyKey{}, vk), nil
	}
}

// allowWindowIncrease charges flow-control window growth to the connection's
// resource scope, as libp2p does for its own connections, so a peer cannot
// make the host buffer more than the resource manager allows.
func allowWindowIncrease(c *quic.Conn, delta uint64) bool {
	scope, err := network.UnwrapConnManagementScope(c.Context())
	if err != nil {
		return true // a connection accepted without a scope: nothing to charge
	}
	return scope.ReserveMemory(int(delta), network.ReservationPriorityMedium) == nil
}
