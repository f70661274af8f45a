// Package discovery finds moq-lite broadcasts by name, with no address in
// hand: through a Kademlia DHT (github.com/libp2p/go-libp2p-kad-dht), through
// mDNS on the local network, and through tickets.
//
// Applications usually reach it through package moq: moq.WithDHT with a DHT
// from NewDHT (then Publish provides names and Moq.Subscribe looks them
// up), moq.WithMDNS, and moq's tickets (Moq.Ticket, moq.ParseTicket,
// Moq.SubscribeTicket). The pieces here (Key, Find, Provider, StartMDNS,
// Ticket) are for using them without a moq node.
//
// # DHT records
//
// A publisher announces that it serves a broadcast by putting a provider
// record into the DHT under the broadcast name's key (see Key):
//
//	Key(name) = CIDv1(codec raw, multihash sha2-256("moq:" + CleanPath(name)))
//
// CleanPath is broadcast.CleanPath, so "/cam/" and "cam" share a key. A CID
// is what the DHT's content-routing API takes; raw + sha2-256 is the most
// widely supported CID shape and needs no IPLD. The "moq:" prefix keeps the
// key apart from the CID of a block whose content happens to be the bare
// name, should the records ever go into a shared DHT.
//
// Provider records cannot be withdrawn: they expire on the peers that hold
// them after their validity (kad-dht's records.ProvideValidity; RecordTTL
// sets it for a DHT made here). So a Provider re-provides every interval
// while the broadcast is live and simply stops when it ends; consumers must
// expect stale providers (a peer that went away, or one that no longer
// publishes the name) and move on to the next one.
//
// NewDHT builds a private DHT for moqp2p nodes (protocol prefix "/moq", so
// its RPCs never mix with the public IPFS Amino DHT) with record lifetimes
// that suit live media rather than files.
//
// # Tickets
//
// A Ticket names a broadcast and the peer that publishes it. Its text form
// comes in two shapes (see Ticket.String and ParseTicket):
//
//	<peer-id>/<broadcast>                 no addresses: resolved by peer routing (DHT)
//	moq<base32 of a compact encoding>     with addresses, for networks without a DHT
//
// Both are single words of URL- and shell-safe characters, so they survive
// copy and paste, chat clients and QR codes.
//
// # mDNS
//
// StartMDNS runs go-libp2p's mDNS service and hands the peers it finds on
// the local network to a callback (by default: connect to them). It is
// opt-in: mDNS multicasts on every multicast-capable interface.
package discovery
