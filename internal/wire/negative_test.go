package wire

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"
	"time"
)

// reframe builds length || body for a hand-made body.
func reframe(body []byte) []byte { return append(AppendVarint(nil, uint64(len(body))), body...) }

// split returns the header length and body of an encoded sample: 1 type
// byte + 2 length bytes for SETUP, an optional type varint + length varint
// otherwise.
func split(t *testing.T, s sample) (hdr []byte, body []byte) {
	t.Helper()
	b := s.b
	switch s.p.(type) {
	case clientSetupPart, serverSetupPart:
		return b[:3], b[3:]
	case respPart:
		if s.v.typedSubscribeResponse() {
			_, k, _ := ParseVarint(b)
			_, n, _ := ParseVarint(b[k:])
			return b[:k+n], b[k+n:]
		}
	}
	_, n, err := ParseVarint(b)
	if err != nil {
		t.Fatal(err)
	}
	return b[:n], b[n:]
}

// withBody replaces the body of an encoded sample, fixing its length.
func withBody(t *testing.T, s sample, body []byte) []byte {
	hdr, _ := split(t, s)
	switch s.p.(type) {
	case clientSetupPart, serverSetupPart:
		return append([]byte{hdr[0], byte(len(body) >> 8), byte(len(body))}, body...)
	case respPart:
		if s.v.typedSubscribeResponse() {
			return append([]byte{hdr[0]}, reframe(body)...)
		}
	}
	return reframe(body)
}

func TestTruncatedEverywhere(t *testing.T) {
	for _, s := range samples(t) {
		if !isMessage(s.p) {
			continue
		}
		// The stream ends early: every proper prefix is ErrShort, except
		// the empty one, which is a clean end of stream when reading.
		for i := 0; i < len(s.b); i++ {
			cut := s.b[:i]
			if _, _, err := s.p.dec(cut, s.v); !errors.Is(err, ErrShort) {
				t.Errorf("%s: decode % x: %v, want ErrShort", s.name, cut, err)
			}
			for rname, r := range readers(cut) {
				_, err := s.p.read(r, s.v)
				if i == 0 {
					if err != io.EOF {
						t.Errorf("%s/%s: read empty: %v, want io.EOF", s.name, rname, err)
					}
				} else if !errors.Is(err, ErrShort) {
					t.Errorf("%s/%s: read % x: %v, want ErrShort", s.name, rname, cut, err)
				}
			}
		}
		// The length is right but the body is cut: still ErrShort, as every
		// field is mandatory.
		_, body := split(t, s)
		for i := 0; i < len(body); i++ {
			in := withBody(t, s, body[:i])
			if _, _, err := s.p.dec(in, s.v); !errors.Is(err, ErrShort) {
				t.Errorf("%s: body cut to % x: %v, want ErrShort", s.name, body[:i], err)
			}
		}
	}
}

func TestTrailingByte(t *testing.T) {
	for _, s := range samples(t) {
		if !isMessage(s.p) {
			continue
		}
		_, body := split(t, s)
		in := withBody(t, s, append(append([]byte(nil), body...), 0))
		if _, _, err := s.p.dec(in, s.v); !errors.Is(err, ErrLong) {
			t.Errorf("%s: decode with trailing byte: %v, want ErrLong", s.name, err)
		}
		for rname, r := range readers(in) {
			if _, err := s.p.read(r, s.v); !errors.Is(err, ErrLong) {
				t.Errorf("%s/%s: read with trailing byte: %v, want ErrLong", s.name, rname, err)
			}
		}
	}
}

// countingReader records how many bytes were pulled from it.
type countingReader struct {
	r *bytes.Reader
	n int
}

func (c *countingReader) ReadByte() (byte, error) {
	b, err := c.r.ReadByte()
	if err == nil {
		c.n++
	}
	return b, err
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += n
	return n, err
}

