//go:build linux

package websocket

import (
	"net"

	"golang.org/x/sys/unix"
)

// setCongestion sets tc's congestion control to name, unless name is
// CongestionSystem, and returns the one in use ("" if unknown). Linux
// switches an established connection's algorithm in place.
func setCongestion(tc *net.TCPConn, name string) (inUse string, err error) {
	if tc == nil {
		return "", nil
	}
	raw, err := tc.SyscallConn()
	if err != nil {
		return "", err
	}
	cerr := raw.Control(func(fd uintptr) {
		if name != CongestionSystem {
			err = unix.SetsockoptString(int(fd), unix.IPPROTO_TCP, unix.TCP_CONGESTION, name)
		}
		var gerr error
		if inUse, gerr = unix.GetsockoptString(int(fd), unix.IPPROTO_TCP, unix.TCP_CONGESTION); gerr != nil {
			inUse = ""
		}
	})
	if cerr != nil {
		return "", cerr
	}
	return inUse, err
}
