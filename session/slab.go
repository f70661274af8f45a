// Payload memory of received frames: chunks shared by a group's frames, and
// large frames charged to the receive budget as their bytes arrive.

package session

import (
	"errors"
	"io"
	"slices"

	"github.com/moqp2p/moqp2p/broadcast"
	"github.com/moqp2p/moqp2p/internal/wire"
)

// chunkMax is the largest chunk, and the size from which a frame gets
// memory of its own.
const chunkMax = 16 << 10

// chunks reads a group stream straight into payload memory: into a chunk,
// of which each frame that lies complete is a slice, so a frame's bytes are
// copied once, from the transport, instead of through a read buffer (the
// one copy a moqp2p subscriber had beyond a bare quic-go reader). Chunks
// double from chunkMin up to chunkMax (a frame that does not fit what is
// left of one is moved to the next, with what else is pending); frames of
// chunkMax or more get memory of their own (readPayload). A chunk lives
// while any frame carved from it is referenced: beyond its frames it holds
// their size prefixes, the start of a frame that moved on, and, in a
// group's last chunk, what the stream did not fill, at most what the
// group's earlier chunks hold and under chunkMax. A small frame still
// arriving is charged to the receive budget from its header on (its size,
// as declared); the rest of a chunk is not, as a read buffer is not.
type chunks struct {
	src    io.Reader
	buf    []byte // the chunk: buf[lo:hi] read and not taken yet
	lo, hi int
	next   int   // size of the next chunk
	err    error // the stream's error, once the data before it is taken
}

// chunkMin is the size of a group's first chunk, unless what was read with
// its header is more.
const chunkMin = 2 << 10

// startChunks reads what gr holds (read with the stream's header) into a
// first chunk and returns the chunks reading the rest of its stream (gr's
// own: pooled with it, so a group allocates nothing for them). When
// the stream's FIN is in too (a small group sent in one go), the chunk is
// exactly what was buffered: the group costs one allocation of its frames'
// bytes and their size prefixes, nothing unused.
func (gr *groupReader) startChunks() *chunks {
	buffered, _ := gr.Peek(gr.Buffered())
	size := len(buffered)
	if !gr.src.eof {
		size = max(size, chunkMin)
	}
	c := &gr.chunks
	*c = chunks{src: (*eofSource)(gr), buf: make([]byte, size)}
	c.hi = copy(c.buf, buffered)
	_, _ = gr.Discard(len(buffered))
	if gr.src.eof { // the chunk holds the rest of the stream: no read (nor chunk) for the FIN
		c.err = io.EOF
	}
	c.next = min(max(2*size, chunkMin), chunkMax)
	return c
}

// frames appends to dst the frames that lie complete in the chunk (at most
// cap(dst)), each a slice of it capped at its end, and returns them with
// their total size, and their timestamps to ts (lite-05). It stops at a
// frame that is not all here or is over maxSize.
func (c *chunks) frames(dst [][]byte, maxSize int, ts *frameStamps) ([][]byte, uint64) {
	var total uint64
	ts.batch = ts.batch[:0]
	for len(dst) < cap(dst) {
		stamp, size, n, err := wire.ParseFrameHeader(c.buf[c.lo:c.hi], ts.on, ts.prev)
		if err != nil || size > uint64(maxSize) || size > uint64(c.hi-c.lo-n) {
			break
		}
		if ts.on {
			ts.add(stamp)
		}
		start := c.lo + n
		end := start + int(size)
		dst = append(dst, c.buf[start:end:end])
		c.lo = end
		total += size
	}
	return dst, total
}

// read reads more of the stream into the chunk, first moving what is
// pending to a new chunk if the next need bytes do not fit this one.
func (c *chunks) read(need int) error {
	if c.err != nil {
		return c.err
	}
	if len(c.buf)-c.lo < need {
		size := max(c.next, need)
		buf := make([]byte, size)
		c.hi = copy(buf, c.buf[c.lo:c.hi])
		c.buf, c.lo = buf, 0
		c.next = min(2*size, chunkMax)
	}
	n, err := c.src.Read(c.buf[c.hi:])
	c.hi += n
	if err != nil {
		if n == 0 {
			return err
		}
		c.err = err // after the data that came with it
	}
	return nil
}

// Read reads what is pending, then from the stream: a large frame's bytes.
func (c *chunks) Read(p []byte) (int, error) {
	if c.lo < c.hi {
		n := copy(p, c.buf[c.lo:c.hi])
		c.lo += n
		return n, nil
	}
	if c.err != nil {
		return 0, c.err
	}
	return c.src.Read(p)
}

// exactAlloc is the largest frame whose declared size is allocated up front.
// Beyond it the buffer grows with the bytes that actually arrive, so a peer
// cannot pin memory by declaring sizes it never sends.
const exactAlloc = 64 << 10

// readPayload reads exactly size bytes, into memory of their own (allocated
// up front up to exactAlloc). The memory is charged to b, the frame's group,
// as it is allocated, so that frames still arriving count against the
// receive budget: it returns what it charged, for the caller to release
// when the frame goes to its group, and releases it itself on failure.
func readPayload(r io.Reader, size uint64, b *broadcast.GroupProducer) (p []byte, held int64, err error) {
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
		p := make([]byte, size)
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