func TestTooLarge(t *testing.T) {
	// A declared length of 2^62-1 must fail before any allocation or read
	// of the body.
	in := append(AppendVarint(nil, MaxVarint), "payload"...)
	cr := &countingReader{r: bytes.NewReader(in)}
	err := ReadMessage(cr, Lite04, &Announce{}, 1<<20)
	if !errors.Is(err, ErrTooLarge) {
		t.Fatalf("err = %v, want ErrTooLarge", err)
	}
	if cr.n != 8 {
		t.Fatalf("read %d bytes, want only the 8-byte length", cr.n)
	}
	// Only the error is allocated, never a body buffer. AllocsPerRun counts
	// with GOMAXPROCS 1, so parallel tests do not leak into the figure.
	allocs := testing.AllocsPerRun(50, func() {
		_ = ReadMessage(&countingReader{r: bytes.NewReader(in)}, Lite04, &Announce{}, 1<<20)
	})
	if allocs > 32 { // the wrapped error and its text; -race adds a few
		t.Fatalf("%v allocations per rejected message", allocs)
	}
	// The limit is inclusive.
	b, _ := AppendMessage(nil, Lite04, &Goaway{URI: "abc"})
	if err := ReadMessage(bufio.NewReader(bytes.NewReader(b)), Lite04, &Goaway{}, 4); err != nil {
		t.Fatalf("at limit: %v", err)
	}
	if err := ReadMessage(bufio.NewReader(bytes.NewReader(b)), Lite04, &Goaway{}, 3); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("over limit: %v", err)
	}
	if _, err := ReadSubscribeResponse(bufio.NewReader(bytes.NewReader(unhex(t, "00 05 02 00 00 00 00"))), Lite03, 4); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("response over limit: %v", err)
	}
}

func TestBadStatus(t *testing.T) {
	for _, v := range all {
		for _, st := range []byte{2, 3, 0xff} {
			if st == 2 && v.announceOK() {
				continue // lite-05's restart, TestRestartStatus
			}
			body := []byte{st, 3, 'b', 'b', 'b'}
			if v.hasHopCount() {
				body = append(body, 0)
			}
			if _, err := DecodeMessage(reframe(body), v, &Announce{}); !errors.Is(err, ErrInvalid) {
				t.Errorf("%v status %d: %v, want ErrInvalid", v, st, err)
			}
		}
	}
}

func TestRestartStatus(t *testing.T) {
	// lite-05: status 2 replaces an earlier active and reads as active.
	var m Announce
	if _, err := DecodeMessage(unhex(t, "06 02 03 62 62 62 00"), Lite05, &m); err != nil || !m.Active || m.Suffix != "bbb" {
		t.Fatalf("restart: %+v %v", m, err)
	}
}

func TestOrderedLenient(t *testing.T) {
	// Rust decodes ordered as any non-zero; we re-encode it as 1.
	var m Subscribe
	in := unhex(t, "11 01 03 62 62 62 05 61 75 64 69 6f c8 05 43 e8 06 00")
	if _, err := DecodeMessage(in, Lite03, &m); err != nil || !m.Ordered {
		t.Fatalf("ordered 5: %+v, %v", m, err)
	}
	out, _ := AppendMessage(nil, Lite03, &m)
	if want := unhex(t, "11 01 03 62 62 62 05 61 75 64 69 6f c8 01 43 e8 06 00"); !bytes.Equal(out, want) {
		t.Fatalf("re-encode % x", out)
	}
}

func TestInvalidUTF8(t *testing.T) {
	bad := "\xff\xfe"
	enc := []struct {
		v Version
		m Message
	}{
		{Lite04, &AnnouncePlease{Prefix: bad}},
		{Lite02, &AnnounceInit{Suffixes: []string{"ok", bad}}},
		{Lite03, &Announce{Suffix: bad}},
		{Lite03, &Subscribe{Broadcast: "ok", Track: bad}},
		{Lite04, &Goaway{URI: bad}},
		{Lite03, &Fetch{Broadcast: bad}},
	}
	for _, tc := range enc {
		if b, err := AppendMessage([]byte{7}, tc.v, tc.m); !errors.Is(err, ErrInvalid) || len(b) != 1 {
			t.Errorf("encode %T: %v (% x)", tc.m, err, b)
		}
	}
	dec := []struct {
		v    Version
		m    Message
		body string
	}{
		{Lite03, &AnnouncePlease{}, "02 ff fe"},
		{Lite01, &AnnounceInit{}, "01 02 c3 28"},
		{Lite04, &Announce{}, "01 01 80 00"},
		{Lite01, &Subscribe{}, "00 01 ed 01 61 00"}, // lone 0xed
		{Lite04, &Goaway{}, "03 e2 82 28"},
		{Lite03, &Fetch{}, "01 61 01 c0 00 00"},
	}
	for _, tc := range dec {
		if _, err := DecodeMessage(reframe(unhex(t, tc.body)), tc.v, tc.m); !errors.Is(err, ErrInvalid) {
			t.Errorf("decode %T %s: %v, want ErrInvalid", tc.m, tc.body, err)
		}
	}
}

