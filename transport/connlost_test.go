package transport_test

import (
	"errors"
	"testing"

	"github.com/moqp2p/moqp2p/broadcast"
	"github.com/moqp2p/moqp2p/transport"
	"github.com/moqp2p/moqp2p/transport/p2pstream"
	"github.com/moqp2p/moqp2p/transport/websocket"
)

// Every transport's word for a vanished peer matches transport.ErrConnLost
// and is a Transport failure, not the peer's protocol violation.
func TestConnLostIsOneSentinel(t *testing.T) {
	for name, err := range map[string]error{
		"transport": transport.ErrConnLost,
		"websocket": websocket.ErrConnLost,
		"p2pstream": p2pstream.ErrConnLost,
		"wrapped":   transport.Lost(errors.New("timeout: no recent network activity")),
	} {
		if !errors.Is(err, transport.ErrConnLost) {
			t.Errorf("%s: %v does not match transport.ErrConnLost", name, err)
		}
		if c := broadcast.CodeOf(err); c != broadcast.CodeTransport {
			t.Errorf("%s: CodeOf = %v, want %v", name, c, broadcast.CodeTransport)
		}
	}
	if got := websocket.ErrConnLost.Error(); got != "websocket: connection lost" {
		t.Errorf("websocket.ErrConnLost reads %q", got)
	}
}
