//go:build !linux

package websocket

import "net"

// peerAcks: only Linux reports TCP acknowledgements here; elsewhere only
// the peer's messages count as signs of life.
func peerAcks(*net.TCPConn) func() uint64 { return nil }
