package websocket

import (
	"context"
	"io"

	"github.com/moqp2p/moqp2p/transport"
)

// stream is the state of one stream; all of it is guarded by the Conn's
// mutex. A unidirectional stream uses one half.
type stream struct {
	c        *Conn
	id       uint64
	local    bool // we opened it
	hasSend  bool
	hasRecv  bool
	accepted bool // handed to the app (always true for local streams)
	removed  bool // finished and dropped from c.streams

	// Receive half. Buffered data is rbuf[rhead:].
	rbuf           []byte
	rhead          int
	rcvd           uint64 // bytes received: the next expected offset
	rmax           uint64 // qmux: the credit we granted on this stream
	rmaxDirty      bool   // rmax must be sent
	finRcvd        bool
	resetRcvd      bool
	resetRcvdCode  uint64
	readCancelled  bool
	readCancelCode uint32
	stopPending    bool // STOP_SENDING must be sent
	rsig           notify

	// Send half. Queued data is sbuf[shead:].
	sbuf         []byte
	shead        int
	sent         uint64 // bytes handed to the writer: the next offset
	smax         uint64 // qmux: the peer's credit on this stream
	blocked      bool   // qmux: waiting for stream credit, so not scheduled
	finQueued    bool
	finSent      bool
	resetPending bool // RESET_STREAM must be sent
	resetSent    bool
	resetCode    uint64
	writeErr     error // why writes fail (a reset), nil while they can succeed
	wsig         notify
	urgency      int8
	// flushed is closed (once flushDone) when nothing more of the send half
	// will be written: its FIN written to the WebSocket, the stream reset,
	// or the connection ended. Made on demand by Flushed.
	flushed   chan struct{}
	flushDone bool

	// Scheduler links (sched.go); bucket < 0 when not queued.
	prev, next *stream
	bucket     int8
	inCtrl     bool // in c.ctrlQ
}

// newStreamLocked creates the state for id and registers it.
func (c *Conn) newStreamLocked(id uint64) *stream {
	local := c.isLocal(id)
	s := &stream{
		c:        c,
		id:       id,
		local:    local,
		hasSend:  local || !isUni(id),
		hasRecv:  !local || !isUni(id),
		accepted: local,
		bucket:   -1,
		urgency:  defaultUrgency,
	}
	if c.qmux() {
		s.rmax = uint64(c.cfg.StreamWindow)
		s.smax = c.initialSendMaxLocked(s)
	}
	c.streams[id] = s
	return s
}

func (s *stream) buffered() int { return len(s.rbuf) - s.rhead }
func (s *stream) queued() int   { return len(s.sbuf) - s.shead }

// recvDone: nothing more will be delivered to the app from the peer.
// Legacy streams are done once the app cancelled reading (there is no
// final size to wait for); qmux ones wait for FIN or RESET, which settle
// the connection's flow-control count.
func (s *stream) recvDone() bool {
	if s.resetRcvd || (s.finRcvd && s.buffered() == 0) {
		return true
	}
	return s.readCancelled && !s.c.qmux()
}

func (s *stream) sendDone() bool { return s.finSent || s.resetSent }

// settleSendLocked marks the send half as flushed: see stream.flushed.
func (s *stream) settleSendLocked() {
	if s.flushDone {
		return
	}
	s.flushDone = true
	if s.flushed != nil {
		close(s.flushed)
	}
}

// flushedCh returns the channel closed once the send half settled.
func (s *stream) flushedCh() <-chan struct{} {
	c := s.c
	c.mu.Lock()
	defer c.mu.Unlock()
	if s.flushed == nil {
		s.flushed = make(chan struct{})
		if s.flushDone {
			close(s.flushed)
		} else if c.cause != nil || s.writeErr != nil || s.finSent && c.finWriting != s {
			s.settleSendLocked()
		}
	}
	return s.flushed
}

// maybeDoneLocked forgets a stream that is finished in every direction it
// has (and was accepted, so it no longer sits in an accept queue), giving
// a peer stream's slot back.
func (c *Conn) maybeDoneLocked(s *stream) {
	if s.removed || !s.accepted || (s.hasRecv && !s.recvDone()) || (s.hasSend && !s.sendDone()) {
		return
	}
	s.removed = true
	delete(c.streams, s.id)
	k := kindIndex(isUni(s.id))
	if s.local {
		c.localLive[k]--
		c.openSig[k].wake()
		return
	}
	c.peerLive[k]--
	c.readLoop.wake()
	if c.qmux() && c.cause == nil {
		c.grantStreams[k]++
		c.maxStreamsDirty[k] = true
		c.writer.wake()
	}
}

// write queues p, blocking while the send buffer is full.
func (s *stream) write(p []byte) (int, error) {
	c := s.c
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for len(p) > 0 {
		if err := s.writeErrLocked(); err != nil {
			return n, err
		}
		room := c.cfg.SendBuffer - s.queued()
		if room <= 0 {
			_ = c.waitLocked(&s.wsig, nil)
			continue
		}
		k := min(room, len(p))
		if s.shead > 0 && len(s.sbuf)+k > cap(s.sbuf) {
			s.sbuf = s.sbuf[:copy(s.sbuf, s.sbuf[s.shead:])]
			s.shead = 0
		}
		s.sbuf = append(s.sbuf, p[:k]...)
		p = p[k:]
		n += k
		c.scheduleLocked(s)
	}
	return n, nil
}

func (s *stream) writeErrLocked() error {
	switch {
	case s.writeErr != nil:
		return s.writeErr
	case s.c.cause != nil:
		return s.c.cause
	case s.finQueued:
		return ErrStreamClosed
	}
	return nil
}

