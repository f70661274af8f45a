package wire

import (
	"bufio"
	"bytes"
	"errors"
	"reflect"
	"testing"
)

// fuzzVersions is indexed by the fuzzer's version byte; the last entry is a
// version this package does not know, which every decoder must refuse.
var fuzzVersions = []Version{Lite01, Lite02, Lite03, Lite04, Lite05, 0xff0dad06}

func fuzzVersion(i uint8) Version { return fuzzVersions[int(i)%len(fuzzVersions)] }

func versionIndex(v Version) uint8 {
	for i, x := range fuzzVersions {
		if x == v {
			return uint8(i)
		}
	}
	return 0
}

// seed adds every vector sample accepted by keep, for its version, plus
// the same bytes for every other version (cross-version seeds reach the
// error paths quickly).
func seed(f *testing.F, keep func(part) bool) {
	for _, s := range samples(f) {
		if !keep(s.p) {
			continue
		}
		f.Add(versionIndex(s.v), s.b)
		for i := range fuzzVersions {
			f.Add(uint8(i), s.b)
		}
	}
}

func isMsg[P Message](p part) bool {
	mp, ok := p.(msgPart)
	if !ok {
		return false
	}
	_, ok = mp.m.(P)
	return ok
}

// encodable reports whether a successfully decoded message must re-encode.
// The one deliberate asymmetry: lite-04 decode accepts zero hop IDs, which
// encode refuses.
func encodable(m Message, v Version) bool {
	if a, ok := m.(*Announce); ok && v.hasHopList() {
		for _, h := range a.Hops {
			if h == 0 {
				return false
			}
		}
	}
	return true
}

// checkRoundTrip asserts the fuzz properties for one decoded value m1 that
// used n1 input bytes: re-encoding succeeds, is no longer than the input,
// decodes to an equal value, and encodes again to the same bytes.
func checkRoundTrip[M any](t *testing.T, m1 M, n1 int, enc func(M) ([]byte, error), dec func([]byte) (M, int, error)) {
	t.Helper()
	b2, err := enc(m1)
	if err != nil {
		t.Fatalf("re-encode %+v: %v", m1, err)
	}
	if len(b2) > n1 {
		t.Fatalf("re-encoding is %d bytes, input %d: % x", len(b2), n1, b2)
	}
	m2, n2, err := dec(b2)
	if err != nil {
		t.Fatalf("decode re-encoding % x: %v", b2, err)
	}
	if n2 != len(b2) {
		t.Fatalf("decode used %d of %d bytes", n2, len(b2))
	}
	if !reflect.DeepEqual(m1, m2) {
		t.Fatalf("round trip changed value:\n%#v\n%#v", m1, m2)
	}
	b3, err := enc(m2)
	if err != nil || !bytes.Equal(b2, b3) {
		t.Fatalf("encoding not stable: % x vs % x (%v)", b2, b3, err)
	}
}

// fuzzMessage is the common body of the per-message fuzz targets.
func fuzzMessage[T any, P interface {
	*T
	Message
}](f *testing.F) {
	seed(f, isMsg[P])
	f.Fuzz(func(t *testing.T, vi uint8, data []byte) {
		v := fuzzVersion(vi)
		m1 := P(new(T))
		n1, err := DecodeMessage(data, v, m1)

		// The stream reader must agree with the slice decoder.
		m3 := P(new(T))
		rerr := ReadMessage(bufio.NewReaderSize(bytes.NewReader(data), 16), v, m3, len(data))
		if (err == nil) != (rerr == nil) {
			t.Fatalf("DecodeMessage: %v, ReadMessage: %v", err, rerr)
		}
		if err != nil {
			checkSentinel(t, err)
			return
		}
		if !reflect.DeepEqual(m1, m3) {
			t.Fatalf("DecodeMessage %#v, ReadMessage %#v", m1, m3)
		}
		if !encodable(m1, v) {
			if _, err := AppendMessage(nil, v, m1); !errors.Is(err, ErrInvalid) {
				t.Fatalf("zero hop id encoded: %v", err)
			}
			return
		}
		checkRoundTrip(t, m1, n1,
			func(m P) ([]byte, error) { return AppendMessage(nil, v, m) },
			func(b []byte) (P, int, error) {
				m := P(new(T))
				n, err := DecodeMessage(b, v, m)
				return m, n, err
			})
	})
}

