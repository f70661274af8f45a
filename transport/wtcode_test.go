package transport

import "testing"

// Vectors of docs/transports.md#error-code-mapping.
func TestWebTransportCodeVectors(t *testing.T) {
	for code, wire := range map[uint32]uint64{0: 0x52e4a40fa8db, 5: 0x52e4a40fa8e0, 12: 0x52e4a40fa8e7, 13: 0x52e4a40fa8e8, 14: 0x52e4a40fa8e9, 64: 0x52e4a40fa91d} {
		if got := ToWebTransportCode(code); got != wire {
			t.Errorf("ToWebTransportCode(%d) = %#x, want %#x", code, got, wire)
		}
		if got, ok := FromWebTransportCode(wire); !ok || got != code {
			t.Errorf("FromWebTransportCode(%#x) = %d, %v; want %d", wire, got, ok, code)
		}
	}
}

func TestWebTransportCodeRoundTrip(t *testing.T) {
	for _, c := range []uint32{0, 1, 29, 30, 31, 61, 62, 1000, 1 << 20, 0xffffffff} {
		if got, ok := FromWebTransportCode(ToWebTransportCode(c)); !ok || got != c {
			t.Errorf("round trip of %d gave %d, %v", c, got, ok)
		}
	}
	if got, ok := FromWebTransportCode(3); !ok || got != 3 {
		t.Errorf("a raw small code must pass through: %d %v", got, ok)
	}
	if _, ok := FromWebTransportCode(wtFirst + 0x1e); ok {
		t.Error("reserved codepoint accepted")
	}
}
