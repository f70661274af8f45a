package actor

import (
	"errors"

	"github.com/moqp2p/moqp2p/broadcast"
)

// ErrShutdown is returned by every request made after Shutdown began, and to
// connects still pending when it did.
var ErrShutdown = errors.New("moq: shut down")

// ErrDuplicate is returned when a broadcast name is already published: one
// name holds one publication until it is unpublished or its broadcast ends.
// It matches broadcast.ErrDuplicate too (and carries its code), so a caller
// that checks the model's sentinel is not surprised.
var ErrDuplicate error = duplicateError{}

type duplicateError struct{}

func (duplicateError) Error() string { return "moq: broadcast name already published" }
func (duplicateError) Unwrap() error { return broadcast.ErrDuplicate }

// ErrNilBroadcast refuses a Publish of a nil broadcast.
var ErrNilBroadcast = errors.New("moq: publish of a nil broadcast")

// ErrDialPanic wraps a panic in a dial, reported to every waiter instead of
// leaving them hanging.
var ErrDialPanic = errors.New("moq: dial panicked")

// ErrTooManySessions refuses a session from a peer that already holds
// Config.MaxSessionsPerPeer live sessions with this node.
var ErrTooManySessions = errors.New("moq: too many sessions with this peer")

// ErrTooManyDials fails a connect that needs a new dial while
// Config.MaxPendingDials dials are in flight.
var ErrTooManyDials = errors.New("moq: too many dials in flight")

// errStaleDial refuses a dial's connection the actor no longer waits for.
var errStaleDial = errors.New("moq: stale dial")
