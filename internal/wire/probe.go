package wire

import "time"

// Probe (lite-03+) is written by the publisher on a probe stream to report
// its estimated send bitrate. Subscribers in practice send only the stream
// type and read.
type Probe struct {
	// Bitrate is in bits per second.
	Bitrate uint64
	// RTT (lite-04) is the round-trip time in whole milliseconds; 0 means
	// unknown. A positive RTT under 1 ms is sent as 1 ms so it is not
	// mistaken for unknown. Not on the wire in lite-03: ignored on encode,
	// zero on decode.
	RTT time.Duration
}

func (*Probe) messageName() string      { return "probe" }
func (*Probe) supported(v Version) bool { return v.hasFetchProbe() }

func (m *Probe) appendBody(b []byte, v Version) ([]byte, error) {
	e := encoder{b: b}
	e.varint(m.Bitrate)
	if v.probeRTT() {
		rtt := m.RTT
		if rtt > 0 && rtt < time.Millisecond {
			rtt = time.Millisecond
		}
		e.millis(rtt)
	}
	return e.b, e.err
}

func (m *Probe) decodeBody(b []byte, v Version) error {
	d := decoder{b: b}
	*m = Probe{Bitrate: d.varint()}
	if v.probeRTT() {
		m.RTT = d.millis()
	}
	return d.done()
}
