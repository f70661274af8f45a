package pattern

import (
	"encoding/hex"
	"testing"
)

func TestPayloadFormula(t *testing.T) {
	p := Payload(3, 12)
	// First 8 bytes: the index; then (3*131 + j*7 + 13) mod 256 for j = 8..11: 462, 469, 476, 483.
	want := "0000000000000003" + "ced5dce3"
	if got := hex.EncodeToString(p); got != want {
		t.Fatalf("Payload(3, 12) = %s, want %s", got, want)
	}
	// Short frames carry only the pattern: j=0,1,2 for i=1 → 144, 151, 158.
	if got := hex.EncodeToString(Payload(1, 3)); got != "90979e" {
		t.Fatalf("Payload(1, 3) = %s", got)
	}
}

// The digest of 100 groups × 100 frames of 1 KiB must equal the value the
// gomoqt interop peers' self-test pins (computed independently there).
func TestExpectMatchesPeerDigest(t *testing.T) {
	if got := Expect(100, 100, 1024).SHA256; got != "e8cdd9860b277b83603140009184a5f71784a60bf714a5c8811d8df42e95880f" {
		t.Fatalf("digest %s", got)
	}
}

func TestCollectorOrdersGroups(t *testing.T) {
	var a, b Collector
	a.Add(1, []byte("x"))
	a.Add(2, []byte("y"))
	b.Add(2, []byte("y"))
	b.Add(1, []byte("x"))
	if a.Summary(0) != b.Summary(0) {
		t.Fatal("arrival order must not matter")
	}
	if s := a.Summary(1); s.Frames != 1 || s.Groups != 1 {
		t.Fatalf("limit: %+v", s)
	}
}

// A Digest fed in order reports what a Collector reports, without keeping
// the frames.
func TestDigestMatchesCollector(t *testing.T) {
	var c Collector
	var d Digest
	for g := range 5 {
		for f := range 3 {
			p := Payload(uint64(g*3+f), 100)
			c.Add(uint64(g+1), p)
			d.Add(uint64(g+1), p)
		}
	}
	if d.Summary() != c.Summary(0) {
		t.Fatalf("digest %+v, collector %+v", d.Summary(), c.Summary(0))
	}
	var empty Digest
	var none Collector
	if empty.Summary() != none.Summary(0) {
		t.Fatal("empty digests differ")
	}
}
