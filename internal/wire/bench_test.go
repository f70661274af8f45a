package wire

import (
	"bufio"
	"bytes"
	"testing"
	"time"
)

var sinkU64 uint64

func BenchmarkAppendVarint(b *testing.B) {
	buf := make([]byte, 0, 64)
	for i := 0; b.Loop(); i++ {
		buf = AppendVarint(buf[:0], uint64(i)<<20)
	}
}

func BenchmarkParseVarint(b *testing.B) {
	in := AppendVarint(nil, 1<<40)
	for b.Loop() {
		v, _, _ := ParseVarint(in)
		sinkU64 += v
	}
}

func BenchmarkReadVarint(b *testing.B) {
	in := AppendVarint(nil, 1<<40)
	r := bytes.NewReader(in)
	for b.Loop() {
		r.Reset(in)
		v, _ := ReadVarint(r)
		sinkU64 += v
	}
}

// BenchmarkAppendGroupAndFrames builds what a publisher writes for a group:
// stream type, GROUP header and 10 frame headers (payloads are written by
// the caller, straight from its buffers).
func BenchmarkAppendGroupAndFrames(b *testing.B) {
	buf := make([]byte, 0, 256)
	g := &Group{SubscribeID: 7, Sequence: 123456}
	for b.Loop() {
		buf = AppendUniStreamType(buf[:0], UniGroup)
		var err error
		if buf, err = AppendMessage(buf, Lite04, g); err != nil {
			b.Fatal(err)
		}
		for j := range 10 {
			buf = AppendFrameHeader(buf, uint64(1000+j*100))
		}
	}
}

// BenchmarkReadGroupHeader is the receiving side: stream type and GROUP
// header from a bufio.Reader.
func BenchmarkReadGroupHeader(b *testing.B) {
	in := AppendUniStreamType(nil, UniGroup)
	in, _ = AppendMessage(in, Lite04, &Group{SubscribeID: 7, Sequence: 123456})
	br := bytes.NewReader(in)
	r := bufio.NewReader(br)
	var g Group
	for b.Loop() {
		br.Reset(in)
		r.Reset(br)
		if _, err := ReadUniStreamType(r, Lite04); err != nil {
			b.Fatal(err)
		}
		if err := ReadMessage(r, Lite04, &g, DefaultMaxMessage); err != nil {
			b.Fatal(err)
		}
	}
}

func benchSubscribe() *Subscribe {
	return &Subscribe{ID: 42, Broadcast: "demo/bbb", Track: "video", Priority: 2,
		Ordered: true, MaxLatency: time.Second, Start: GroupAt(5)}
}

func BenchmarkAppendSubscribe(b *testing.B) {
	buf := make([]byte, 0, 256)
	m := benchSubscribe()
	for b.Loop() {
		var err error
		if buf, err = AppendMessage(buf[:0], Lite04, m); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkReadSubscribe(b *testing.B) {
	in, _ := AppendMessage(nil, Lite04, benchSubscribe())
	br := bytes.NewReader(in)
	r := bufio.NewReader(br)
	var m Subscribe
	for b.Loop() {
		br.Reset(in)
		r.Reset(br)
		if err := ReadMessage(r, Lite04, &m, DefaultMaxMessage); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkDecodeAnnounce(b *testing.B) {
	in, _ := AppendMessage(nil, Lite04, &Announce{Active: true, Suffix: "bbb", Hops: []uint64{7, 300, 1 << 50}})
	var m Announce
	for b.Loop() {
		if _, err := DecodeMessage(in, Lite04, &m); err != nil {
			b.Fatal(err)
		}
	}
}

func TestHotPathsNoAlloc(t *testing.T) {
	buf := make([]byte, 0, 256)
	g := &Group{SubscribeID: 7, Sequence: 123456}
	in, _ := AppendMessage(nil, Lite04, g)
	br := bytes.NewReader(in)
	r := bufio.NewReader(br)
	var got Group
	allocs := testing.AllocsPerRun(100, func() {
		buf = AppendUniStreamType(buf[:0], UniGroup)
		buf, _ = AppendMessage(buf, Lite04, g)
		buf = AppendFrameHeader(buf, 1500)
		if _, err := DecodeMessage(in, Lite04, &got); err != nil {
			t.Fatal(err)
		}
		br.Reset(in)
		r.Reset(br)
		if err := ReadMessage(r, Lite04, &got, DefaultMaxMessage); err != nil {
			t.Fatal(err)
		}
	})
	if allocs != 0 {
		t.Fatalf("%v allocs per group header round", allocs)
	}
}
