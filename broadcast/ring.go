package broadcast

// ring is a track's groups in arrival order: a FIFO that pops from the
// front as the cache evicts and pushes at the back as groups arrive. A
// ring rather than a re-sliced slice: the slice's append would copy the
// whole cache every time its front had moved a capacity's worth.
type ring struct {
	buf  []*group // len is 0 or a power of two
	head int      // index in buf of element 0
	n    int
}

func (r *ring) len() int { return r.n }

// at returns element i, 0 <= i < len.
func (r *ring) at(i int) *group { return r.buf[(r.head+i)&(len(r.buf)-1)] }

// clear sets element i to nil (evicted), keeping its place.
func (r *ring) clear(i int) { r.buf[(r.head+i)&(len(r.buf)-1)] = nil }

func (r *ring) push(g *group) {
	if r.n == len(r.buf) {
		buf := make([]*group, max(8, 2*len(r.buf)))
		for i := range r.n {
			buf[i] = r.at(i)
		}
		r.buf, r.head = buf, 0
	}
	r.buf[(r.head+r.n)&(len(r.buf)-1)] = g
	r.n++
}

// pop drops element 0; the ring must not be empty.
func (r *ring) pop() {
	r.buf[r.head] = nil
	r.head = (r.head + 1) & (len(r.buf) - 1)
	r.n--
}
