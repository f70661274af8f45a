package hang

import (
	"testing"
)

// A catalog from a peer never panics the parser, and one that parses
// survives its own round trip.
func FuzzParseCatalog(f *testing.F) {
	f.Add([]byte(publishCatalog))
	f.Add([]byte(`{"video":[{"track":{"name":"v"},"config":{"codec":"vp8"}}],"audio":{"track":{"name":"a"},"config":{"codec":"opus","sampleRate":1,"numberOfChannels":1}}}`))
	f.Add([]byte(`{"video":{"renditions":{"v":{"codec":"avc1","container":{"kind":"cmaf","init":"AA=="}}}}}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := ParseCatalog(b)
		if err != nil {
			return
		}
		out, err := c.Marshal()
		if err != nil {
			t.Fatalf("parsed %q but cannot marshal it: %v", b, err)
		}
		if _, err := ParseCatalog(out); err != nil {
			t.Fatalf("%q re-encoded as %q, which does not parse: %v", b, out, err)
		}
	})
}

// A frame from a peer never panics the parser, and what it returns is
// what AppendFrame wrote.
func FuzzParseFrame(f *testing.F) {
	f.Add([]byte{0x80, 0x0f, 0x42, 0x40, 0xaa})
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		ts, payload, err := ParseFrame(b)
		if err != nil {
			return
		}
		again, p2, err := ParseFrame(AppendFrame(nil, ts, payload))
		if err != nil || again != ts || string(p2) != string(payload) {
			t.Fatalf("%x: %d %x, then %d %x %v", b, ts, payload, again, p2, err)
		}
	})
}
