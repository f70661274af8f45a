package discovery

import (
	"encoding/base32"
	"encoding/binary"
	"fmt"
	"net/url"
	"strings"

	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"

	"github.com/moqp2p/moqp2p/broadcast"
)

// Ticket names a broadcast and the peer that publishes it, optionally with
// the peer's addresses. Its text form (String, ParseTicket) is one word of
// URL- and shell-safe characters:
//
//	12D3KooW…/room/cam          short: <peer-id>/<broadcast>
//	moqaeaz…                    with addresses: "moq" + base32 (see below)
//
// The short form holds no address: the subscriber finds the peer through
// its peer routing (the DHT), or already knows it. The peer ID is the
// usual base58 text; the broadcast follows the first '/' verbatim except
// that bytes outside A–Z a–z 0–9 - . _ ~ / are percent-encoded (%XX).
//
// The form with addresses is for networks without a DHT. It is "moq"
// followed by the unpadded RFC 4648 base32 (lower case; either case is
// accepted) of:
//
//	version (one byte, 0)
//	uvarint length, peer ID bytes
//	uvarint length, broadcast name (UTF-8 or any bytes)
//	uvarint count, then per address: uvarint length, multiaddr bytes
//
// so it never contains a '/', which is how ParseTicket tells the forms apart.
type Ticket struct {
	// Peer publishes the broadcast.
	Peer peer.ID
	// Broadcast is the broadcast's name (path), as given to Publish.
	Broadcast string
	// Addrs are addresses to dial Peer at; empty in short tickets.
	Addrs []ma.Multiaddr
}

// Ticket limits: ParseTicket refuses longer text (given, or as String would
// print it) and more addresses.
const (
	MaxTicketLen   = 4096
	MaxTicketAddrs = 32
)

const (
	ticketPrefix  = "moq"
	ticketVersion = 0
)

var ticketEncoding = base32.StdEncoding.WithPadding(base32.NoPadding)

// AddrInfo is the peer and addresses to connect to.
func (t Ticket) AddrInfo() peer.AddrInfo { return peer.AddrInfo{ID: t.Peer, Addrs: t.Addrs} }

// Short returns the ticket without its addresses.
func (t Ticket) Short() Ticket { return Ticket{Peer: t.Peer, Broadcast: t.Broadcast} }

// String is the ticket's text: the short form without addresses, the
// base32 form with them (see Ticket). The broadcast name is cleaned
// (broadcast.CleanPath).
func (t Ticket) String() string {
	name := broadcast.CleanPath(t.Broadcast)
	if len(t.Addrs) == 0 {
		return t.Peer.String() + "/" + escapeName(name)
	}
	b := []byte{ticketVersion}
	b = appendBytes(b, []byte(t.Peer))
	b = appendBytes(b, []byte(name))
	b = binary.AppendUvarint(b, uint64(len(t.Addrs)))
	for _, a := range t.Addrs {
		b = appendBytes(b, a.Bytes())
	}
	return ticketPrefix + strings.ToLower(ticketEncoding.EncodeToString(b))
}

// MarshalText implements encoding.TextMarshaler (String).
func (t Ticket) MarshalText() ([]byte, error) { return []byte(t.String()), nil }

// UnmarshalText implements encoding.TextUnmarshaler (ParseTicket).
func (t *Ticket) UnmarshalText(text []byte) error {
	p, err := ParseTicket(string(text))
	if err != nil {
		return err
	}
	*t = p
	return nil
}

// ParseTicket reads either form of a ticket (see Ticket), ignoring
// surrounding white space. The broadcast name comes back cleaned
// (broadcast.CleanPath) and must not be empty. Errors match
// ErrInvalidTicket.
func ParseTicket(s string) (Ticket, error) {
	s = strings.TrimSpace(s)
	if len(s) > MaxTicketLen {
		return Ticket{}, fmt.Errorf("%w: longer than %d bytes", ErrInvalidTicket, MaxTicketLen)
	}
	if i := strings.IndexByte(s, '/'); i >= 0 {
		return parseShort(s[:i], s[i+1:])
	}
	if len(s) < len(ticketPrefix) || !strings.EqualFold(s[:len(ticketPrefix)], ticketPrefix) {
		return Ticket{}, fmt.Errorf("%w: neither <peer-id>/<broadcast> nor moq…", ErrInvalidTicket)
	}
	b, err := ticketEncoding.DecodeString(strings.ToUpper(s[len(ticketPrefix):]))
	if err != nil {
		return Ticket{}, fmt.Errorf("%w: %v", ErrInvalidTicket, err)
	}
	return decodeTicket(b)
}