func TestHops(t *testing.T) {
	hops := make([]uint64, MaxHops+1)
	for i := range hops {
		hops[i] = uint64(i + 1)
	}
	for _, v := range v0304 {
		// 33 hops: rejected both ways.
		if _, err := AppendMessage(nil, v, &Announce{Active: true, Suffix: "a", Hops: hops}); !errors.Is(err, ErrInvalid) {
			t.Errorf("%v encode 33 hops: %v", v, err)
		}
		body := append([]byte{1, 1, 'a'}, AppendVarint(nil, uint64(len(hops)))...)
		if v.hasHopList() {
			for _, h := range hops {
				body = AppendVarint(body, h)
			}
		}
		if _, err := DecodeMessage(reframe(body), v, &Announce{}); !errors.Is(err, ErrInvalid) {
			t.Errorf("%v decode 33 hops: %v", v, err)
		}
		// 32 hops are fine.
		m := &Announce{Active: true, Suffix: "a", Hops: hops[:MaxHops]}
		if v == Lite03 {
			m.Hops = make([]uint64, MaxHops)
		}
		b, err := AppendMessage(nil, v, m)
		if err != nil {
			t.Fatalf("%v 32 hops: %v", v, err)
		}
		var got Announce
		if _, err := DecodeMessage(b, v, &got); err != nil || len(got.Hops) != MaxHops {
			t.Errorf("%v decode 32 hops: %d, %v", v, len(got.Hops), err)
		}
	}
	// A huge count must not allocate: the bytes are not there.
	body := append([]byte{1, 1, 'a'}, AppendVarint(nil, MaxVarint)...)
	if _, err := DecodeMessage(reframe(body), Lite04, &Announce{}); !errors.Is(err, ErrInvalid) {
		t.Errorf("huge hop count: %v", err)
	}
	// lite-04: zero IDs are refused on encode, accepted on decode.
	if _, err := AppendMessage(nil, Lite04, &Announce{Active: true, Suffix: "a", Hops: []uint64{5, 0}}); !errors.Is(err, ErrInvalid) {
		t.Errorf("encode zero hop: %v", err)
	}
	var got Announce
	if _, err := DecodeMessage(unhex(t, "05 01 01 61 01 00"), Lite04, &got); err != nil || len(got.Hops) != 1 || got.Hops[0] != 0 {
		t.Errorf("decode zero hop: %+v %v", got, err)
	}
	// lite-03 writes only the count, whatever the IDs.
	b, err := AppendMessage(nil, Lite03, &Announce{Active: true, Suffix: "a", Hops: []uint64{5, 0}})
	if want := unhex(t, "04 01 01 61 02"); err != nil || !bytes.Equal(b, want) {
		t.Errorf("lite-03 hop count: % x, %v", b, err)
	}
	// More hop-list entries declared than bytes present: short.
	if _, err := DecodeMessage(unhex(t, "05 01 01 61 03 07"), Lite04, &Announce{}); !errors.Is(err, ErrShort) {
		t.Errorf("hop list short: %v", err)
	}
}

