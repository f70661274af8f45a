package wire

import (
	"fmt"
	"io"
	"time"
	"unicode/utf8"
)

// Messages that exist from lite-05 on (moq-dev/moq, rs/moq-net/src/lite:
// setup.rs, parameters.rs, announce.rs, subscribe.rs, track.rs,
// datagram.rs; the same layouts in @moq/net 0.3.4's lite/*.js).

// SETUP parameter IDs (lite-05). Every value is a length-prefixed byte
// string; the "varint" ones hold exactly one varint inside those bytes.
const (
	SetupParamProbe  = 1 // varint probe level: 0 none, 1 report, 2 increase
	SetupParamPath   = 2 // UTF-8 path; client only, on transports without a URI
	SetupParamRole   = 3 // varint: 1 publisher, 2 subscriber; absent = both
	SetupParamOrigin = 5 // varint hop ID (sent by @moq/net, defined for lite-06)
	// SetupParamEagerStart is moqp2p's own capability (a value of 1): this
	// endpoint, as a publisher, answers every SUBSCRIBE with
	// SUBSCRIBE_START as soon as it holds the subscription, not only once
	// a first group is served as moq-net does. The draft has receivers
	// ignore parameter IDs they do not know, so moq-net and @moq/net skip
	// it; the ID is far above the ones the draft defines.
	SetupParamEagerStart = 0x6d7170 // "mqp"
)

// MaxSetupParams is the most parameters a SETUP may carry; both reference
// implementations refuse more.
const MaxSetupParams = 64

// Probe levels a SETUP advertises.
const (
	ProbeNone     = 0
	ProbeReport   = 1
	ProbeIncrease = 2
)

// Roles a client advertises in SETUP (0 = both, sent as no parameter).
const (
	RoleBoth       = 0
	RolePublisher  = 1
	RoleSubscriber = 2
)

// Setup (lite-05) is the one message on each side's SETUP uni stream
// (UniSetup), followed by FIN. The two SETUPs are independent: neither
// side needs the other's to start. Unknown parameters are skipped on
// decode; known ones are decoded as the reference does: a Probe level
// above 2 reads as 2 (increase), an unknown Role as RoleBoth, Origin 0 as
// absent. A duplicate parameter ID, more than MaxSetupParams parameters,
// or a varint parameter with bytes after its varint is ErrInvalid.
// Encoding writes the set fields in ascending ID order and leaves out
// defaults (Probe 0, RoleBoth, Origin 0, no Path, no EagerStart), so an empty SETUP is
// the three bytes 01 01 00 with its stream type.
type Setup struct {
	Probe uint64
	// Path is the client's request path on transports that carry no URI
	// (raw QUIC); HasPath tells an empty path from none.
	Path    string
	HasPath bool
	Role    uint64
	// Origin is the sender's hop ID (0 = not declared).
	Origin uint64
	// EagerStart: the sender answers SUBSCRIBE with SUBSCRIBE_START at once
	// (SetupParamEagerStart; a value other than 1 reads as false).
	EagerStart bool
}

func (*Setup) messageName() string      { return "setup" }
func (*Setup) supported(v Version) bool { return v.hasSetupStream() }

func (m *Setup) appendBody(b []byte, _ Version) ([]byte, error) {
	e := encoder{b: b}
	n := 0
	if m.Probe != ProbeNone {
		n++
	}
	if m.HasPath {
		n++
	}
	if m.Role != RoleBoth {
		n++
	}
	if m.Origin != 0 {
		n++
	}
	if m.EagerStart {
		n++
	}
	e.varint(uint64(n))
	if m.Probe != ProbeNone {
		e.varintParam(SetupParamProbe, m.Probe)
	}
	if m.HasPath {
		e.varint(SetupParamPath)
		e.string(m.Path)
	}
	if m.Role != RoleBoth {
		e.varintParam(SetupParamRole, m.Role)
	}
	if m.Origin != 0 {
		e.varintParam(SetupParamOrigin, m.Origin)
	}
	if m.EagerStart {
		e.varintParam(SetupParamEagerStart, 1)
	}
	return e.b, e.err
}

// varintParam writes id, then the value's varint as a length-prefixed
// byte string.
func (e *encoder) varintParam(id, v uint64) {
	if v > MaxVarint {
		e.fail(fmt.Errorf("param %d value %d: %w", id, v, ErrInvalid))
		return
	}
	e.varint(id)
	e.varint(uint64(VarintLen(v)))
	e.varint(v)
}

