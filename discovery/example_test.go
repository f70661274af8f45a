package discovery_test

import (
	"fmt"

	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"

	"github.com/moqp2p/moqp2p/discovery"
)

// A publisher hands out a ticket; a subscriber parses it and connects to
// the ticket's AddrInfo (moq.Moq.SubscribeTicket does both).
func ExampleTicket() {
	id, _ := peer.Decode("12D3KooWA4Xop1JaT3MHxwYMkCepYsv4iPVopMXwCz5iHYdBfeSB")
	t := discovery.Ticket{
		Peer:      id,
		Broadcast: "room/cam",
		Addrs:     []ma.Multiaddr{ma.StringCast("/ip4/192.0.2.7/udp/4001/quic-v1")},
	}

	// With a DHT, the short form is enough: addresses come from peer routing.
	fmt.Println(t.Short())
	// Without one, the ticket carries the addresses.
	full := t.String()
	fmt.Println(full)

	back, err := discovery.ParseTicket(full)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(back.Peer == id, back.Broadcast, back.Addrs)

	_, err = discovery.ParseTicket("not-a-ticket")
	fmt.Println(err)
	// Output:
	// 12D3KooWA4Xop1JaT3MHxwYMkCepYsv4iPVopMXwCz5iHYdBfeSB/room/cam
	// moqaataajaiaejcaa5ba677htqqxyoxbxiy45f4bglh4tldbg5fbvpr3xegmqjfkmnybbzg633nf5rwc3ibbmcmaaaca6iqed5bzubq
	// true room/cam [/ip4/192.0.2.7/udp/4001/quic-v1]
	// discovery: invalid ticket: neither <peer-id>/<broadcast> nor moq…
}

// The DHT key a broadcast name is provided under.
func ExampleKey() {
	fmt.Println(discovery.Key("cam"))
	fmt.Println(discovery.Key("/cam/") == discovery.Key("cam"))
	// Output:
	// bafkreidrwymrv5qocsiucm2s7fvl34jzma6eup6d67dfnldkdjh4jy5lty
	// true
}
