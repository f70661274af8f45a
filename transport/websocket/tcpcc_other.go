//go:build !linux

package websocket

import "net"

// setCongestion does nothing here: the socket keeps the system's
// congestion control, which is not known.
func setCongestion(*net.TCPConn, string) (string, error) { return "", nil }
