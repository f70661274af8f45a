package websocket

import (
	"net"
	"net/netip"
)

// addr stands in for an endpoint whose TCP address is unknown (a custom
// HTTP transport that hides it); it carries whatever text is known.
type addr string

// Network is "websocket".
func (addr) Network() string { return "websocket" }

func (a addr) String() string { return string(a) }

// parseAddr turns "ip:port" (http.Request.RemoteAddr) into a *net.TCPAddr,
// without name resolution.
func parseAddr(s string) net.Addr {
	if ap, err := netip.ParseAddrPort(s); err == nil {
		return net.TCPAddrFromAddrPort(ap)
	}
	return addr(s)
}