func (m *Setup) decodeBody(b []byte, _ Version) error {
	d := decoder{b: b}
	*m = Setup{}
	// A parameter takes at least two bytes: id and length.
	n := d.count(2, MaxSetupParams, "setup params")
	var seen [MaxSetupParams]uint64
	for i := range n {
		id := d.varint()
		val := d.raw()
		if d.err != nil {
			break
		}
		for _, s := range seen[:i] {
			if s == id {
				d.fail(fmt.Errorf("duplicate setup param %d: %w", id, ErrInvalid))
			}
		}
		seen[i] = id
		switch id {
		case SetupParamProbe:
			m.Probe = min(paramVarint(&d, val), ProbeIncrease)
		case SetupParamPath:
			if !utf8.Valid(val) {
				d.fail(fmt.Errorf("setup path: %w: not UTF-8", ErrInvalid))
			}
			m.Path, m.HasPath = string(val), true
		case SetupParamRole:
			if r := paramVarint(&d, val); r == RolePublisher || r == RoleSubscriber {
				m.Role = r
			}
		case SetupParamOrigin:
			m.Origin = paramVarint(&d, val)
		case SetupParamEagerStart:
			m.EagerStart = paramVarint(&d, val) == 1
		}
	}
	return d.done()
}

// paramVarint decodes a parameter value that must be exactly one varint.
func paramVarint(d *decoder, val []byte) uint64 {
	x, k, err := ParseVarint(val)
	if err != nil || k != len(val) {
		d.fail(fmt.Errorf("varint setup param: %w", ErrInvalid))
		return 0
	}
	return x
}

// AnnounceOK (lite-05) is the publisher's first message on an announce
// stream: its hop ID, which it then leaves out of every ANNOUNCE's hop
// list (the subscriber appends it on receipt), and the number of `active`
// ANNOUNCEs that follow as the initial set.
type AnnounceOK struct {
	Hop    uint64
	Active uint64
}

func (*AnnounceOK) messageName() string      { return "announce ok" }
func (*AnnounceOK) supported(v Version) bool { return v.announceOK() }

func (m *AnnounceOK) appendBody(b []byte, _ Version) ([]byte, error) {
	e := encoder{b: b}
	e.varint(m.Hop)
	e.varint(m.Active)
	return e.b, e.err
}

func (m *AnnounceOK) decodeBody(b []byte, _ Version) error {
	d := decoder{b: b}
	*m = AnnounceOK{Hop: d.varint(), Active: d.varint()}
	return d.done()
}

// SubscribeStart (lite-05, response type 0) tells the subscriber the first
// group it will get (a plain sequence). Publishers send it when the first
// group is served, so it may never come for a track that has no group.
type SubscribeStart struct {
	Group uint64
}

func (*SubscribeStart) messageName() string      { return "subscribe start" }
func (*SubscribeStart) supported(v Version) bool { return v.subscribeRange() }

func (m *SubscribeStart) appendBody(b []byte, _ Version) ([]byte, error) {
	return AppendVarint(b, m.Group), nil
}

func (m *SubscribeStart) decodeBody(b []byte, _ Version) error {
	d := decoder{b: b}
	*m = SubscribeStart{Group: d.varint()}
	return d.done()
}

// SubscribeEnd (lite-05, response type 1) is the subscription's end: no
// group at or after Group (exclusive, as both reference implementations
// treat it, whatever the draft text says) will be delivered; 0 means the
// track ended before its first group.
type SubscribeEnd struct {
	Group uint64
}

func (*SubscribeEnd) messageName() string      { return "subscribe end" }
func (*SubscribeEnd) supported(v Version) bool { return v.subscribeRange() }

func (m *SubscribeEnd) appendBody(b []byte, _ Version) ([]byte, error) {
	return AppendVarint(b, m.Group), nil
}

func (m *SubscribeEnd) decodeBody(b []byte, _ Version) error {
	d := decoder{b: b}
	*m = SubscribeEnd{Group: d.varint()}
	return d.done()
}

// Track (lite-05) opens a track stream (StreamTrack): the subscriber asks
// for a track's fixed properties, answered by one TrackInfo and FIN.
type Track struct {
	Broadcast string
	Track     string
}

func (*Track) messageName() string      { return "track" }
func (*Track) supported(v Version) bool { return v.hasTrackStream() }

func (m *Track) appendBody(b []byte, _ Version) ([]byte, error) {
	e := encoder{b: b}
	e.string(m.Broadcast)
	e.string(m.Track)
	return e.b, e.err
}

func (m *Track) decodeBody(b []byte, _ Version) error {
	d := decoder{b: b}
	*m = Track{Broadcast: d.string(), Track: d.string()}
	return d.done()
}

// TrackInfo (lite-05) is the publisher's answer on a track stream.
type TrackInfo struct {
	// Priority is the publisher priority, one raw byte.
	Priority uint8
	// Ordered is the publisher's delivery order (decoded leniently, as
	// Rust does: any non-zero byte is true).
	Ordered bool
	// MaxLatency is how long the publisher keeps a group older than the
	// latest, whole milliseconds.
	MaxLatency time.Duration
	// Timescale is the units per second of the track's frame timestamps;
	// never 0 (ErrInvalid on encode and decode).
	Timescale uint64
}