func TestUnsupported(t *testing.T) {
	cases := []struct {
		v Version
		m Message
	}{
		{Lite03, &Goaway{}},
		{Lite01, &Goaway{}},
		{Lite03, &AnnounceInit{}},
		{Lite04, &AnnounceInit{}},
		{Lite02, &SubscribeDrop{}},
		{Lite02, &Probe{}},
		{Lite01, &Fetch{}},
		{Lite03, &SessionUpdate{}},
		{Version(0xff0dad06), &Subscribe{}},
		{Version(0), &Group{}},
		{Lite04, &Setup{}},
		{Lite04, &AnnounceOK{}},
		{Lite04, &Track{}},
		{Lite04, &TrackInfo{}},
		{Lite04, &SubscribeStart{}},
		{Lite03, &SubscribeEnd{}},
		{Lite05, &SubscribeOK{}},
		{Lite05, &AnnounceInit{}},
	}
	for _, tc := range cases {
		if _, err := AppendMessage(nil, tc.v, tc.m); !errors.Is(err, ErrUnsupported) {
			t.Errorf("append %T on %v: %v", tc.m, tc.v, err)
		}
		if _, err := DecodeMessage([]byte{0}, tc.v, tc.m); !errors.Is(err, ErrUnsupported) {
			t.Errorf("decode %T on %v: %v", tc.m, tc.v, err)
		}
		if err := ReadMessage(bufio.NewReader(bytes.NewReader([]byte{0})), tc.v, tc.m, 10); !errors.Is(err, ErrUnsupported) {
			t.Errorf("read %T on %v: %v", tc.m, tc.v, err)
		}
	}
	// Typed response 2 is lite-05's DROP; not defined before.
	if _, _, err := DecodeSubscribeResponse(unhex(t, "02 00"), Lite04); !errors.Is(err, ErrUnsupported) {
		t.Errorf("response type 2: %v", err)
	}
	if _, err := ReadSubscribeResponse(bufio.NewReader(bytes.NewReader(unhex(t, "02 00"))), Lite04, 10); !errors.Is(err, ErrUnsupported) {
		t.Errorf("read response type 2: %v", err)
	}
	if _, err := AppendSubscribeResponse(nil, Lite02, &SubscribeDrop{}); !errors.Is(err, ErrUnsupported) {
		t.Errorf("drop on lite-02: %v", err)
	}
	if _, err := AppendSubscribeResponse(nil, Lite05, &SubscribeOK{}); !errors.Is(err, ErrUnsupported) {
		t.Errorf("ok on lite-05: %v", err)
	}
	if _, err := AppendSubscribeResponse(nil, Lite04, &SubscribeEnd{}); !errors.Is(err, ErrUnsupported) {
		t.Errorf("end on lite-04: %v", err)
	}
	if _, _, err := DecodeSubscribeResponse(unhex(t, "03 00"), Lite05); !errors.Is(err, ErrUnsupported) {
		t.Errorf("response type 3 on lite-05: %v", err)
	}
	if _, err := AppendSubscribeResponse(nil, Lite03, &Subscribe{}); !errors.Is(err, ErrInvalid) {
		t.Errorf("subscribe as response: %v", err)
	}
	if _, err := AppendSubscribeResponse(nil, Lite03, nil); !errors.Is(err, ErrInvalid) {
		t.Errorf("nil response: %v", err)
	}
}

func TestSupported(t *testing.T) {
	for _, v := range all {
		old := v == Lite01 || v == Lite02
		if Supported(v, &AnnounceInit{}) != old || Supported(v, &SessionUpdate{}) != old ||
			Supported(v, &SubscribeDrop{}) == old || Supported(v, &Probe{}) == old ||
			Supported(v, &Goaway{}) != (v == Lite04 || v == Lite05) || !Supported(v, &Subscribe{}) ||
			Supported(v, &Setup{}) != (v == Lite05) || Supported(v, &TrackInfo{}) != (v == Lite05) ||
			Supported(v, &SubscribeOK{}) == (v == Lite05) {
			t.Errorf("%v: wrong support matrix", v)
		}
	}
	if Supported(0xff0dad06, &Group{}) {
		t.Errorf("unknown version supported")
	}
}

func TestStreamTypes(t *testing.T) {
	cases := []struct {
		v    Version
		in   uint64
		want error
	}{
		{Lite03, 1, nil},
		{Lite01, 2, nil},
		{Lite03, 3, nil},
		{Lite04, 4, nil},
		{Lite04, 5, nil},
		{Lite03, 5, ErrUnsupported}, // GOAWAY before lite-04
		{Lite02, 4, ErrUnsupported}, // PROBE before lite-03
		{Lite02, 3, ErrUnsupported},
		{Lite04, 0, ErrUnsupported}, // reserved session stream
		{Lite02, 0x20, ErrUnsupported},
		{Lite04, 6, ErrUnsupported}, // lite-05 Track
		{Lite05, 6, nil},
		{Lite05, 5, nil},
		{Lite04, 1000, ErrUnknownStream},
	}
	for _, tc := range cases {
		got, err := ReadStreamType(bytes.NewReader(AppendVarint(nil, tc.in)), tc.v)
		if !errors.Is(err, tc.want) || (tc.want == nil && err != nil) || uint64(got) != tc.in {
			t.Errorf("ReadStreamType(%d, %v) = %v, %v; want %v", tc.in, tc.v, got, err, tc.want)
		}
	}
	if _, err := ReadStreamType(bytes.NewReader(nil), Lite04); err != io.EOF {
		t.Errorf("empty stream: %v", err)
	}
	if _, err := ReadUniStreamType(bytes.NewReader([]byte{1}), Lite04); !errors.Is(err, ErrUnsupported) {
		t.Errorf("uni 1 on lite-04: %v", err)
	}
	if typ, err := ReadUniStreamType(bytes.NewReader([]byte{1}), Lite05); err != nil || typ != UniSetup {
		t.Errorf("uni 1 on lite-05: %v %v", typ, err)
	}
	if _, err := ReadUniStreamType(bytes.NewReader([]byte{2}), Lite05); !errors.Is(err, ErrUnknownStream) {
		t.Errorf("uni 2: %v", err)
	}
	if _, err := ReadUniStreamType(bytes.NewReader([]byte{0}), 5); !errors.Is(err, ErrUnsupported) {
		t.Errorf("uni 0 on unknown version: %v", err)
	}
	if s := StreamSubscribe.String() + UniGroup.String() + StreamType(9).String(); s != "subscribegroupstream(0x9)" {
		t.Errorf("names: %q", s)
	}
}

