package broadcast

import (
	"errors"
	"fmt"
)

// Code is a moq-lite error code. The values are the ones moq-lite puts on the
// wire (stream resets and session close), so an error from this package can be
// sent to a peer unchanged and a peer's code can be surfaced as an *Error.
type Code uint32

// moq-lite error codes, as the Rust moq-lite crate numbers them (its
// error.rs); docs/wire.md#error-codes.
const (
	CodeCancel           Code = 0
	CodeOld              Code = 2
	CodeTimeout          Code = 3
	CodeTransport        Code = 4
	CodeDecode           Code = 5
	CodeUnauthorized     Code = 6
	CodeVersion          Code = 9
	CodeUnexpectedStream Code = 10
	CodeBoundsExceeded   Code = 11
	CodeDuplicate        Code = 12
	CodeNotFound         Code = 13
	CodeWrongSize        Code = 14
	CodeProtocol         Code = 15
	CodeUnexpectedMsg    Code = 16
	CodeUnsupported      Code = 17
	CodeEncode           Code = 18
	CodeDropped          Code = 24
	CodeClosed           Code = 25
	CodeCacheFull        Code = 26
	// CodeApp is the first application code: application code n is CodeApp+n.
	CodeApp Code = 64
)

var codeNames = map[Code]string{
	CodeCancel: "cancelled", CodeOld: "too old", CodeTimeout: "timeout", CodeTransport: "transport",
	CodeDecode: "decode error", CodeUnauthorized: "unauthorized", CodeVersion: "version",
	CodeUnexpectedStream: "unexpected stream", CodeBoundsExceeded: "bounds exceeded",
	CodeDuplicate: "duplicate", CodeNotFound: "not found", CodeWrongSize: "wrong size",
	CodeProtocol: "protocol violation", CodeUnexpectedMsg: "unexpected message",
	CodeUnsupported: "unsupported", CodeEncode: "encode error", CodeDropped: "dropped", CodeClosed: "closed",
	CodeCacheFull: "evicted",
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
// a local lookup failure and for a peer's NotFound reset alike.
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

// Is reports whether target is an *Error with the same code.
func (e *Error) Is(target error) bool {
	t, ok := target.(*Error)
	return ok && t.Code == e.Code
}

// Sentinel errors. Compare with errors.Is; the codes travel on the wire.
var (
	// ErrCancelled: the other side stopped caring (normal cancellation).
	ErrCancelled = &Error{Code: CodeCancel}
	// ErrClosed: the object was finished or closed; writing to it is an error.
	ErrClosed = &Error{Code: CodeClosed}
	// ErrNotFound: no such broadcast, track or group.
	ErrNotFound = &Error{Code: CodeNotFound}
	// ErrDuplicate: a track name, group sequence or path that is already taken.
	ErrDuplicate = &Error{Code: CodeDuplicate}
	// ErrWrongSize: a frame ended before (or after) its declared size.
	ErrWrongSize = &Error{Code: CodeWrongSize}
	// ErrTooLarge: a frame or message over a configured limit.
	ErrTooLarge = &Error{Code: CodeBoundsExceeded}
	// ErrEvicted: a consumer fell behind the cache and the data it wanted is gone.
	ErrEvicted = &Error{Code: CodeCacheFull}
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
// nil, or CodeProtocol otherwise.
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
