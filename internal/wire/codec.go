package wire

import (
	"fmt"
	"math"
	"time"
	"unicode/utf8"
)

// encoder appends message fields to b. The first error sticks and later
// calls do nothing, so message encoders read as a plain list of fields.
type encoder struct {
	b   []byte
	err error
}

func (e *encoder) fail(err error) {
	if e.err == nil {
		e.err = err
	}
}

func (e *encoder) varint(v uint64) {
	if e.err != nil {
		return
	}
	if v > MaxVarint {
		e.fail(fmt.Errorf("varint %d over 2^62-1: %w", v, ErrInvalid))
		return
	}
	e.b = AppendVarint(e.b, v)
}

// u8 writes one raw byte (priority is not a varint).
func (e *encoder) u8(v uint8) {
	if e.err == nil {
		e.b = append(e.b, v)
	}
}

func (e *encoder) bool(v bool) {
	var x uint8
	if v {
		x = 1
	}
	e.u8(x)
}

// string writes a varint length and the bytes; the peers reject invalid
// UTF-8, so we refuse to send it.
func (e *encoder) string(s string) {
	if e.err != nil {
		return
	}
	if !utf8.ValidString(s) {
		e.fail(fmt.Errorf("string: %w: not UTF-8", ErrInvalid))
		return
	}
	e.b = AppendVarint(e.b, uint64(len(s)))
	e.b = append(e.b, s...)
}

func (e *encoder) bytes(p []byte) {
	if e.err == nil {
		e.b = AppendVarint(e.b, uint64(len(p)))
		e.b = append(e.b, p...)
	}
}

// millis writes d as whole milliseconds, truncating; negative is invalid.
func (e *encoder) millis(d time.Duration) {
	if d < 0 {
		e.fail(fmt.Errorf("negative duration %v: %w", d, ErrInvalid))
		return
	}
	e.varint(uint64(d / time.Millisecond))
}

// group writes the "+1" form of an optional group sequence.
func (e *encoder) group(g GroupRef) {
	if !g.Set {
		e.varint(0)
		return
	}
	if g.Seq >= MaxVarint {
		e.fail(fmt.Errorf("group sequence %d: %w", g.Seq, ErrInvalid))
		return
	}
	e.varint(g.Seq + 1)
}

// decoder is a cursor over one message body. Like encoder, the first error
// sticks: later reads return zero values, so message decoders need no error
// checks between fields. b is the unread rest of the body.
type decoder struct {
	b   []byte
	err error
}

func (d *decoder) fail(err error) {
	if d.err == nil {
		d.err = err
	}
	d.b = nil
}

func (d *decoder) varint() uint64 {
	if d.err != nil {
		return 0
	}
	v, n, err := ParseVarint(d.b)
	if err != nil {
		d.fail(ErrShort)
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) u8() uint8 {
	if d.err != nil {
		return 0
	}
	if len(d.b) == 0 {
		d.fail(ErrShort)
		return 0
	}
	c := d.b[0]
	d.b = d.b[1:]
	return c
}

// announceStatus reads the ANNOUNCE status byte: 0 ended, 1 active, and
// from lite-05 on 2 (restart), which replaces an earlier `active` and so
// decodes as active.
func (d *decoder) announceStatus(v Version) bool {
	c := d.u8()
	switch {
	case c <= 1:
		return c == 1
	case c == 2 && v.announceOK():
		return true
	}
	d.fail(fmt.Errorf("status %d: %w", c, ErrInvalid))
	return false
}

// flag reads a lenient boolean byte: non-zero is true, as Rust decodes
// "ordered".
func (d *decoder) flag() bool { return d.u8() != 0 }

// raw reads a varint length and returns that many bytes, aliasing the body.
// A length beyond the body is ErrShort, so nothing is allocated for it.
func (d *decoder) raw() []byte {
	n := d.varint()
	if d.err != nil {
		return nil
	}
	if n > uint64(len(d.b)) {
		d.fail(ErrShort)
		return nil
	}
	p := d.b[:n:n]
	d.b = d.b[n:]
	return p
}

func (d *decoder) string() string {
	p := d.raw()
	if !utf8.Valid(p) {
		d.fail(fmt.Errorf("string: %w: not UTF-8", ErrInvalid))
		return ""
	}
	return string(p)
}

// bytes reads a length-prefixed byte string and copies it out of the body.
// Empty is returned as nil so decoded values compare equal however the body
// buffer was obtained.
func (d *decoder) bytes() []byte {
	p := d.raw()
	if len(p) == 0 {
		return nil
	}
	return append([]byte(nil), p...)
}

// count reads an element count for a list whose elements take at least
// minSize bytes each, and checks it against limit (0 = none). Bounding by
// the bytes present keeps a forged count from causing a large allocation;
// a list of zero-size elements therefore needs a limit.
func (d *decoder) count(minSize int, limit uint64, what string) int {
	if minSize <= 0 && limit == 0 {
		minSize = 1 // unbounded would be a bug; stay safe
	}
	n := d.varint()
	if d.err != nil {
		return 0
	}
	if limit > 0 && n > limit {
		d.fail(fmt.Errorf("%d %s, max %d: %w", n, what, limit, ErrInvalid))
		return 0
	}
	if minSize > 0 && n > uint64(len(d.b)/minSize) {
		d.fail(ErrShort)
		return 0
	}
	return int(n)
}

// maxMillis is the largest millisecond count a time.Duration can hold.
const maxMillis = math.MaxInt64 / int64(time.Millisecond)

// millis reads varint milliseconds. Values beyond time.Duration saturate
// rather than fail, so a peer's "effectively forever" stays accepted.
func (d *decoder) millis() time.Duration {
	ms := d.varint()
	if ms > uint64(maxMillis) {
		ms = uint64(maxMillis)
	}
	return time.Duration(ms) * time.Millisecond
}

// group reads the "+1" form of an optional group sequence.
func (d *decoder) group() GroupRef {
	w := d.varint()
	if w == 0 {
		return GroupRef{}
	}
	return GroupRef{Seq: w - 1, Set: true}
}

// done reports the sticky error, or ErrLong if bytes are left over.
func (d *decoder) done() error {
	if d.err != nil {
		return d.err
	}
	if len(d.b) != 0 {
		return fmt.Errorf("%d byte(s) left: %w", len(d.b), ErrLong)
	}
	return nil
}
