package wire

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"testing"
)

func TestVarintEdges(t *testing.T) {
	for _, tc := range []struct {
		v   uint64
		hex string
	}{
		{0, "00"},
		{63, "3f"},
		{64, "40 40"},
		{16383, "7f ff"},
		{16384, "80 00 40 00"},
		{1<<30 - 1, "bf ff ff ff"},
		{1 << 30, "c0 00 00 00 40 00 00 00"},
		{MaxVarint, "ff ff ff ff ff ff ff ff"},
		// RFC 9000 appendix A.1 examples.
		{151288809941952652, "c2 19 7c 5e ff 14 e8 8c"},
		{494878333, "9d 7f 3e 7d"},
		{15293, "7b bd"},
		{37, "25"},
	} {
		want := unhex(t, tc.hex)
		if got := AppendVarint(nil, tc.v); !bytes.Equal(got, want) {
			t.Errorf("AppendVarint(%d) = % x, want % x", tc.v, got, want)
		}
		if n := VarintLen(tc.v); n != len(want) {
			t.Errorf("VarintLen(%d) = %d, want %d", tc.v, n, len(want))
		}
		v, n, err := ParseVarint(append(want, 0xaa))
		if err != nil || v != tc.v || n != len(want) {
			t.Errorf("ParseVarint(% x) = %d, %d, %v", want, v, n, err)
		}
		v, err = ReadVarint(bytes.NewReader(want))
		if err != nil || v != tc.v {
			t.Errorf("ReadVarint(% x) = %d, %v", want, v, err)
		}
		for i := 1; i < len(want); i++ {
			if _, _, err := ParseVarint(want[:i]); !errors.Is(err, ErrShort) {
				t.Errorf("ParseVarint(% x) truncated: %v", want[:i], err)
			}
			if _, err := ReadVarint(bytes.NewReader(want[:i])); !errors.Is(err, ErrShort) || !errors.Is(err, io.ErrUnexpectedEOF) {
				t.Errorf("ReadVarint(% x) truncated: %v", want[:i], err)
			}
		}
	}
}

func TestVarintNonMinimalAccepted(t *testing.T) {
	// RFC 9000 §16: "the two-byte sequence 0x40 0x25 also decodes to 37".
	for _, h := range []string{"40 25", "80 00 00 25", "c0 00 00 00 00 00 00 25"} {
		b := unhex(t, h)
		v, n, err := ParseVarint(b)
		if err != nil || v != 37 || n != len(b) {
			t.Errorf("ParseVarint(%s) = %d, %d, %v", h, v, n, err)
		}
	}
	// Non-minimal lengths are fine inside messages too, and re-encode minimal.
	var g Group
	b := unhex(t, "c0 00 00 00 00 00 00 06 40 01 80 00 00 02")
	if _, err := DecodeMessage(b, Lite03, &g); err != nil || g != (Group{1, 2}) {
		t.Fatalf("non-minimal group: %+v, %v", g, err)
	}
	out, _ := AppendMessage(nil, Lite03, &g)
	if want := unhex(t, "02 01 02"); !bytes.Equal(out, want) {
		t.Fatalf("re-encode % x, want % x", out, want)
	}
}

func TestVarintTooLarge(t *testing.T) {
	for _, v := range []uint64{1 << 62, 1<<64 - 1} {
		if n := VarintLen(v); n != 0 {
			t.Errorf("VarintLen(%d) = %d, want 0", v, n)
		}
		if b := AppendVarint([]byte{9}, v); !bytes.Equal(b, []byte{9}) {
			t.Errorf("AppendVarint(%d) appended % x", v, b[1:])
		}
		// Encoders refuse instead of writing garbage.
		b, err := AppendMessage([]byte{9}, Lite04, &Group{SubscribeID: v})
		if !errors.Is(err, ErrInvalid) || !bytes.Equal(b, []byte{9}) {
			t.Errorf("AppendMessage group %d: % x, %v", v, b, err)
		}
	}
}

func TestReadVarintEOF(t *testing.T) {
	if _, err := ReadVarint(bytes.NewReader(nil)); err != io.EOF {
		t.Fatalf("empty: %v, want io.EOF", err)
	}
	if _, _, err := ParseVarint(nil); !errors.Is(err, ErrShort) {
		t.Fatalf("ParseVarint(nil): %v", err)
	}
	boom := errors.New("boom")
	r := bufio.NewReader(io.MultiReader(bytes.NewReader([]byte{0x40}), errReader{boom}))
	if _, err := ReadVarint(r); !errors.Is(err, boom) {
		t.Fatalf("transport error: %v", err)
	}
}

type errReader struct{ err error }

func (e errReader) Read([]byte) (int, error) { return 0, e.err }

func TestVarintNoAlloc(t *testing.T) {
	buf := make([]byte, 0, 64)
	in := unhex(t, "c0 00 00 00 40 00 00 00")
	r := bytes.NewReader(in)
	allocs := testing.AllocsPerRun(100, func() {
		buf = AppendVarint(buf[:0], 1<<40)
		buf = AppendFrameHeader(buf, 1200)
		if _, _, err := ParseVarint(in); err != nil {
			t.Fatal(err)
		}
		r.Reset(in)
		if _, err := ReadVarint(r); err != nil {
			t.Fatal(err)
		}
	})
	if allocs != 0 {
		t.Fatalf("%v allocs", allocs)
	}
}