// checkSentinel asserts that a decode error is classifiable.
func checkSentinel(t *testing.T, err error) {
	t.Helper()
	for _, s := range []error{ErrShort, ErrLong, ErrTooLarge, ErrInvalid, ErrUnsupported, ErrUnknownStream} {
		if errors.Is(err, s) {
			return
		}
	}
	t.Fatalf("error wraps no sentinel: %v", err)
}

func FuzzVarint(f *testing.F) {
	for _, h := range []string{"00", "3f", "40 40", "7f ff", "80 00 40 00", "bf ff ff ff",
		"c0 00 00 00 40 00 00 00", "ff ff ff ff ff ff ff ff", "40 25", "c0", "80 00"} {
		f.Add(unhex(f, h))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		v, n, err := ParseVarint(data)
		rv, rerr := ReadVarint(bytes.NewReader(data))
		if (err == nil) != (rerr == nil) || v != rv {
			t.Fatalf("ParseVarint %d %v, ReadVarint %d %v", v, err, rv, rerr)
		}
		if err != nil {
			if len(data) > 0 && !errors.Is(err, ErrShort) {
				t.Fatalf("unexpected error %v", err)
			}
			return
		}
		if v > MaxVarint || n < 1 || n > 8 {
			t.Fatalf("v=%d n=%d", v, n)
		}
		b := AppendVarint(nil, v)
		if len(b) != VarintLen(v) || len(b) > n {
			t.Fatalf("re-encoding % x for % x", b, data[:n])
		}
		if v2, n2, err := ParseVarint(b); err != nil || v2 != v || n2 != len(b) {
			t.Fatalf("round trip %d -> % x -> %d", v, b, v2)
		}
	})
}

func FuzzAnnouncePlease(f *testing.F)  { fuzzMessage[AnnouncePlease](f) }
func FuzzAnnounceInit(f *testing.F)    { fuzzMessage[AnnounceInit](f) }
func FuzzAnnounce(f *testing.F)        { fuzzMessage[Announce](f) }
func FuzzSubscribe(f *testing.F)       { fuzzMessage[Subscribe](f) }
func FuzzSubscribeUpdate(f *testing.F) { fuzzMessage[SubscribeUpdate](f) }
func FuzzGroup(f *testing.F)           { fuzzMessage[Group](f) }
func FuzzProbe(f *testing.F)           { fuzzMessage[Probe](f) }
func FuzzGoaway(f *testing.F)          { fuzzMessage[Goaway](f) }
func FuzzFetch(f *testing.F)           { fuzzMessage[Fetch](f) }
func FuzzSessionUpdate(f *testing.F)   { fuzzMessage[SessionUpdate](f) }

func FuzzSubscribeResponse(f *testing.F) {
	seed(f, func(p part) bool { _, ok := p.(respPart); return ok })
	f.Fuzz(func(t *testing.T, vi uint8, data []byte) {
		v := fuzzVersion(vi)
		m1, n1, err := DecodeSubscribeResponse(data, v)
		m3, rerr := ReadSubscribeResponse(bufio.NewReaderSize(bytes.NewReader(data), 16), v, len(data))
		if (err == nil) != (rerr == nil) {
			t.Fatalf("Decode: %v, Read: %v", err, rerr)
		}
		if err != nil {
			checkSentinel(t, err)
			return
		}
		if !reflect.DeepEqual(m1, m3) {
			t.Fatalf("Decode %#v, Read %#v", m1, m3)
		}
		checkRoundTrip(t, m1, n1,
			func(m Message) ([]byte, error) { return AppendSubscribeResponse(nil, v, m) },
			func(b []byte) (Message, int, error) { return DecodeSubscribeResponse(b, v) })
	})
}

func FuzzClientSetup(f *testing.F) {
	seed(f, func(p part) bool { _, ok := p.(clientSetupPart); return ok })
	f.Fuzz(func(t *testing.T, _ uint8, data []byte) {
		fuzzSetup(t, data, AppendClientSetup, DecodeClientSetup, ReadClientSetup)
	})
}

func FuzzServerSetup(f *testing.F) {
	seed(f, func(p part) bool { _, ok := p.(serverSetupPart); return ok })
	f.Fuzz(func(t *testing.T, _ uint8, data []byte) {
		fuzzSetup(t, data, AppendServerSetup, DecodeServerSetup, ReadServerSetup)
	})
}

