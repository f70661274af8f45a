package main

import (
	"errors"
	"fmt"
	"testing"

	"github.com/moqp2p/moqp2p/broadcast"
	"github.com/moqp2p/moqp2p/transport"
	"github.com/moqp2p/moqp2p/transport/websocket"
)

// A refusal of our credentials, which ends a kept link instead of
// redialing, is the peer closing as Unauthorized or a WebSocket server
// answering 401/403; our own close, other codes and a busy server are not.
func TestIsRefusal(t *testing.T) {
	ws := func(status int) error {
		return fmt.Errorf("dial: %w", &websocket.HandshakeError{StatusCode: status, Err: errors.New("x")})
	}
	for err, want := range map[error]bool{
		&transport.ConnError{Remote: true, Code: uint32(broadcast.CodeUnauthorized)}:  true,
		&transport.ConnError{Remote: false, Code: uint32(broadcast.CodeUnauthorized)}: false,
		&transport.ConnError{Remote: true, Code: uint32(broadcast.CodeCancel)}:        false,
		ws(403):                          true,
		ws(401):                          true,
		ws(429):                          false,
		ws(503):                          false,
		errors.New("connection refused"): false,
	} {
		if got := isRefusal(err); got != want {
			t.Errorf("isRefusal(%v) = %v, want %v", err, got, want)
		}
	}
}
