package wire

import (
	"fmt"
	"slices"
)

// Well-known compat SETUP parameter IDs.
const (
	// ParamMaxRequestID is an integer parameter (even ID).
	ParamMaxRequestID = 2
	// ParamImplementation is a byte-string parameter (odd ID) naming the
	// peer's implementation, e.g. "moq-lite-js".
	ParamImplementation = 7
)

// Params are the compat SETUP parameters. The ID's parity fixes the value
// type: even IDs carry a varint (Ints), odd IDs a length-prefixed byte
// string (Bytes). A key of the wrong parity fails to encode with ErrInvalid.
// Encoding is deterministic: even IDs ascending, then odd IDs ascending,
// matching Rust's even-before-odd order. Decoding rejects duplicate IDs and
// leaves a map nil when it gets no entries.
type Params struct {
	Ints  map[uint64]uint64
	Bytes map[uint64][]byte
}

// MaxRequestID returns ParamMaxRequestID if present.
func (p Params) MaxRequestID() (uint64, bool) {
	v, ok := p.Ints[ParamMaxRequestID]
	return v, ok
}

// Implementation returns ParamImplementation if present.
func (p Params) Implementation() (string, bool) {
	v, ok := p.Bytes[ParamImplementation]
	return string(v), ok
}

func (p *Params) appendTo(e *encoder) {
	e.varint(uint64(len(p.Ints) + len(p.Bytes)))
	for _, id := range sortedKeys(p.Ints) {
		if id%2 != 0 {
			e.fail(fmt.Errorf("integer param %d has odd id: %w", id, ErrInvalid))
			return
		}
		e.varint(id)
		e.varint(p.Ints[id])
	}
	for _, id := range sortedKeys(p.Bytes) {
		if id%2 != 1 {
			e.fail(fmt.Errorf("bytes param %d has even id: %w", id, ErrInvalid))
			return
		}
		e.varint(id)
		e.bytes(p.Bytes[id])
	}
}

func sortedKeys[V any](m map[uint64]V) []uint64 {
	if len(m) == 0 {
		return nil
	}
	keys := make([]uint64, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

func (p *Params) decodeFrom(d *decoder) {
	*p = Params{}
	// A parameter takes at least two bytes: id and value (or length).
	n := d.count(2, 0, "params")
	for range n {
		id := d.varint()
		if d.err != nil {
			return
		}
		_, dupInt := p.Ints[id]
		_, dupBytes := p.Bytes[id]
		if dupInt || dupBytes {
			d.fail(fmt.Errorf("duplicate param %d: %w", id, ErrInvalid))
			return
		}
		if id%2 == 0 {
			v := d.varint()
			if p.Ints == nil {
				p.Ints = make(map[uint64]uint64)
			}
			p.Ints[id] = v
		} else {
			v := d.bytes()
			if p.Bytes == nil {
				p.Bytes = make(map[uint64][]byte)
			}
			p.Bytes[id] = v
		}
	}
}
