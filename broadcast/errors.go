package broadcast

import (
	"context"
	"errors"
	"fmt"
)

// Code is a moq-lite error code. The values are the ones moq-lite puts on the
// wire (stream resets and session close), so an error from this package can be
// sent to a peer unchanged and a peer's code can be surfaced as an *Error.
type Code uint32

// moq-lite error codes, as the reference implementation numbers them
// (moq-dev/moq rs/moq-net/src/error.rs, to_code); docs/wire.md#error-codes.
// A code this package does not name still travels as an *Error of that code.
const (
	CodeCancel            Code = 0  // the other side stopped caring; not a failure
	CodeRequiredExtension Code = 1  // a required extension was not present
	CodeOld               Code = 2  // the group is older than the latest and dropped
	CodeTimeout           Code = 3  // opening or sending a stream took too long
	CodeTransport         Code = 4  // the QUIC or WebTransport connection failed
	CodeDecode            Code = 5  // a message could not be parsed
	CodeUnauthorized      Code = 6  // the token does not grant the path or operation
	CodeVersion           Code = 9  // no common version, or a feature it lacks
	CodeUnexpectedStream  Code = 10 // a stream type not expected here
	CodeBoundsExceeded    Code = 11 // a value or resource over a limit
	CodeDuplicate         Code = 12 // an ID, name or sequence already taken
	CodeNotFound          Code = 13 // no such broadcast, track or group at the peer
	CodeWrongSize         Code = 14 // a frame's payload disagreed with its size
	CodeProtocol          Code = 15 // the peer broke a protocol rule
	CodeUnexpectedMsg     Code = 16 // a valid message where it is not allowed
	CodeUnsupported       Code = 17 // a feature this endpoint does not implement
	CodeEncode            Code = 18 // a message could not be encoded for the version
	CodeTooManyParameters Code = 19 // a message carried more parameters than accepted
	CodeInvalidRole       Code = 20 // the peer acted against the role it set up with
	CodeUnknownALPN       Code = 21 // an ALPN this endpoint does not know
	CodeDropped           Code = 24 // the producer went away without finishing
	CodeClosed            Code = 25 // the handle was already closed
	// CodeLagged: the reader fell behind the group's cache bounds and the
	// frame it wanted was dropped (named CacheFull before).
	CodeLagged        Code = 26
	CodeFrameTooLarge Code = 27 // a frame larger than the receiver accepts
	// 28 is reserved (per-frame compression, removed in lite-05).
	CodeTimestampMismatch Code = 29 // a frame timestamp that does not fit its track's timescale
	// CodeUnroutable: a broadcast neither announced nor served on demand, so
	// there is no route to it. errors.Is(err, ErrNotFound) holds for it.
	CodeUnroutable Code = 30
	// CodeEvicted: a whole group dropped under memory pressure while still
	// within the publisher's window (unlike CodeOld); it can be fetched again.
	CodeEvicted Code = 31
	// CodeApp is the first application code: application code n is CodeApp+n.
	CodeApp Code = 64

	// Deprecated: use CodeLagged.
	CodeCacheFull = CodeLagged
)

var codeNames = map[Code]string{
	CodeCancel: "cancelled", CodeRequiredExtension: "extension required", CodeOld: "too old",
	CodeTimeout: "timeout", CodeTransport: "transport",
	CodeDecode: "decode error", CodeUnauthorized: "unauthorized", CodeVersion: "version",
	CodeUnexpectedStream: "unexpected stream", CodeBoundsExceeded: "bounds exceeded",
	CodeDuplicate: "duplicate", CodeNotFound: "not found", CodeWrongSize: "wrong size",
	CodeProtocol: "protocol violation", CodeUnexpectedMsg: "unexpected message",
	CodeUnsupported: "unsupported", CodeEncode: "encode error",
	CodeTooManyParameters: "too many parameters", CodeInvalidRole: "invalid role",
	CodeUnknownALPN: "unknown ALPN", CodeDropped: "dropped", CodeClosed: "closed",
	CodeLagged: "lagged", CodeFrameTooLarge: "frame too large",
	CodeTimestampMismatch: "timestamp mismatch", CodeUnroutable: "unroutable",
	CodeEvicted: "evicted",
}