func TestVersions(t *testing.T) {
	for _, tc := range []struct {
		v    Version
		name string
		alpn string
	}{
		{Lite01, "moq-lite-01", ALPNCompat},
		{Lite02, "moq-lite-02", ALPNCompat},
		{Lite03, "moq-lite-03", "moq-lite-03"},
		{Lite04, "moq-lite-04", "moq-lite-04"},
		{Lite05, "moq-lite-05", "moq-lite-05"},
		{0xff0dad06, "0xff0dad06", ""},
	} {
		if tc.v.String() != tc.name || tc.v.ALPN() != tc.alpn {
			t.Errorf("%x: %q %q", uint64(tc.v), tc.v.String(), tc.v.ALPN())
		}
	}
	for alpn, want := range map[string]Version{"moq-lite-03": Lite03, "moq-lite-04": Lite04, "moq-lite-05": Lite05} {
		if v, ok := VersionForALPN(alpn); !ok || v != want || NeedsSetup(alpn) {
			t.Errorf("%s: %v %v", alpn, v, ok)
		}
	}
	for _, alpn := range []string{"moql", ""} {
		if _, ok := VersionForALPN(alpn); ok || !NeedsSetup(alpn) {
			t.Errorf("%q should need setup", alpn)
		}
	}
	for _, alpn := range []string{"h3", "moqt-17", "moq-lite-06-wip", "moq-lite-02"} {
		if _, ok := VersionForALPN(alpn); ok || NeedsSetup(alpn) {
			t.Errorf("%q should be neither", alpn)
		}
	}
}

func TestSetupErrors(t *testing.T) {
	// Wrong type byte.
	if _, err := DecodeClientSetup(unhex(t, "21 00 01 00"), &ClientSetup{}); !errors.Is(err, ErrInvalid) {
		t.Errorf("client with 0x21: %v", err)
	}
	if err := ReadServerSetup(bufio.NewReader(bytes.NewReader(unhex(t, "20 00 01 00"))), &ServerSetup{}); !errors.Is(err, ErrInvalid) {
		t.Errorf("server with 0x20: %v", err)
	}
	if _, err := DecodeServerSetup([]byte{0x20}, &ServerSetup{}); !errors.Is(err, ErrInvalid) {
		t.Errorf("1-byte server with 0x20: %v", err)
	}
	// Duplicate parameter.
	if _, err := DecodeServerSetup(unhex(t, "21 00 06 01 02 02 01 02 02"), &ServerSetup{}); !errors.Is(err, ErrInvalid) {
		t.Errorf("duplicate param: %v", err)
	}
	// Parity mismatch on encode.
	if _, err := AppendServerSetup(nil, &ServerSetup{Version: Lite02, Params: Params{Ints: map[uint64]uint64{3: 1}}}); !errors.Is(err, ErrInvalid) {
		t.Errorf("odd int param: %v", err)
	}
	if _, err := AppendServerSetup(nil, &ServerSetup{Version: Lite02, Params: Params{Bytes: map[uint64][]byte{4: nil}}}); !errors.Is(err, ErrInvalid) {
		t.Errorf("even bytes param: %v", err)
	}
	// Version over 2^62-1.
	if _, err := AppendClientSetup(nil, &ClientSetup{Versions: []Version{1 << 62}}); !errors.Is(err, ErrInvalid) {
		t.Errorf("huge version: %v", err)
	}
	// Body over the u16 length.
	big := &ClientSetup{Params: Params{Bytes: map[uint64][]byte{1: make([]byte, 70000)}}}
	if b, err := AppendClientSetup([]byte{1}, big); !errors.Is(err, ErrTooLarge) || len(b) != 1 {
		t.Errorf("70000-byte setup: %v", err)
	}
	// Deterministic order: even ascending, then odd ascending.
	m := &ServerSetup{Version: Lite01, Params: Params{
		Ints:  map[uint64]uint64{6: 1, 2: 2, 4: 3},
		Bytes: map[uint64][]byte{9: {1}, 1: nil, 7: []byte("x")},
	}}
	want := unhex(t, "21 00 17 c0 00 00 00 ff 0d ad 01 06 02 02 04 03 06 01 01 00 07 01 78 09 01 01")
	for range 10 {
		if b, err := AppendServerSetup(nil, m); err != nil || !bytes.Equal(b, want) {
			t.Fatalf("param order: % x, %v", b, err)
		}
	}
	var got ServerSetup
	if _, err := DecodeServerSetup(want, &got); err != nil {
		t.Fatal(err)
	}
	if got.Params.Bytes[1] != nil || len(got.Params.Ints) != 3 || string(got.Params.Bytes[7]) != "x" {
		t.Errorf("decoded params: %+v", got.Params)
	}
	if _, ok := got.Params.MaxRequestID(); !ok {
		t.Errorf("MaxRequestID missing")
	}
	if impl, ok := got.Params.Implementation(); !ok || impl != "x" {
		t.Errorf("Implementation: %q %v", impl, ok)
	}
	// Empty stream.
	if err := ReadClientSetup(bufio.NewReader(bytes.NewReader(nil)), &ClientSetup{}); err != io.EOF {
		t.Errorf("empty: %v", err)
	}
}

