package actor

import "errors"

// ErrShutdown is returned by every request made after Shutdown began, and to
// connects still pending when it did.
var ErrShutdown = errors.New("moq: shut down")

// ErrDuplicate is returned when a broadcast name is already published: one
// name holds one publication until it is unpublished or its broadcast ends.
var ErrDuplicate = errors.New("moq: broadcast name already published")

// ErrDialPanic wraps a panic in a dial, reported to every waiter instead of
// leaving them hanging.
var ErrDialPanic = errors.New("moq: dial panicked")
