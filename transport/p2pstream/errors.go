package p2pstream

import (
	"errors"
	"fmt"

	"github.com/libp2p/go-libp2p/core/network"

	"github.com/moqp2p/moqp2p/transport"
)

// ErrClosed is returned by a Transport's calls after Close.
var ErrClosed = errors.New("p2pstream: transport closed")

// ErrConnLost is the cause of a session whose control stream ended without a
// CLOSE message: the peer or the libp2p connection went away. It is not a
// *transport.ConnError, because nobody chose a code; it matches
// transport.ErrConnLost.
var ErrConnLost = fmt.Errorf("p2pstream: %w", transport.ErrConnLost)

// moq-lite codes this package sends or reports on its own account
// (broadcast.Code values; transport does not import broadcast).
const (
	codeCancel           uint32 = 0
	codeTransport        uint32 = 4
	codeDecode           uint32 = 5
	codeUnexpectedStream uint32 = 10
	codeBoundsExceeded   uint32 = 11
	codeDuplicate        uint32 = 12
	codeProtocol         uint32 = 15
	codeUnsupported      uint32 = 17
	codeClosed           uint32 = 25
)

// fromLibp2pCode turns a libp2p stream reset code into a moq-lite code.
// moq-lite codes travel unchanged, except the few that libp2p itself uses
// when it resets a stream (resource manager refusals, failed protocol
// negotiation, shutdown), which would otherwise surface as meaningless
// application codes. A moq-lite peer sending one of those values (all in
// moq-lite's application range) is misread; none of ours do.
func fromLibp2pCode(c network.StreamErrorCode) uint32 {
	switch c {
	case network.StreamProtocolNegotiationFailed:
		return codeUnsupported
	case network.StreamResourceLimitExceeded, network.StreamRateLimited:
		return codeBoundsExceeded
	case network.StreamProtocolViolation, network.StreamCodeOutOfRange:
		return codeProtocol
	case network.StreamSupplanted, network.StreamGarbageCollected, network.StreamShutdown, network.StreamGated:
		return codeTransport
	case codeSessionGone:
		return codeClosed
	}
	return uint32(c)
}
