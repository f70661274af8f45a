package wire

// Group is the header of a group stream (uni type UniGroup): the
// subscription it answers and the group's sequence number.
//
// After the header the stream carries frames, each a size varint followed
// by exactly that many payload bytes (write the size with AppendFrameHeader,
// read it with ReadVarint, then read the payload into your own buffer). A
// frame may be empty, a group may have no frames. FIN at a frame boundary
// (ReadVarint returning io.EOF) means the group is complete; the stream
// ending inside a size or payload is an error (Rust resets with WrongSize).
type Group struct {
	SubscribeID uint64
	Sequence    uint64
}

func (*Group) messageName() string      { return "group" }
func (*Group) supported(v Version) bool { return v.Known() }

func (m *Group) appendBody(b []byte, _ Version) ([]byte, error) {
	e := encoder{b: b}
	e.varint(m.SubscribeID)
	e.varint(m.Sequence)
	return e.b, e.err
}

func (m *Group) decodeBody(b []byte, _ Version) error {
	d := decoder{b: b}
	*m = Group{SubscribeID: d.varint(), Sequence: d.varint()}
	return d.done()
}

// AppendFrameHeader appends the size varint that precedes a frame payload
// of size bytes; the caller writes the payload itself, avoiding a copy.
// The same form is used in every version up to lite-04 (lite-05 adds a
// timestamp before it, AppendTimestamp; ParseFrameHeader reads both).
func AppendFrameHeader(b []byte, size uint64) []byte {
	return AppendVarint(b, size)
}
