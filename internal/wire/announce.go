package wire

import "fmt"

// MaxHops is the longest hop list accepted in ANNOUNCE, on encode and on
// decode. Rust 0.16 rejects longer lists (closing the session); JS accepts
// up to 256, but sending more than 32 to Rust would be fatal.
const MaxHops = 32

// AnnouncePlease is the subscriber's only message on an announce stream:
// the prefix whose broadcasts it wants to hear about.
type AnnouncePlease struct {
	// Prefix is the broadcast path prefix; "" means everything. The codec
	// does not normalize paths.
	Prefix string
	// ExcludeHop (lite-04) asks the publisher to skip broadcasts whose hop
	// list contains this ID; 0 means none. Not on the wire before lite-04:
	// ignored on encode, zero on decode.
	ExcludeHop uint64
}

func (*AnnouncePlease) messageName() string      { return "announce please" }
func (*AnnouncePlease) supported(v Version) bool { return v.Known() }

func (m *AnnouncePlease) appendBody(b []byte, v Version) ([]byte, error) {
	e := encoder{b: b}
	e.string(m.Prefix)
	if v.hasExcludeHop() {
		e.varint(m.ExcludeHop)
	}
	return e.b, e.err
}

func (m *AnnouncePlease) decodeBody(b []byte, v Version) error {
	d := decoder{b: b}
	*m = AnnouncePlease{Prefix: d.string()}
	if v.hasExcludeHop() {
		m.ExcludeHop = d.varint()
	}
	return d.done()
}

// AnnounceInit (lite-01/02 only) is the publisher's first message on an
// announce stream: the suffixes of every broadcast active under the prefix.
type AnnounceInit struct {
	Suffixes []string
}

func (*AnnounceInit) messageName() string      { return "announce init" }
func (*AnnounceInit) supported(v Version) bool { return v.announceInit() }

func (m *AnnounceInit) appendBody(b []byte, _ Version) ([]byte, error) {
	e := encoder{b: b}
	e.varint(uint64(len(m.Suffixes)))
	for _, s := range m.Suffixes {
		e.string(s)
	}
	return e.b, e.err
}

func (m *AnnounceInit) decodeBody(b []byte, _ Version) error {
	d := decoder{b: b}
	// Each suffix takes at least its one-byte length.
	n := d.count(1, 0, "suffixes")
	*m = AnnounceInit{}
	if n == 0 {
		return d.done()
	}
	m.Suffixes = make([]string, n)
	for i := range m.Suffixes {
		m.Suffixes[i] = d.string()
	}
	return d.done()
}

// Announce reports that a broadcast under the requested prefix became
// active or ended.
type Announce struct {
	// Active is the status byte: true = active (1), false = ended (0).
	Active bool
	// Suffix is the broadcast path relative to the requested prefix.
	Suffix string
	// Hops is the chain of origin IDs the announcement travelled through
	// (at most MaxHops). On lite-05 the publisher's own ID is not in the
	// list: it was sent once, in ANNOUNCE_OK.
	//   - lite-01/02: not on the wire; ignored on encode, nil on decode.
	//   - lite-03: only the count is on the wire. Encode writes len(Hops);
	//     decode yields len(Hops) == count with every ID zero (unknown).
	//   - lite-04/05: count and IDs. Encode rejects a zero ID (ErrInvalid),
	//     since IDs are non-zero and a zero one can only be an unknown
	//     lite-03 hop that must not be forwarded as if it were real. Decode
	//     accepts zero: the reference only says IDs are non-zero, not that
	//     peers reject them, and leniency costs nothing here.
	Hops []uint64
}

func (*Announce) messageName() string      { return "announce" }
func (*Announce) supported(v Version) bool { return v.Known() }

func (m *Announce) appendBody(b []byte, v Version) ([]byte, error) {
	e := encoder{b: b}
	e.bool(m.Active)
	e.string(m.Suffix)
	if !v.hasHopCount() {
		return e.b, e.err
	}
	if len(m.Hops) > MaxHops {
		e.fail(fmt.Errorf("%d hops, max %d: %w", len(m.Hops), MaxHops, ErrInvalid))
		return e.b, e.err
	}
	e.varint(uint64(len(m.Hops)))
	if !v.hasHopList() {
		return e.b, e.err
	}
	for _, h := range m.Hops {
		if h == 0 {
			e.fail(fmt.Errorf("zero hop id: %w", ErrInvalid))
			return e.b, e.err
		}
		e.varint(h)
	}
	return e.b, e.err
}

func (m *Announce) decodeBody(b []byte, v Version) error {
	d := decoder{b: b}
	*m = Announce{Active: d.announceStatus(v), Suffix: d.string()}
	if !v.hasHopCount() {
		return d.done()
	}
	minSize := 0 // lite-03: the count is all there is
	if v.hasHopList() {
		minSize = 1
	}
	n := d.count(minSize, MaxHops, "hops")
	if n == 0 {
		return d.done()
	}
	m.Hops = make([]uint64, n)
	if !v.hasHopList() {
		return d.done()
	}
	for i := range m.Hops {
		m.Hops[i] = d.varint()
	}
	return d.done()
}