func (*TrackInfo) messageName() string      { return "track info" }
func (*TrackInfo) supported(v Version) bool { return v.hasTrackStream() }

func (m *TrackInfo) appendBody(b []byte, _ Version) ([]byte, error) {
	e := encoder{b: b}
	if m.Timescale == 0 {
		e.fail(fmt.Errorf("timescale 0: %w", ErrInvalid))
	}
	e.u8(m.Priority)
	e.bool(m.Ordered)
	e.millis(m.MaxLatency)
	e.varint(m.Timescale)
	return e.b, e.err
}

func (m *TrackInfo) decodeBody(b []byte, _ Version) error {
	d := decoder{b: b}
	*m = TrackInfo{Priority: d.u8(), Ordered: d.flag(), MaxLatency: d.millis(), Timescale: d.varint()}
	if d.err == nil && m.Timescale == 0 {
		d.fail(fmt.Errorf("timescale 0: %w", ErrInvalid))
	}
	return d.done()
}

// Frame timestamps (lite-05). Each frame on a group or fetch stream starts
// with zigzag(ts - prev) as a varint, prev being the previous frame's
// timestamp in the same group (0 before the first), then size and payload.
// Zigzag maps n >= 0 to 2n and n < 0 to -2n-1, so small deltas of either
// sign stay one byte.

// MaxTimestamp is the largest frame timestamp this package carries: the
// reference keeps timestamps in a 62-bit varint (a datagram carries one
// absolute), so a larger one could not be forwarded.
const MaxTimestamp = MaxVarint

// maxZigzagDelta bounds |delta| so that its zigzag form fits a varint.
const maxZigzagDelta = MaxVarint / 2

// AppendTimestamp appends the timestamp field of a frame with timestamp
// ts after one with prev (0 for a group's first frame). Both must be at
// most MaxTimestamp, and their difference must fit a 62-bit zigzag varint
// (ErrInvalid otherwise). It allocates nothing but b's growth.
func AppendTimestamp(b []byte, prev, ts uint64) ([]byte, error) {
	// A media stream's deltas (0 for frames without a timestamp, a frame
	// interval, a B-frame's step back) are small: a zigzag of one or two
	// varint bytes, appended here without a call.
	var z uint64
	switch {
	case ts >= prev && ts-prev < smallDelta && ts <= MaxTimestamp:
		z = (ts - prev) << 1
	case ts < prev && prev-ts <= smallDelta && prev <= MaxTimestamp:
		z = (prev-ts)<<1 - 1
	default:
		return appendTimestamp(b, prev, ts)
	}
	if z < 1<<6 {
		return append(b, byte(z)), nil
	}
	return append(b, 0x40|byte(z>>8), byte(z)), nil
}

// smallDelta bounds the timestamp deltas AppendTimestamp encodes inline:
// a zigzag form below 2^14, one or two varint bytes.
const smallDelta = 1 << 13

// appendTimestamp is AppendTimestamp for any delta.
func appendTimestamp(b []byte, prev, ts uint64) ([]byte, error) {
	if ts > MaxTimestamp || prev > MaxTimestamp {
		return b, wrap("frame timestamp", fmt.Errorf("%d: %w", ts, ErrInvalid))
	}
	var z uint64
	if ts >= prev {
		d := ts - prev
		if d > maxZigzagDelta {
			return b, wrap("frame timestamp", fmt.Errorf("delta %d: %w", d, ErrInvalid))
		}
		z = d << 1
	} else {
		d := prev - ts
		if d > maxZigzagDelta+1 {
			return b, wrap("frame timestamp", fmt.Errorf("delta -%d: %w", d, ErrInvalid))
		}
		z = d<<1 - 1
	}
	return AppendVarint(b, z), nil
}

// applyDelta returns prev plus the zigzag delta z, refusing a result below
// 0 or above MaxTimestamp.
func applyDelta(prev, z uint64) (uint64, error) {
	if prev > MaxTimestamp {
		return 0, wrap("frame timestamp", fmt.Errorf("previous %d: %w", prev, ErrInvalid))
	}
	if z&1 == 0 {
		d := z >> 1
		if d > MaxTimestamp-prev {
			return 0, wrap("frame timestamp", fmt.Errorf("%d + %d: %w", prev, d, ErrInvalid))
		}
		return prev + d, nil
	}
	d := z>>1 + 1
	if d > prev {
		return 0, wrap("frame timestamp", fmt.Errorf("%d - %d: %w", prev, d, ErrInvalid))
	}
	return prev - d, nil
}

