package wire

// Goaway (lite-04 and later) asks the peer to move to another URI; empty means
// just close. Peers of the 0.16/0.2 generation only log it.
type Goaway struct {
	URI string
}

func (*Goaway) messageName() string      { return "goaway" }
func (*Goaway) supported(v Version) bool { return v.hasGoaway() }

func (m *Goaway) appendBody(b []byte, _ Version) ([]byte, error) {
	e := encoder{b: b}
	e.string(m.URI)
	return e.b, e.err
}

func (m *Goaway) decodeBody(b []byte, _ Version) error {
	d := decoder{b: b}
	*m = Goaway{URI: d.string()}
	return d.done()
}