func (c Code) String() string {
	if s, ok := codeNames[c]; ok {
		return s
	}
	if c >= CodeApp {
		return fmt.Sprintf("application error %d", c-CodeApp)
	}
	return fmt.Sprintf("error code %d", uint32(c))
}

// Error is an error with a moq-lite code. Two *Error values match under
// errors.Is when their codes are equal, so errors.Is(err, ErrNotFound) holds for
// a local lookup failure and for a peer's NotFound reset alike; it holds for
// an Unroutable one too (see ErrNotFound).
type Error struct {
	Code   Code
	Reason string // optional detail; not part of the identity
}

func (e *Error) Error() string {
	if e.Reason == "" {
		return "moq: " + e.Code.String()
	}
	return "moq: " + e.Code.String() + ": " + e.Reason
}

// Is reports whether target is an *Error with the same code, or is
// ErrNotFound's code while e is Unroutable.
func (e *Error) Is(target error) bool {
	t, ok := target.(*Error)
	return ok && (t.Code == e.Code || t.Code == CodeNotFound && e.Code == CodeUnroutable)
}

// Sentinel errors. Compare with errors.Is; the codes travel on the wire.
var (
	// ErrCancelled: the other side stopped caring (normal cancellation).
	ErrCancelled = &Error{Code: CodeCancel}
	// ErrClosed: the object was finished or closed; writing to it is an error.
	ErrClosed = &Error{Code: CodeClosed}
	// ErrNotFound: no such broadcast, track or group. errors.Is(err,
	// ErrNotFound) also holds for Unroutable (ErrUnroutable), which current
	// peers send instead of NotFound for a broadcast they neither announce
	// nor serve: to a subscriber both mean that it is not there.
	ErrNotFound = &Error{Code: CodeNotFound}
	// ErrUnroutable: a broadcast neither announced nor served on demand. It
	// matches ErrNotFound as well; the converse does not hold.
	ErrUnroutable = &Error{Code: CodeUnroutable}
	// ErrDuplicate: a track name, group sequence or path that is already taken.
	ErrDuplicate = &Error{Code: CodeDuplicate}
	// ErrWrongSize: a frame ended before (or after) its declared size.
	ErrWrongSize = &Error{Code: CodeWrongSize}
	// ErrTooLarge: a frame or message over a configured limit.
	ErrTooLarge = &Error{Code: CodeBoundsExceeded}
	// ErrLagged: a consumer fell behind the group's cache bounds and the
	// frame it wanted is gone.
	ErrLagged = &Error{Code: CodeLagged}
	// Deprecated: use ErrLagged. Its code is CodeLagged, not CodeEvicted.
	ErrEvicted = ErrLagged
	// ErrDropped: the producer went away without finishing.
	ErrDropped = &Error{Code: CodeDropped}
)

// ErrLoop is returned when a broadcast is published to an origin whose own hop
// ID is already in the broadcast's hop list: accepting it would route the
// broadcast in a circle.
var ErrLoop = errors.New("broadcast: loop: hop list already contains this origin")

// CodeOf returns the moq-lite code that best describes err: the code of an
// *Error in its chain, else the code an error in the chain carries itself
// (an ErrorCode method, as a transport's connection-close error has: the
// streams a closing session resets then say why it closed), CodeCancel for
// nil or a cancelled context, CodeTimeout for an expired deadline, or
// CodeProtocol otherwise.
func CodeOf(err error) Code {
	if err == nil {
		return CodeCancel
	}
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	var c interface{ ErrorCode() uint32 }
	if errors.As(err, &c) {
		return Code(c.ErrorCode())
	}
	switch {
	case errors.Is(err, context.DeadlineExceeded):
		return CodeTimeout
	case errors.Is(err, context.Canceled):
		return CodeCancel
	}
	return CodeProtocol
}

// AppError returns an error carrying application code n (wire code 64+n).
func AppError(n uint32, reason string) *Error {
	return &Error{Code: CodeApp + Code(n), Reason: reason}
}

// withReason returns a copy of a sentinel with a detail message.
func withReason(e *Error, format string, args ...any) *Error {
	return &Error{Code: e.Code, Reason: fmt.Sprintf(format, args...)}
}