func TestEncodeFieldLimits(t *testing.T) {
	cases := []struct {
		v Version
		m Message
	}{
		{Lite03, &Subscribe{MaxLatency: -time.Millisecond}},
		{Lite03, &Subscribe{Start: GroupAt(MaxVarint)}},
		{Lite04, &SubscribeUpdate{End: GroupAt(1<<63 + 1)}},
		{Lite04, &Probe{RTT: -1}},
		{Lite04, &SubscribeDrop{Error: 1 << 62}},
		{Lite04, &AnnouncePlease{ExcludeHop: 1 << 62}},
	}
	for _, tc := range cases {
		if _, err := AppendMessage(nil, tc.v, tc.m); !errors.Is(err, ErrInvalid) {
			t.Errorf("%T %+v: %v", tc.m, tc.m, err)
		}
	}
	// The largest representable group is fine.
	if _, err := AppendMessage(nil, Lite03, &Subscribe{Start: GroupAt(MaxVarint - 1)}); err != nil {
		t.Errorf("max group: %v", err)
	}
}

func TestDurations(t *testing.T) {
	// Sub-millisecond precision is truncated, except a positive RTT under
	// 1 ms, which must not read as "unknown".
	b, _ := AppendMessage(nil, Lite04, &Probe{Bitrate: 1, RTT: 300 * time.Microsecond})
	var p Probe
	if _, err := DecodeMessage(b, Lite04, &p); err != nil || p.RTT != time.Millisecond {
		t.Errorf("sub-ms rtt: %v %v", p.RTT, err)
	}
	b, _ = AppendMessage(nil, Lite03, &Subscribe{MaxLatency: 1500 * time.Microsecond})
	var s Subscribe
	if _, err := DecodeMessage(b, Lite03, &s); err != nil || s.MaxLatency != time.Millisecond {
		t.Errorf("latency: %v %v", s.MaxLatency, err)
	}
	// Beyond time.Duration: saturate, and stay stable on re-encode.
	body := append([]byte{1}, AppendVarint(nil, MaxVarint)...)
	if _, err := DecodeMessage(reframe(body), Lite04, &p); err != nil || p.RTT != time.Duration(maxMillis)*time.Millisecond {
		t.Errorf("huge rtt: %v %v", p.RTT, err)
	}
	b, err := AppendMessage(nil, Lite04, &p)
	var p2 Probe
	if _, err2 := DecodeMessage(b, Lite04, &p2); err != nil || err2 != nil || p2 != p {
		t.Errorf("saturated round trip: %v %v %v", p2, err, err2)
	}
}

