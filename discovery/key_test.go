package discovery_test

import (
	"crypto/sha256"
	"testing"

	"github.com/ipfs/go-cid"
	mh "github.com/multiformats/go-multihash"

	"github.com/moqp2p/moqp2p/discovery"
)

// The key is CIDv1(raw, sha2-256("moq:" + cleaned name)), stable across
// releases: other implementations derive it the same way.
func TestKey(t *testing.T) {
	k := discovery.Key("room/cam")
	if k.Version() != 1 || k.Type() != cid.Raw {
		t.Fatalf("key %s: version %d codec %#x, want CIDv1 raw", k, k.Version(), k.Type())
	}
	dec, err := mh.Decode(k.Hash())
	if err != nil {
		t.Fatal(err)
	}
	want := sha256.Sum256([]byte("moq:room/cam"))
	if dec.Code != mh.SHA2_256 || string(dec.Digest) != string(want[:]) {
		t.Fatalf("multihash %x (code %#x), want sha2-256 of \"moq:room/cam\"", dec.Digest, dec.Code)
	}
	if got := discovery.Key("/room//cam/"); !got.Equals(k) {
		t.Fatalf("uncleaned name gives %s, want %s", got, k)
	}
	if discovery.Key("room/cam2").Equals(k) {
		t.Fatal("different names share a key")
	}
	// Computed independently: "b" + base32(0x01 0x55 0x12 0x20 || sha256("moq:cam")).
	const golden = "bafkreidrwymrv5qocsiucm2s7fvl34jzma6eup6d67dfnldkdjh4jy5lty"
	if g := discovery.Key("cam").String(); g != golden {
		t.Fatalf("Key(\"cam\") = %s, want %s (the derivation must not change)", g, golden)
	}
}