// closeSend queues FIN after the data already written.
func (s *stream) closeSend() error {
	c := s.c
	c.mu.Lock()
	defer c.mu.Unlock()
	switch {
	case s.writeErr != nil:
		return s.writeErr
	case c.cause != nil:
		return c.cause
	case s.finQueued:
		return nil
	}
	s.finQueued = true
	c.scheduleLocked(s)
	return nil
}

// cancelWrite abandons the send half: queued data is dropped and
// RESET_STREAM sent, unless FIN already went out.
func (s *stream) cancelWrite(code uint32) {
	c := s.c
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.cause != nil || s.writeErr != nil || s.finSent {
		return
	}
	c.resetLocked(s, uint64(code), &transport.StreamError{Code: code})
}

// resetLocked drops the queued data and schedules RESET_STREAM; writes fail
// with werr from now on.
func (c *Conn) resetLocked(s *stream, code uint64, werr error) {
	s.settleSendLocked()
	s.writeErr = werr
	s.resetCode = code
	s.resetPending = true
	s.sbuf, s.shead = nil, 0
	if s.bucket >= 0 {
		c.sched.remove(s)
	}
	s.wsig.wake()
	c.controlLocked(s)
}

// stopReceivedLocked handles the peer's STOP_SENDING: writes fail with the
// peer's code, and the stream is reset with it, as QUIC does.
func (c *Conn) stopReceivedLocked(s *stream, code uint64) {
	if s.writeErr != nil || s.finSent {
		return
	}
	c.resetLocked(s, code, &transport.StreamError{Code: fromWire(code), Remote: true})
}

func (s *stream) setPriority(urgency int8) {
	urgency = min(max(urgency, 0), 7)
	c := s.c
	c.mu.Lock()
	defer c.mu.Unlock()
	if s.urgency == urgency {
		return
	}
	s.urgency = urgency
	if s.bucket >= 0 {
		c.sched.remove(s)
		c.sched.push(s)
	}
}

func (s *stream) read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	c := s.c
	c.mu.Lock()
	defer c.mu.Unlock()
	for {
		switch {
		// A local cancel is sticky: the peer's reset answering our
		// STOP_SENDING must not replace the error the app caused.
		case s.readCancelled:
			return 0, &transport.StreamError{Code: s.readCancelCode}
		case s.resetRcvd:
			return 0, &transport.StreamError{Code: fromWire(s.resetRcvdCode), Remote: true}
		case s.buffered() > 0:
			// Buffered data is delivered even after the connection
			// ended: it arrived whole.
			n := copy(p, s.rbuf[s.rhead:])
			s.rhead += n
			c.consumedLocked(s, n)
			return n, nil
		case s.finRcvd:
			return 0, io.EOF
		case c.cause != nil:
			return 0, c.cause
		}
		_ = c.waitLocked(&s.rsig, nil)
	}
}

// cancelRead drops buffered data and asks the peer to stop (unless it
// already finished).
func (s *stream) cancelRead(code uint32) {
	c := s.c
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.cause != nil || s.readCancelled || s.resetRcvd {
		return
	}
	s.readCancelled = true
	s.readCancelCode = code
	if n := s.buffered(); n > 0 {
		s.rhead += n
		c.consumedLocked(s, n)
	}
	if !s.finRcvd {
		s.stopPending = true
		c.controlLocked(s)
	}
	s.rsig.wake()
	c.readLoop.wake()
	c.maybeDoneLocked(s)
}

// The types handed to the app: views of a stream with only the methods of
// its directions.

type sendStream struct{ s *stream }

// Write queues p for sending, blocking while the stream's send buffer is
// full. It fails with *transport.StreamError once the stream is reset
// (Remote when the peer sent STOP_SENDING) and with the connection's cause
// once it has ended.
func (w *sendStream) Write(p []byte) (int, error) { return w.s.write(p) }

// Close sends FIN after the data written so far; it does not wait for it.
func (w *sendStream) Close() error { return w.s.closeSend() }

// Flushed returns a channel that is closed once the stream's FIN has been
// written to the WebSocket, behind all of the stream's data, or once the
// stream was reset or the connection ended. Write and Close only queue, so
// this is how a caller puts something on the wire after a stream's end:
// the session holds a finished track's subscribe FIN until its group
// streams have gone (then Ping tells when the peer has read them).
func (w *sendStream) Flushed() <-chan struct{} { return w.s.flushedCh() }

// Ping is the stream's connection's Ping, for callers that hold the stream
// but not the Conn (which may sit behind a wrapper).
func (w *sendStream) Ping(ctx context.Context) error { return w.s.c.Ping(ctx) }

// CancelWrite drops unsent data and sends RESET_STREAM with code.
func (w *sendStream) CancelWrite(code uint32) { w.s.cancelWrite(code) }

// SetPriority sets the stream's urgency: 0 is sent first, 7 last; streams
// of equal urgency take turns frame by frame.
func (w *sendStream) SetPriority(urgency int8) { w.s.setPriority(urgency) }

type recvStream struct{ s *stream }

// Read reads stream data; io.EOF after the peer's FIN, a
// *transport.StreamError after a reset (Remote) or CancelRead.
func (r *recvStream) Read(p []byte) (int, error) { return r.s.read(p) }

// CancelRead drops buffered data and sends STOP_SENDING with code.
func (r *recvStream) CancelRead(code uint32) { r.s.cancelRead(code) }

type bidiStream struct {
	sendStream
	recvStream
}