func TestLongMessages(t *testing.T) {
	// Bodies that need 2- and 4-byte lengths exercise the length widening
	// in AppendMessage and the copy path of ReadMessage.
	for _, n := range []int{61, 62, 63, 64, 200, 16380, 16381, 16400, 70000} {
		m := &Announce{Active: true, Suffix: strings.Repeat("x", n), Hops: []uint64{1, 2}}
		prefix := []byte("pre")
		b, err := AppendMessage(append([]byte(nil), prefix...), Lite04, m)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.HasPrefix(b, prefix) {
			t.Fatalf("%d: prefix clobbered", n)
		}
		b = b[len(prefix):]
		size, k, _ := ParseVarint(b)
		if int(size) != len(b)-k || k != VarintLen(size) {
			t.Fatalf("%d: length %d (%d bytes) for %d", n, size, k, len(b)-k)
		}
		for rname, r := range readers(b) {
			var got Announce
			if err := ReadMessage(r, Lite04, &got, 1<<20); err != nil || got.Suffix != m.Suffix {
				t.Fatalf("%d/%s: %v", n, rname, err)
			}
		}
	}
}

func TestReadTransportError(t *testing.T) {
	boom := errors.New("stream reset")
	b, _ := AppendMessage(nil, Lite03, &Subscribe{Broadcast: "a", Track: "b"})
	for i := 1; i < len(b); i++ {
		r := bufio.NewReader(io.MultiReader(bytes.NewReader(b[:i]), errReader{boom}))
		if err := ReadMessage(r, Lite03, &Subscribe{}, 100); !errors.Is(err, boom) {
			t.Errorf("cut %d: %v, want the transport error", i, err)
		}
	}
}

func TestDecodeOverwrites(t *testing.T) {
	// Fields a version does not carry are zeroed, not left over.
	a := Announce{Active: true, Suffix: "old", Hops: []uint64{1, 2}}
	if _, err := DecodeMessage(unhex(t, "05 00 03 62 62 62"), Lite01, &a); err != nil || a.Hops != nil || a.Active {
		t.Errorf("announce: %+v %v", a, err)
	}
	s := Subscribe{Ordered: true, MaxLatency: 5, Start: GroupAt(1), End: GroupAt(2)}
	if _, err := DecodeMessage(unhex(t, "0c 01 03 62 62 62 05 61 75 64 69 6f c8"), Lite02, &s); err != nil ||
		s != (Subscribe{ID: 1, Broadcast: "bbb", Track: "audio", Priority: 200}) {
		t.Errorf("subscribe: %+v %v", s, err)
	}
	ok := SubscribeOK{Priority: 9, Ordered: true}
	if _, err := DecodeMessage([]byte{0}, Lite02, &ok); err != nil || ok != (SubscribeOK{}) {
		t.Errorf("ok: %+v %v", ok, err)
	}
	p := Probe{RTT: time.Second}
	if _, err := DecodeMessage(unhex(t, "01 05"), Lite03, &p); err != nil || p != (Probe{Bitrate: 5}) {
		t.Errorf("probe: %+v %v", p, err)
	}
	ap := AnnouncePlease{ExcludeHop: 3}
	if _, err := DecodeMessage(unhex(t, "01 00"), Lite03, &ap); err != nil || ap != (AnnouncePlease{}) {
		t.Errorf("announce please: %+v %v", ap, err)
	}
}

func TestResponseEOF(t *testing.T) {
	for _, v := range all {
		if _, err := ReadSubscribeResponse(bufio.NewReader(bytes.NewReader(nil)), v, 10); err != io.EOF {
			t.Errorf("%v: %v, want io.EOF", v, err)
		}
	}
	// Type read, then FIN: truncation, not a clean end.
	if _, err := ReadSubscribeResponse(bufio.NewReader(bytes.NewReader([]byte{0})), Lite03, 10); !errors.Is(err, ErrShort) {
		t.Errorf("type then EOF: %v", err)
	}
}

func TestSetupBad(t *testing.T) {
	for name, h := range map[string]string{
		"duplicate id":          "07 02 05 01 01 05 01 02",
		"varint param trailing": "05 01 01 02 01 00",
		"varint param empty":    "03 01 01 00",
		"path not UTF-8":        "04 01 02 01 ff",
		"count over 64":         "02 40 41",
		"value past body":       "04 01 02 05 61",
	} {
		var m Setup
		if _, err := DecodeMessage(unhex(t, h), Lite05, &m); !errors.Is(err, ErrInvalid) && !errors.Is(err, ErrShort) {
			t.Errorf("%s: %v", name, err)
		}
	}
	// Unknown parameters are skipped; a probe level above 2 reads as 2; an
	// unknown role as both; origin 0 as none.
	var m Setup
	if _, err := DecodeMessage(unhex(t, "0f 04 | 41 00 02 61 62 | 01 01 09 | 03 01 07 | 05 01 00"), Lite05, &m); err != nil ||
		m != (Setup{Probe: ProbeIncrease}) {
		t.Fatalf("lenient fields: %+v %v", m, err)
	}
	// An eager-START value other than 1 reads as not offered.
	if _, err := DecodeMessage(unhex(t, "07 01 80 6d 71 70 01 02"), Lite05, &m); err != nil || m.EagerStart {
		t.Fatalf("eager start 2: %+v %v", m, err)
	}
	// 64 parameters are fine.
	body := []byte{0x40, 64}
	for i := range 64 {
		body = append(body, 0x40|byte(i>>8), byte(i+100), 0)
	}
	if _, err := DecodeMessage(reframe(body), Lite05, &m); err != nil {
		t.Fatalf("64 params: %v", err)
	}
}

