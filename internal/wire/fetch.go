package wire

// Fetch (lite-03+) requests one group of a track; the publisher answers on
// the same stream with bare frames (size || payload) and FIN. Neither Rust
// 0.16 nor JS 0.2 serves it.
type Fetch struct {
	Broadcast string
	Track     string
	Priority  uint8
	// Group is a plain sequence number (no +1 form).
	Group uint64
}

func (*Fetch) messageName() string      { return "fetch" }
func (*Fetch) supported(v Version) bool { return v.hasFetchProbe() }

func (m *Fetch) appendBody(b []byte, _ Version) ([]byte, error) {
	e := encoder{b: b}
	e.string(m.Broadcast)
	e.string(m.Track)
	e.u8(m.Priority)
	e.varint(m.Group)
	return e.b, e.err
}

func (m *Fetch) decodeBody(b []byte, _ Version) error {
	d := decoder{b: b}
	*m = Fetch{Broadcast: d.string(), Track: d.string(), Priority: d.u8(), Group: d.varint()}
	return d.done()
}