func fuzzSetup[T any](t *testing.T, data []byte,
	enc func([]byte, *T) ([]byte, error),
	dec func([]byte, *T) (int, error),
	read func(Reader, *T) error,
) {
	m1 := new(T)
	n1, err := dec(data, m1)
	m3 := new(T)
	rerr := read(bufio.NewReaderSize(bytes.NewReader(data), 16), m3)
	if (err == nil) != (rerr == nil) {
		t.Fatalf("Decode: %v, Read: %v", err, rerr)
	}
	if err != nil {
		checkSentinel(t, err)
		return
	}
	if !reflect.DeepEqual(m1, m3) {
		t.Fatalf("Decode %#v, Read %#v", m1, m3)
	}
	checkRoundTrip(t, m1, n1,
		func(m *T) ([]byte, error) { return enc(nil, m) },
		func(b []byte) (*T, int, error) {
			m := new(T)
			n, err := dec(b, m)
			return m, n, err
		})
}

func FuzzSetup(f *testing.F)      { fuzzMessage[Setup](f) }
func FuzzAnnounceOK(f *testing.F) { fuzzMessage[AnnounceOK](f) }
func FuzzTrack(f *testing.F)      { fuzzMessage[Track](f) }
func FuzzTrackInfo(f *testing.F)  { fuzzMessage[TrackInfo](f) }

// FuzzTimestamp: a decoded timestamp re-encodes to a delta that decodes to
// it again, and ParseTimestamp agrees with ReadTimestamp.
func FuzzTimestamp(f *testing.F) {
	for _, h := range []string{"00", "47 d0", "3c", "13", "40 42", "01", "ff ff ff ff ff ff ff ff", "fe"} {
		f.Add(uint64(0), unhex(f, h))
		f.Add(uint64(1000), unhex(f, h))
		f.Add(uint64(MaxTimestamp), unhex(f, h))
	}
	f.Fuzz(func(t *testing.T, prev uint64, data []byte) {
		ts, n, err := ParseTimestamp(data, prev)
		rts, rerr := ReadTimestamp(bytes.NewReader(data), prev)
		if (err == nil) != (rerr == nil) || ts != rts {
			t.Fatalf("Parse %d %v, Read %d %v", ts, err, rts, rerr)
		}
		if err != nil {
			if len(data) > 0 {
				checkSentinel(t, err)
			}
			return
		}
		if ts > MaxTimestamp {
			t.Fatalf("timestamp %d over max", ts)
		}
		b, err := AppendTimestamp(nil, prev, ts)
		if err != nil {
			t.Fatalf("re-encode %d after %d: %v", ts, prev, err)
		}
		if len(b) > n {
			t.Fatalf("re-encoding % x longer than % x", b, data[:n])
		}
		if ts2, _, err := ParseTimestamp(b, prev); err != nil || ts2 != ts {
			t.Fatalf("round trip %d -> %d %v", ts, ts2, err)
		}
	})
}

// FuzzFrameHeader: ParseFrameHeader, whose one- and two-byte timestamp
// deltas are decoded inline, agrees with ParseTimestamp and ParseVarint
// field by field, stamped (lite-05) or not.
func FuzzFrameHeader(f *testing.F) {
	for _, s := range samples(f) { // the pinned timestamped frames, and each cut short
		if p, ok := s.p.(tsFramePart); ok {
			for i := range len(s.b) + 1 {
				f.Add(p.prev, true, s.b[:i])
			}
			f.Add(p.prev, false, s.b)
		}
	}
	for _, h := range []string{"01 00", "40 00 00", "7f ff 05", "80 00 40 00 05", "ff"} {
		f.Add(uint64(0), true, unhex(f, h))
		f.Add(uint64(MaxTimestamp), true, unhex(f, h))
	}
	f.Fuzz(func(t *testing.T, prev uint64, stamped bool, data []byte) {
		checkFrameHeader(t, data, stamped, prev)
	})
}

func FuzzDatagram(f *testing.F) {
	for _, s := range samples(f) { // the pinned DATAGRAM vectors
		if _, ok := s.p.(datagramPart); ok {
			f.Add(s.b)
		}
	}
	for _, h := range []string{"3f 40 01 47 d0", "c0"} { // cut short
		f.Add(unhex(f, h))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var d Datagram
		if err := DecodeDatagram(data, Lite05, &d); err != nil {
			checkSentinel(t, err)
			return
		}
		b, err := AppendDatagram(nil, Lite05, &d)
		if err != nil {
			t.Fatalf("re-encode %+v: %v", d, err)
		}
		if len(b) > len(data) {
			t.Fatalf("re-encoding % x longer than % x", b, data)
		}
		var d2 Datagram
		if err := DecodeDatagram(b, Lite05, &d2); err != nil || !reflect.DeepEqual(d, d2) {
			t.Fatalf("round trip %+v -> %+v %v", d, d2, err)
		}
	})
}