func TestTrackInfoZeroTimescale(t *testing.T) {
	if _, err := AppendMessage(nil, Lite05, &TrackInfo{}); !errors.Is(err, ErrInvalid) {
		t.Errorf("encode timescale 0: %v", err)
	}
	if _, err := DecodeMessage(unhex(t, "04 00 00 00 00"), Lite05, &TrackInfo{}); !errors.Is(err, ErrInvalid) {
		t.Errorf("decode timescale 0: %v", err)
	}
}

func TestTimestampBounds(t *testing.T) {
	// Below zero: prev 5, delta -6 (zigzag 11).
	if _, _, err := ParseTimestamp([]byte{11}, 5); !errors.Is(err, ErrInvalid) {
		t.Errorf("below zero: %v", err)
	}
	// Above MaxTimestamp.
	big := AppendVarint(nil, 4)
	if _, _, err := ParseTimestamp(big, MaxTimestamp-1); !errors.Is(err, ErrInvalid) {
		t.Errorf("above max: %v", err)
	}
	if _, err := AppendTimestamp(nil, 0, MaxTimestamp+1); !errors.Is(err, ErrInvalid) {
		t.Errorf("encode over max: %v", err)
	}
	// A jump wider than a zigzag varint holds.
	if _, err := AppendTimestamp(nil, 0, MaxTimestamp); !errors.Is(err, ErrInvalid) {
		t.Errorf("encode huge delta: %v", err)
	}
	if _, err := AppendTimestamp(nil, MaxTimestamp, 0); !errors.Is(err, ErrInvalid) {
		t.Errorf("encode huge negative delta: %v", err)
	}
	for _, c := range [][2]uint64{{0, 0}, {0, maxZigzagDelta}, {maxZigzagDelta + 1, 0}, {7, 3}, {3, 7}} {
		b, err := AppendTimestamp(nil, c[0], c[1])
		if err != nil {
			t.Fatalf("%v: %v", c, err)
		}
		if ts, _, err := ParseTimestamp(b, c[0]); err != nil || ts != c[1] {
			t.Fatalf("%v: %d %v", c, ts, err)
		}
	}
	if _, err := ReadTimestamp(bytes.NewReader(nil), 0); err != io.EOF {
		t.Errorf("clean end: %v", err)
	}
}

func TestDatagramBounds(t *testing.T) {
	d := Datagram{SubscribeID: 1, Sequence: 2, Timestamp: 3, Payload: make([]byte, MaxDatagram-3)}
	b, err := AppendDatagram(nil, Lite05, &d)
	if err != nil || len(b) != MaxDatagram {
		t.Fatalf("max datagram: %d %v", len(b), err)
	}
	d.Payload = append(d.Payload, 0)
	if _, err := AppendDatagram(nil, Lite05, &d); !errors.Is(err, ErrTooLarge) {
		t.Errorf("over max: %v", err)
	}
	if err := DecodeDatagram(append(b, 0), Lite05, &d); !errors.Is(err, ErrTooLarge) {
		t.Errorf("decode over max: %v", err)
	}
	if err := DecodeDatagram([]byte{1, 2}, Lite05, &d); !errors.Is(err, ErrShort) {
		t.Errorf("short: %v", err)
	}
	if _, err := AppendDatagram(nil, Lite04, &d); !errors.Is(err, ErrUnsupported) {
		t.Errorf("lite-04: %v", err)
	}
	if err := DecodeDatagram(b, Lite04, &d); !errors.Is(err, ErrUnsupported) {
		t.Errorf("decode lite-04: %v", err)
	}
	if err := DecodeDatagram(unhex(t, `01 02 03 "world"`), Lite05, &d); err != nil ||
		d.SubscribeID != 1 || d.Sequence != 2 || d.Timestamp != 3 || string(d.Payload) != "world" {
		t.Errorf("decode: %+v %v", d, err)
	}
}
