package wire

import (
	"fmt"
	"io"
	"time"
)

// GroupRef is an optional group sequence. On the wire (SUBSCRIBE,
// SUBSCRIBE_OK, SUBSCRIBE_UPDATE) it is one varint: 0 when unset, Seq+1
// otherwise, so Seq may be at most MaxVarint-1.
type GroupRef struct {
	Seq uint64
	Set bool
}

// GroupAt returns a set GroupRef for sequence seq.
func GroupAt(seq uint64) GroupRef { return GroupRef{Seq: seq, Set: true} }

// Subscribe opens a subscription; it is the first message on a subscribe
// stream.
type Subscribe struct {
	// ID is chosen by the subscriber, unique per session, and repeated in
	// every Group header of the subscription.
	ID        uint64
	Broadcast string
	Track     string
	// Priority is the subscriber priority, one raw byte; higher is more
	// important.
	Priority uint8

	// The remaining fields exist from lite-03 on; before that they are
	// ignored on encode and zero on decode.

	// Ordered asks for oldest-first delivery. Decode treats any non-zero
	// byte as true, as Rust does; encode writes 0 or 1.
	Ordered bool
	// MaxLatency is sent as whole milliseconds (truncated); 0 = unlimited.
	MaxLatency time.Duration
	// Start is the first group wanted; unset = the latest group.
	Start GroupRef
	// End is the last group wanted, inclusive; unset = open-ended.
	End GroupRef
}

func (*Subscribe) messageName() string      { return "subscribe" }
func (*Subscribe) supported(v Version) bool { return v.Known() }

func (m *Subscribe) appendBody(b []byte, v Version) ([]byte, error) {
	e := encoder{b: b}
	e.varint(m.ID)
	e.string(m.Broadcast)
	e.string(m.Track)
	e.u8(m.Priority)
	if v.subscribeExtended() {
		appendTail(&e, m.Ordered, m.MaxLatency, m.Start, m.End)
	}
	return e.b, e.err
}

func (m *Subscribe) decodeBody(b []byte, v Version) error {
	d := decoder{b: b}
	*m = Subscribe{ID: d.varint(), Broadcast: d.string(), Track: d.string(), Priority: d.u8()}
	if v.subscribeExtended() {
		m.Ordered, m.MaxLatency, m.Start, m.End = decodeTail(&d)
	}
	return d.done()
}

// appendTail and decodeTail handle the ordered · max_latency · start · end
// fields shared by SUBSCRIBE, SUBSCRIBE_OK and SUBSCRIBE_UPDATE.
func appendTail(e *encoder, ordered bool, lat time.Duration, start, end GroupRef) {
	e.bool(ordered)
	e.millis(lat)
	e.group(start)
	e.group(end)
}

func decodeTail(d *decoder) (ordered bool, lat time.Duration, start, end GroupRef) {
	return d.flag(), d.millis(), d.group(), d.group()
}

// SubscribeOK is the publisher's first response on a subscribe stream.
// Its body depends on the version: lite-01 carries only Priority, lite-02
// nothing, lite-03/04 all five fields. Fields not on the wire are ignored
// on encode and zero on decode.
type SubscribeOK struct {
	// Priority is the publisher priority.
	Priority   uint8
	Ordered    bool
	MaxLatency time.Duration
	Start      GroupRef
	End        GroupRef
}

func (*SubscribeOK) messageName() string      { return "subscribe ok" }
func (*SubscribeOK) supported(v Version) bool { return v.subscribeOKBody() != okNone }

func (m *SubscribeOK) appendBody(b []byte, v Version) ([]byte, error) {
	e := encoder{b: b}
	switch v.subscribeOKBody() {
	case okPriority:
		e.u8(m.Priority)
	case okFull:
		e.u8(m.Priority)
		appendTail(&e, m.Ordered, m.MaxLatency, m.Start, m.End)
	}
	return e.b, e.err
}

func (m *SubscribeOK) decodeBody(b []byte, v Version) error {
	d := decoder{b: b}
	*m = SubscribeOK{}
	switch v.subscribeOKBody() {
	case okPriority:
		m.Priority = d.u8()
	case okFull:
		m.Priority = d.u8()
		m.Ordered, m.MaxLatency, m.Start, m.End = decodeTail(&d)
	}
	return d.done()
}

// SubscribeDrop (lite-03+) tells the subscriber that groups Start..End
// (inclusive, plain sequences without the +1 form) will not be delivered.
// Note that a Rust 0.16 subscriber fails on any response after SUBSCRIBE_OK.
type SubscribeDrop struct {
	Start uint64
	End   uint64
	Error uint64
}

func (*SubscribeDrop) messageName() string      { return "subscribe drop" }
func (*SubscribeDrop) supported(v Version) bool { return v.typedSubscribeResponse() }

func (m *SubscribeDrop) appendBody(b []byte, _ Version) ([]byte, error) {
	e := encoder{b: b}
	e.varint(m.Start)
	e.varint(m.End)
	e.varint(m.Error)
	return e.b, e.err
}

func (m *SubscribeDrop) decodeBody(b []byte, _ Version) error {
	d := decoder{b: b}
	*m = SubscribeDrop{Start: d.varint(), End: d.varint(), Error: d.varint()}
	return d.done()
}

// SubscribeUpdate changes a subscription; the subscriber may send it after
// Subscribe. lite-01/02 carry only Priority. A Rust 0.16 publisher aborts
// the stream on it, so only send it to peers known to accept it.
type SubscribeUpdate struct {
	Priority   uint8
	Ordered    bool
	MaxLatency time.Duration
	Start      GroupRef
	End        GroupRef
}

