package server

import (
	"errors"
	"fmt"
	"net"
	"strconv"
	"syscall"
)

// listenAttempts bounds how many port pairs Listen tries for a port it
// chooses: a free UDP port whose TCP twin is taken is common on a busy
// host, ten in a row is not.
const listenAttempts = 10

// listenTCP is net.Listen; tests make it fail.
var listenTCP = net.Listen

// Listen opens what ListenAndServe serves on addr: a UDP socket
// (WebTransport, raw QUIC) and a TCP listener (WebSocket, HTTP) on the
// same port. With port 0 (or none) it picks a free UDP port and takes
// another pair if that port's TCP twin is taken. Both accept connections
// from the moment Listen returns, so a caller that must know the server
// is listening (a test, a program printing its address) calls Listen and
// then Serve, as with net.Listen and http.Server.Serve.
func Listen(addr string) (net.PacketConn, net.Listener, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, nil, fmt.Errorf("server: listen: %w", err)
	}
	attempts := 1
	if port == "" || port == "0" {
		attempts = listenAttempts
	}
	for i := 1; ; i++ {
		udp, err := net.ListenPacket("udp", addr)
		if err != nil {
			return nil, nil, err
		}
		port := udp.LocalAddr().(*net.UDPAddr).Port
		tcp, err := listenTCP("tcp", net.JoinHostPort(host, strconv.Itoa(port)))
		if err == nil {
			return udp, tcp, nil
		}
		_ = udp.Close()
		if i >= attempts || !errors.Is(err, syscall.EADDRINUSE) {
			return nil, nil, fmt.Errorf("server: TCP port %d for WebSocket: %w", port, err)
		}
	}
}
