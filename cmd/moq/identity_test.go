package main

import (
	"os"
	"path/filepath"
	"testing"
	"time"
)

// TestNodeIdentity: --identity FILE creates the key on the first run and
// gives the node the same peer ID on the next; a file that holds no key is
// a one-line error naming the flag.
func TestNodeIdentity(t *testing.T) {
	t.Parallel()
	file := filepath.Join(t.TempDir(), "key")
	peerID := func() string {
		n := start(t, "node", nil, "node", "--listen", "/ip4/127.0.0.1/udp/0/quic-v1", "--identity", file)
		id := field(n.stdout.await(t, n.name, "peer: ", 20*time.Second))
		n.interrupt(t)
		n.mustSucceed(t, 10*time.Second)
		return id
	}
	first := peerID()
	if second := peerID(); second != first {
		t.Fatalf("peer ID %s, then %s with the same --identity file", first, second)
	}
	if err := os.WriteFile(file, []byte("not a key"), 0o600); err != nil {
		t.Fatal(err)
	}
	expectOneLineError(t, "--identity: "+file+" holds no libp2p private key", 15*time.Second, "node", "--listen", "/ip4/127.0.0.1/udp/0/quic-v1", "--identity", file)
}