func (*SubscribeUpdate) messageName() string      { return "subscribe update" }
func (*SubscribeUpdate) supported(v Version) bool { return v.Known() }

func (m *SubscribeUpdate) appendBody(b []byte, v Version) ([]byte, error) {
	e := encoder{b: b}
	e.u8(m.Priority)
	if v.subscribeExtended() {
		appendTail(&e, m.Ordered, m.MaxLatency, m.Start, m.End)
	}
	return e.b, e.err
}

func (m *SubscribeUpdate) decodeBody(b []byte, v Version) error {
	d := decoder{b: b}
	*m = SubscribeUpdate{Priority: d.u8()}
	if v.subscribeExtended() {
		m.Ordered, m.MaxLatency, m.Start, m.End = decodeTail(&d)
	}
	return d.done()
}

// Subscribe response types, the varint before the length: lite-03/04
// have OK (0) and DROP (1); lite-05 has START (0), END (1) and DROP (2).
const (
	responseOK    = 0
	responseDrop  = 1
	responseStart = 0
	responseEnd   = 1
	responseDrop5 = 2
)

// responseType returns the type varint of response m in v, or false if m
// is not a response v has.
func responseType(m Message, v Version) (uint64, bool) {
	if !m.supported(v) {
		return 0, false
	}
	switch m.(type) {
	case *SubscribeOK:
		return responseOK, true
	case *SubscribeDrop:
		if v.subscribeRange() {
			return responseDrop5, true
		}
		return responseDrop, true
	case *SubscribeStart:
		return responseStart, true
	case *SubscribeEnd:
		return responseEnd, true
	}
	return 0, false
}

// AppendSubscribeResponse appends a publisher response on a subscribe
// stream: a *SubscribeOK or *SubscribeDrop (lite-01..04; lite-01/02 have
// only an untyped SubscribeOK), or a *SubscribeStart, *SubscribeEnd or
// *SubscribeDrop (lite-05). From lite-03 on the message is preceded by its
// type varint. A response the version lacks gives ErrUnsupported.
func AppendSubscribeResponse(b []byte, v Version, m Message) ([]byte, error) {
	switch m.(type) {
	case *SubscribeOK, *SubscribeDrop, *SubscribeStart, *SubscribeEnd:
	default:
		return b, wrap("subscribe response", fmt.Errorf("%T: %w", m, ErrInvalid))
	}
	typ, ok := responseType(m, v)
	if !ok {
		return b, wrap(m.messageName(), fmt.Errorf("%v: %w", v, ErrUnsupported))
	}
	if !v.typedSubscribeResponse() {
		return AppendMessage(b, v, m)
	}
	out, err := AppendMessage(AppendVarint(b, typ), v, m)
	if err != nil {
		return b, err
	}
	return out, nil
}

// responseFor returns an empty message for a response type.
func responseFor(typ uint64, v Version) (Message, error) {
	if !v.typedSubscribeResponse() {
		return &SubscribeOK{}, nil
	}
	if v.subscribeRange() {
		switch typ {
		case responseStart:
			return &SubscribeStart{}, nil
		case responseEnd:
			return &SubscribeEnd{}, nil
		case responseDrop5:
			return &SubscribeDrop{}, nil
		}
	} else {
		switch typ {
		case responseOK:
			return &SubscribeOK{}, nil
		case responseDrop:
			return &SubscribeDrop{}, nil
		}
	}
	return nil, wrap("subscribe response", fmt.Errorf("type %d: %w", typ, ErrUnsupported))
}

// DecodeSubscribeResponse decodes one subscribe response for v from the
// start of b, returning a *SubscribeOK or *SubscribeDrop (lite-01..04) or a
// *SubscribeStart, *SubscribeEnd or *SubscribeDrop (lite-05), and the bytes
// used.
// An unknown response type wraps ErrUnsupported.
func DecodeSubscribeResponse(b []byte, v Version) (Message, int, error) {
	if !v.Known() {
		return nil, 0, wrap("subscribe response", fmt.Errorf("%v: %w", v, ErrUnsupported))
	}
	k := 0
	var typ uint64
	if v.typedSubscribeResponse() {
		var err error
		if typ, k, err = ParseVarint(b); err != nil {
			return nil, 0, wrap("subscribe response", ErrShort)
		}
	}
	m, err := responseFor(typ, v)
	if err != nil {
		return nil, 0, err
	}
	n, err := DecodeMessage(b[k:], v, m)
	if err != nil {
		return nil, 0, err
	}
	return m, k + n, nil
}

// ReadSubscribeResponse reads one subscribe response for v from r,
// returning what DecodeSubscribeResponse would. It returns io.EOF, unwrapped,
// when the stream ends cleanly before the response.
func ReadSubscribeResponse(r Reader, v Version, maxLen int) (Message, error) {
	if !v.Known() {
		return nil, wrap("subscribe response", fmt.Errorf("%v: %w", v, ErrUnsupported))
	}
	var typ uint64
	if v.typedSubscribeResponse() {
		var err error
		if typ, err = ReadVarint(r); err != nil {
			if err == io.EOF { // bare only, as in ReadMessage
				return nil, io.EOF
			}
			return nil, wrap("subscribe response", err)
		}
	}
	m, err := responseFor(typ, v)
	if err != nil {
		return nil, err
	}
	if err := ReadMessage(r, v, m, maxLen); err != nil {
		if err == io.EOF && v.typedSubscribeResponse() { // ReadMessage's clean end, which is bare
			// The type was read, so the stream ended inside the response.
			return nil, wrap(m.messageName(), ErrShort)
		}
		return nil, err
	}
	return m, nil
}
