package p2pstream

import (
	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"
)

// addr is a libp2p connection endpoint as a net.Addr. Relayed connections
// have circuit addresses that no IP net.Addr can hold, so the multiaddr is
// kept whole; the peer ID makes it dialable.
type addr struct {
	ma   ma.Multiaddr
	peer peer.ID
}

// Network is "libp2p" for every transport underneath.
func (a addr) Network() string { return "libp2p" }

// String is the multiaddr with the peer's /p2p component.
func (a addr) String() string {
	if a.ma == nil {
		return "/p2p/" + a.peer.String()
	}
	return a.ma.String() + "/p2p/" + a.peer.String()
}