func parseShort(id, name string) (Ticket, error) {
	p, err := peer.Decode(id)
	if err != nil {
		return Ticket{}, fmt.Errorf("%w: peer ID: %v", ErrInvalidTicket, err)
	}
	name, err = url.PathUnescape(name)
	if err != nil {
		return Ticket{}, fmt.Errorf("%w: broadcast: %v", ErrInvalidTicket, err)
	}
	return newTicket(p, name, nil)
}

func decodeTicket(b []byte) (Ticket, error) {
	r := reader{b: b}
	if v := r.byte(); v != ticketVersion {
		return Ticket{}, fmt.Errorf("%w: version %d", ErrInvalidTicket, v)
	}
	id := r.bytes()
	name := r.bytes()
	n := r.uvarint()
	if n > MaxTicketAddrs {
		return Ticket{}, fmt.Errorf("%w: %d addresses", ErrInvalidTicket, n)
	}
	var addrs []ma.Multiaddr
	for range n {
		raw := r.bytes()
		if r.err != nil {
			break
		}
		a, err := ma.NewMultiaddrBytes(raw)
		if err != nil {
			return Ticket{}, fmt.Errorf("%w: address: %v", ErrInvalidTicket, err)
		}
		addrs = append(addrs, a)
	}
	switch {
	case r.err != nil:
		return Ticket{}, fmt.Errorf("%w: %v", ErrInvalidTicket, r.err)
	case len(r.b) > 0:
		return Ticket{}, fmt.Errorf("%w: %d trailing bytes", ErrInvalidTicket, len(r.b))
	}
	p, err := peer.IDFromBytes(id)
	if err != nil {
		return Ticket{}, fmt.Errorf("%w: peer ID: %v", ErrInvalidTicket, err)
	}
	return newTicket(p, string(name), addrs)
}

func newTicket(p peer.ID, name string, addrs []ma.Multiaddr) (Ticket, error) {
	// A multihash can be a valid peer ID in bytes yet have a text form that
	// peer.Decode refuses (found by FuzzParseTicket): accept only IDs whose
	// text form reads back.
	if q, err := peer.Decode(p.String()); err != nil || q != p {
		return Ticket{}, fmt.Errorf("%w: peer ID %s has no readable text form", ErrInvalidTicket, p)
	}
	name = broadcast.CleanPath(name)
	if name == "" {
		return Ticket{}, fmt.Errorf("%w: empty broadcast name", ErrInvalidTicket)
	}
	t := Ticket{Peer: p, Broadcast: name, Addrs: addrs}
	// Percent-encoding can triple a name (found by FuzzParseTicket): what
	// parses must print within the limit too.
	if n := len(t.String()); n > MaxTicketLen {
		return Ticket{}, fmt.Errorf("%w: %d bytes as text, more than %d", ErrInvalidTicket, n, MaxTicketLen)
	}
	return t, nil
}

// escapeName percent-encodes every byte of a broadcast name but the URL
// unreserved characters and '/'.
func escapeName(name string) string {
	const hex = "0123456789ABCDEF"
	var b strings.Builder
	for i := 0; i < len(name); i++ {
		c := name[i]
		if isUnreserved(c) || c == '/' {
			b.WriteByte(c)
			continue
		}
		b.WriteByte('%')
		b.WriteByte(hex[c>>4])
		b.WriteByte(hex[c&15])
	}
	return b.String()
}

func isUnreserved(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' ||
		c == '-' || c == '.' || c == '_' || c == '~'
}

func appendBytes(b, v []byte) []byte {
	return append(binary.AppendUvarint(b, uint64(len(v))), v...)
}

// reader decodes the binary ticket; the first error sticks.
type reader struct {
	b   []byte
	err error
}

func (r *reader) fail(what string) {
	if r.err == nil {
		r.err = fmt.Errorf("truncated or malformed %s", what)
	}
	r.b = nil
}

func (r *reader) byte() byte {
	if len(r.b) == 0 {
		r.fail("version")
		return 0
	}
	c := r.b[0]
	r.b = r.b[1:]
	return c
}

func (r *reader) uvarint() uint64 {
	v, n := binary.Uvarint(r.b)
	if n <= 0 {
		r.fail("length")
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *reader) bytes() []byte {
	n := r.uvarint()
	if r.err != nil || n > uint64(len(r.b)) {
		r.fail("field")
		return nil
	}
	v := r.b[:n]
	r.b = r.b[n:]
	return v
}
