package wire

import (
	"errors"
	"fmt"
	"io"
)

// Sentinel errors. Every error returned by this package for malformed or
// unsupported input wraps exactly one of these, so callers can classify
// failures with errors.Is and map them to protocol error codes.
var (
	// ErrShort reports input that ended inside a varint or message. It
	// also matches io.ErrUnexpectedEOF.
	ErrShort = fmt.Errorf("message truncated: %w", io.ErrUnexpectedEOF)

	// ErrLong reports bytes left over after a message body was decoded.
	ErrLong = errors.New("trailing bytes in message")

	// ErrTooLarge reports a declared message length above the caller's
	// limit, or a body too large for its length field on encode.
	ErrTooLarge = errors.New("message too large")

	// ErrInvalid reports a field value that is not allowed: a status other
	// than 0 or 1, invalid UTF-8, an integer above MaxVarint on encode, too
	// many hops, and similar.
	ErrInvalid = errors.New("invalid field value")

	// ErrUnsupported reports a message or stream type that exists in
	// moq-lite but not in the version in use (or an unknown version).
	ErrUnsupported = errors.New("not supported in this version")

	// ErrUnknownStream reports a stream type that no supported version
	// defines.
	ErrUnknownStream = errors.New("unknown stream type")
)

// wrap adds the message name as context, keeping the sentinel reachable.
func wrap(what string, err error) error {
	if err == nil {
		return nil
	}
	return fmt.Errorf("wire: %s: %w", what, err)
}
