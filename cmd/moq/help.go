package main

// examples are the command lines each command's help ends with, where a
// reader who skimmed the flags looks for something to copy. The test
// TestDocumentedFlagsExist checks every flag named here (and in README.md)
// against the command's flags.
var examples = map[string]string{
	"pub": `
  # on one machine: pub prints "fingerprint: <hex>" and "listening: <url>" on stderr
  moq pub --broadcast demo --listen moql://127.0.0.1:4443 --wait
  moq sub --broadcast demo --connect moql://127.0.0.1:4443 --fingerprint <hex>

  # a file over libp2p (sub --connect takes the printed /p2p/ address)
  moq pub --broadcast file --listen /ip4/127.0.0.1/udp/4001/quic-v1 --stdin --wait < movie.ts

  # live, 30 frames/s, found by name through a DHT node (moq node prints its address)
  moq pub --broadcast demo --frames 0 --rate 30 --bootstrap /ip4/127.0.0.1/udp/4001/quic-v1/p2p/<node-id>

  # to a relay, which forwards it to its other clients
  moq pub --broadcast demo --connect moql://127.0.0.1:4443 --insecure --frames 0`,
	"sub": `
  moq sub --broadcast demo --connect moql://127.0.0.1:4443 --fingerprint <hex>   # as pub printed
  moq sub --broadcast demo --connect moql://127.0.0.1:4443 --insecure --count 100
  moq sub --broadcast file --connect /ip4/127.0.0.1/udp/4001/quic-v1/p2p/<peer-id> --out copy.ts
  moq sub --broadcast demo --bootstrap /ip4/127.0.0.1/udp/4001/quic-v1/p2p/<node-id>   # by name
  moq sub --ticket moq…   # a ticket pub printed`,
	"node": `
  moq node                                                                # a node on a random port
  moq node --listen /ip4/0.0.0.0/udp/4001/quic-v1 --identity node.key     # a bootstrap peer that keeps its address
  moq node --listen /ip4/0.0.0.0/udp/4001/quic-v1 --relay-service         # on a public address: helps peers behind NATs
  moq node --listen /ip4/0.0.0.0/udp/4001/quic-v1 --relay-service --relay-circuit-bytes 64MiB \
           --relay-max-reservations 16 --relay-allow <peer-id>            # its own limits; slots for known peers only`,
	"clock": `
  moq clock pub --listen moql://127.0.0.1:4443
  moq clock sub --connect moql://127.0.0.1:4443 --insecure --count 5`,
	"chat": `
  moq chat --name alice --listen moql://127.0.0.1:4443
  moq chat --name bob --connect moql://127.0.0.1:4443 --insecure
  moq chat --room team --bootstrap /ip4/127.0.0.1/udp/4001/quic-v1/p2p/<node-id>   # peers of a room find each other`,
	"stats": `
  moq pub --broadcast demo --listen moql://127.0.0.1:4443 --frames 0 --metrics 127.0.0.1:9464
  moq stats 127.0.0.1:9464`,
}
