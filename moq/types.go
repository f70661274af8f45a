package moq

import (
	"github.com/moqp2p/moqp2p/discovery"
	"github.com/moqp2p/moqp2p/session"
	"github.com/moqp2p/moqp2p/transport/p2pquic"
)

// The names below are the lower packages' types under moq's name, so that
// an application configures a node, subscribes and passes tickets around
// importing moq (plus broadcast for the media, and go-libp2p's core types)
// without reaching into session, discovery or the transports. They are
// aliases: values mix freely with the originals.

// SubscribeOptions tune one subscription (priority, ordering, latency
// budget, group range, lossless back-pressure) for SubscribeWith; the zero
// value is what Subscribe uses. The fields are documented at
// session.SubscribeOptions.
type SubscribeOptions = session.SubscribeOptions

// Limits bound what one peer may make a session hold (groups,
// subscriptions, announcements, bytes), for WithLimits; zero fields take
// the defaults. The fields, defaults and worst cases are documented at
// session.Limits.
type Limits = session.Limits

// Ticket names a broadcast and its publisher (optionally with the
// publisher's addresses) in one copy-pasteable word: Moq.Ticket and
// Publication.Ticket make one, ParseTicket reads one, Moq.SubscribeTicket
// subscribes with one. The text forms are documented at discovery.Ticket.
type Ticket = discovery.Ticket

// ParseTicket reads either text form of a ticket (discovery.ParseTicket).
// Errors match discovery.ErrInvalidTicket.
func ParseTicket(s string) (Ticket, error) { return discovery.ParseTicket(s) }

// QUICTransport runs moq-lite on raw QUIC over a libp2p host's own UDP
// sockets. Make one with NewQUICTransport, build the host with it
// (HostConfig.QUIC for NewHost, or HostOptions(t) for libp2p.New), then
// pass it to New with WithQUIC(t).
type QUICTransport = p2pquic.Transport

// QUICConfig configures NewQUICTransport; the zero value is ready to use.
// The fields are documented at p2pquic.Config.
type QUICConfig = p2pquic.Config

// NewQUICTransport makes a QUICTransport. It does nothing until the host
// is built with it (NewHost, HostOptions or its Option) and the node with
// WithQUIC.
func NewQUICTransport(cfg QUICConfig) *QUICTransport { return p2pquic.New(cfg) }
