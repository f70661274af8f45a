package p2pstream

import (
	"io"
	"sync"

	"github.com/libp2p/go-libp2p/core/network"

	"github.com/moqp2p/moqp2p/transport"
)

// stream is one moq-lite stream on one libp2p stream. It implements
// transport.Stream; uni streams are handed out as a SendStream or a
// ReceiveStream and use only that half.
//
// libp2p wants Close or Reset called on every stream to free it (and its
// resource-manager reservation), even after both halves ended, so stream
// tracks its halves and frees the libp2p stream as soon as both are done or
// it was reset.
type stream struct {
	c *Conn
	s network.Stream
	r io.Reader // s, or the lazy multistream-select wrapper on streams we opened
	w io.Writer
	// inbound: the peer opened it (counted against MaxStreamsPerSession).
	inbound bool

	mu        sync.Mutex
	readDone  bool
	writeDone bool
	released  bool
}

func newStream(c *Conn, s network.Stream, rw io.ReadWriter) *stream {
	return &stream{c: c, s: s, r: rw, w: rw}
}

func (st *stream) Read(p []byte) (int, error) {
	n, err := st.r.Read(p)
	if n > 0 {
		st.c.received.Add(uint64(n))
	}
	switch {
	case err == nil:
		return n, nil
	case err == io.EOF: // only a bare EOF is a FIN: yamux wraps io.EOF in the error of a dead connection
		st.halfDone(true)
		return n, io.EOF
	}
	st.fail()
	return n, st.c.convert(err)
}

func (st *stream) Write(p []byte) (int, error) {
	n, err := st.w.Write(p)
	if err != nil {
		st.fail()
		return n, st.c.convert(err)
	}
	return n, nil
}

// Close sends FIN after the data written.
func (st *stream) Close() error {
	if err := st.s.CloseWrite(); err != nil {
		st.fail()
		return st.c.convert(err)
	}
	st.halfDone(false)
	return nil
}

// CancelWrite resets the stream with code. libp2p has no RESET_STREAM for
// one direction, so this resets both: on a bidi stream the peer's writes fail
// too, with the same code.
func (st *stream) CancelWrite(code uint32) { st.abort(network.StreamErrorCode(code)) }

// CancelRead resets the stream with code; libp2p has no STOP_SENDING with a
// code (its CloseRead sends code 0 on QUIC and nothing on yamux), so, as
// CancelWrite, this resets both directions.
func (st *stream) CancelRead(code uint32) { st.abort(network.StreamErrorCode(code)) }

// SetPriority does nothing: libp2p streams have no priorities.
func (st *stream) SetPriority(int8) {}

// halfDone records the clean end of one direction and frees the libp2p
// stream once both have ended.
func (st *stream) halfDone(read bool) {
	st.mu.Lock()
	if read {
		st.readDone = true
	} else {
		st.writeDone = true
	}
	free := st.readDone && st.writeDone && !st.released
	st.released = st.released || free
	st.mu.Unlock()
	if free {
		st.c.untrack(st)
		_ = st.s.Close()
	}
}

// fail frees a stream that an error ended: libp2p resets both directions,
// so nothing more can pass either way.
func (st *stream) fail() {
	if st.release() {
		_ = st.s.Reset()
	}
}

// abort resets the stream with code, unless it already ended.
func (st *stream) abort(code network.StreamErrorCode) {
	if st.release() {
		_ = st.s.ResetWithError(code)
	}
}

// release marks the stream freed and reports whether the caller must free
// the libp2p stream (it was not already).
func (st *stream) release() bool {
	st.mu.Lock()
	free := !st.released
	st.released = true
	st.readDone, st.writeDone = true, true
	st.mu.Unlock()
	if free {
		st.c.untrack(st)
	}
	return free
}

var _ transport.Stream = (*stream)(nil)