// ParseTimestamp decodes a frame's timestamp field from the start of b,
// given the previous frame's timestamp, returning the timestamp and the
// bytes used. A truncated varint is ErrShort; a delta that would take the
// timestamp below 0 or above MaxTimestamp is ErrInvalid.
func ParseTimestamp(b []byte, prev uint64) (uint64, int, error) {
	z, n, err := ParseVarint(b)
	if err != nil {
		return 0, 0, errTimestampShort
	}
	ts, err := applyDelta(prev, z)
	return ts, n, err
}

// errTimestampShort is made once: a reader scanning a buffer for complete
// frames meets it at the end of every buffer.
var errTimestampShort = wrap("frame timestamp", ErrShort)

// ReadTimestamp reads a frame's timestamp field from r, as ParseTimestamp.
// It returns io.EOF, unwrapped, if r ends before the first byte: that is
// the clean end of a group.
func ReadTimestamp(r io.ByteReader, prev uint64) (uint64, error) {
	z, err := ReadVarint(r)
	if err != nil {
		return 0, err
	}
	return applyDelta(prev, z)
}

// ParseFrameHeader parses what precedes a frame's payload at the start of
// b: if stamped (lite-05), the timestamp field, decoded against prev as
// ParseTimestamp does; then the size. n is the header's length. A b that
// does not hold the whole header is ErrShort, a timestamp out of range
// ErrInvalid. It allocates nothing.
func ParseFrameHeader(b []byte, stamped bool, prev uint64) (ts, size uint64, n int, err error) {
	if stamped {
		// Zigzag deltas of one or two bytes (0 for frames without a
		// timestamp, a frame interval, a B-frame's step back) are decoded
		// here without a call.
		var z uint64
		switch {
		case len(b) > 0 && b[0] < 0x40:
			z, n = uint64(b[0]), 1
		case len(b) > 1 && b[0] < 0x80:
			z, n = uint64(b[0]&0x3f)<<8|uint64(b[1]), 2
		}
		switch d := z >> 1; {
		case n > 0 && z&1 == 0 && prev <= MaxTimestamp-d:
			ts = prev + d
		case n > 0 && z&1 == 1 && d < prev && prev <= MaxTimestamp:
			ts = prev - d - 1
		default: // a longer field, or out of range: ParseTimestamp says how
			if ts, n, err = ParseTimestamp(b, prev); err != nil {
				return 0, 0, 0, err
			}
		}
	}
	size, k, err := ParseVarint(b[n:])
	if err != nil {
		return 0, 0, 0, err
	}
	return ts, size, n + k, nil
}

// Datagram (lite-05) is one QUIC datagram: a single-frame group of a
// subscription. The payload runs to the end of the datagram (no length),
// and the timestamp is absolute.
type Datagram struct {
	SubscribeID uint64
	Sequence    uint64
	Timestamp   uint64
	Payload     []byte
}

// MaxDatagram is the largest datagram (header and payload) sent or
// accepted: a conservative QUIC datagram size that fits every path's
// minimum MTU, as the reference does.
const MaxDatagram = 1200

// AppendDatagram appends d encoded for v. It fails with ErrUnsupported
// before lite-05, and with ErrTooLarge if the result exceeds MaxDatagram.
func AppendDatagram(b []byte, v Version, d *Datagram) ([]byte, error) {
	if !v.hasDatagrams() {
		return b, wrap("datagram", fmt.Errorf("%v: %w", v, ErrUnsupported))
	}
	e := encoder{b: b}
	e.varint(d.SubscribeID)
	e.varint(d.Sequence)
	e.varint(d.Timestamp)
	if e.err != nil {
		return b, wrap("datagram", e.err)
	}
	if len(e.b)-len(b)+len(d.Payload) > MaxDatagram {
		return b, wrap("datagram", fmt.Errorf("%d bytes: %w", len(e.b)-len(b)+len(d.Payload), ErrTooLarge))
	}
	return append(e.b, d.Payload...), nil
}

// DecodeDatagram decodes one datagram for v into d. The payload aliases p.
// A datagram over MaxDatagram is ErrTooLarge; a truncated header ErrShort.
func DecodeDatagram(p []byte, v Version, d *Datagram) error {
	if !v.hasDatagrams() {
		return wrap("datagram", fmt.Errorf("%v: %w", v, ErrUnsupported))
	}
	if len(p) > MaxDatagram {
		return wrap("datagram", fmt.Errorf("%d bytes: %w", len(p), ErrTooLarge))
	}
	dec := decoder{b: p}
	*d = Datagram{SubscribeID: dec.varint(), Sequence: dec.varint(), Timestamp: dec.varint()}
	if dec.err != nil {
		return wrap("datagram", dec.err)
	}
	if len(dec.b) > 0 {
		d.Payload = dec.b
	}
	return nil
}
