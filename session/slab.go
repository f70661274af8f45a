// Payload memory of received frames: slabs shared by a group's frames, and
// large frames charged to the receive budget as their bytes arrive.

package session

import (
	"errors"
	"io"
	"slices"

	"github.com/moqp2p/moqp2p/broadcast"
)

// slab hands out the payload memory of one group's frames: a frame's bytes
// are carved from a shared allocation rather than allocated each. Slabs
// double from the first batch's size up to slabMax, so a group that
// arrives whole (one batch) costs one exact allocation, and one that
// trickles in a frame or two per read (a subscriber among many, or a slow
// link) costs a few allocations instead of one per batch. A slab lives
// while any frame carved from it is referenced; the unused tail of the
// last one is at most half the group's bytes and below slabMax.
type slab struct {
	free []byte
	next int // size of the next slab
}

const slabMax = 16 << 10

// take returns n bytes (capacity n) of fresh payload memory.
func (m *slab) take(n int) []byte {
	if n > len(m.free) {
		if n >= slabMax {
			return make([]byte, n) // a large frame: its own allocation
		}
		size := max(n, m.next)
		m.free = make([]byte, size)
		m.next = min(2*size, slabMax)
	}
	p := m.free[:n:n]
	m.free = m.free[n:]
	return p
}

// exactAlloc is the largest frame whose declared size is allocated up front.
// Beyond it the buffer grows with the bytes that actually arrive, so a peer
// cannot pin memory by declaring sizes it never sends.
const exactAlloc = 64 << 10

// readPayload reads exactly size bytes, into memory from mem when the size
// is allocated up front. The memory is charged to b as it is allocated, so
// that frames still arriving count against the receive budget: it returns
// what it charged, for the caller to release when the frame goes to its
// group, and releases it itself on failure.
func readPayload(r io.Reader, size uint64, mem *slab, b *broadcast.Budget) (p []byte, held int64, err error) {
	defer func() {
		if err != nil {
			b.Release(held)
			held = 0
		}
	}()
	grow := func(n int) error {
		if !b.Reserve(int64(n)) {
			return broadcast.ErrBudget
		}
		held += int64(n)
		return nil
	}
	if size <= exactAlloc {
		if err := grow(int(size)); err != nil {
			return nil, held, err
		}
		p := mem.take(int(size))
		_, err := io.ReadFull(r, p)
		return p, held, err
	}
	if err := grow(exactAlloc); err != nil {
		return nil, held, err
	}
	p = make([]byte, 0, exactAlloc)
	for uint64(len(p)) < size {
		if len(p) == cap(p) {
			n := int(min(uint64(cap(p)), size-uint64(len(p))))
			if err := grow(n); err != nil {
				return nil, held, err
			}
			p = slices.Grow(p, n)
		}
		n := int(min(uint64(cap(p)-len(p)), size-uint64(len(p))))
		m, err := io.ReadFull(r, p[len(p):len(p)+n])
		p = p[:len(p)+m]
		if err != nil {
			if errors.Is(err, io.EOF) {
				err = io.ErrUnexpectedEOF
			}
			return nil, held, err
		}
	}
	return p, held, nil
}
