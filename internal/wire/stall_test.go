package wire

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"runtime"
	"testing"
)

var errStalled = errors.New("stalled")

// stallReader yields its bytes, then fails as a stream would whose peer
// stopped sending and was cut off.
type stallReader struct{ r *bytes.Reader }

func (s stallReader) Read(p []byte) (int, error) {
	if s.r.Len() == 0 {
		return 0, errStalled
	}
	return s.r.Read(p)
}

// A message's length is the peer's claim: a reader that stalls after a few
// bytes of a body declared near the limit must not have made the codec
// allocate the whole body.
func TestStalledBodyIsNotAllocated(t *testing.T) {
	const declared = 60000
	sent := bytes.Repeat([]byte{'x'}, 100)
	wirebytes := append(AppendVarint(nil, declared), sent...)
	var before, after runtime.MemStats
	const reads = 50
	var errs int
	runtime.GC()
	runtime.ReadMemStats(&before)
	for range reads {
		br := bufio.NewReaderSize(stallReader{bytes.NewReader(wirebytes)}, 128)
		var m Subscribe
		if err := ReadMessage(br, Lite04, &m, 1<<16); errors.Is(err, errStalled) {
			errs++
		}
	}
	runtime.ReadMemStats(&after)
	if errs != reads {
		t.Fatalf("%d of %d reads ended with the stream's error", errs, reads)
	}
	perRead := (after.TotalAlloc - before.TotalAlloc) / reads
	if perRead > 8<<10 {
		t.Errorf("a stalled message of %d declared bytes (%d sent) cost %d bytes of allocation, want under 8 KiB", declared, len(sent), perRead)
	}
}

// The growing copy still reads a large body whole, in pieces of any size.
func TestLargeBodyInPieces(t *testing.T) {
	m := AnnouncePlease{Prefix: string(bytes.Repeat([]byte{'p'}, 50000))}
	b, err := AppendMessage(nil, Lite04, &m)
	if err != nil {
		t.Fatal(err)
	}
	var got AnnouncePlease
	if err := ReadMessage(bufio.NewReaderSize(io.MultiReader(iotestHalf(b)...), 16), Lite04, &got, 1<<16); err != nil {
		t.Fatal(err)
	}
	if got != m {
		t.Fatal("body read in pieces differs")
	}
}

// iotestHalf splits b into readers of growing sizes.
func iotestHalf(b []byte) []io.Reader {
	var rs []io.Reader
	for n := 1; len(b) > 0; n *= 3 {
		k := min(n, len(b))
		rs = append(rs, bytes.NewReader(b[:k]))
		b = b[k:]
	}
	return rs
}
