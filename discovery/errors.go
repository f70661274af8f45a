package discovery

import "errors"

// Errors. They match with errors.Is.
var (
	// ErrNoProviders: no reachable peer served the broadcast.
	ErrNoProviders = errors.New("discovery: no provider serves the broadcast")
	// ErrInvalidTicket: the text is not a ticket (see ParseTicket).
	ErrInvalidTicket = errors.New("discovery: invalid ticket")
)
