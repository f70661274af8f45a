package websocket

import (
	"context"
	"fmt"

	"github.com/coder/websocket"
)

// writeLoopRun sends one frame per binary message: our transport parameters
// first (qmux-00), then control frames, then stream data by priority. When
// the connection ends it sends the close frame, if any, and closes the
// WebSocket.
func (c *Conn) writeLoopRun() {
	defer c.loopDone()
	var buf []byte
	for {
		c.mu.Lock()
		var msg []byte
		for c.cause == nil {
			if msg = c.nextMessageLocked(buf[:0]); msg != nil {
				break
			}
			ch := c.writer.wait()
			c.mu.Unlock()
			select {
			case <-ch:
			case <-c.ctx.Done():
			}
			c.mu.Lock()
		}
		if c.cause != nil {
			cf, status, reason := c.closeFrame, c.wsStatus, c.wsReason
			c.mu.Unlock()
			c.finish(cf, status, reason)
			return
		}
		c.mu.Unlock()
		err := c.ws.Write(c.wctx, websocket.MessageBinary, msg)
		c.mu.Lock()
		if s := c.finWriting; s != nil {
			c.finWriting = nil
			s.settleSendLocked()
		}
		if err != nil {
			c.terminateLocked(fmt.Errorf("%w: %w", ErrConnLost, err), nil, websocket.StatusNormalClosure, "")
			c.mu.Unlock()
			continue
		}
		c.mu.Unlock()
		c.bytesSent.Add(uint64(len(msg)))
		buf = msg
	}
}

// finish sends the close frame and closes the WebSocket, each bounded in
// time; errors no longer matter, as the cause is already decided.
func (c *Conn) finish(cf *frame, status websocket.StatusCode, reason string) {
	if cf != nil {
		if msg, err := c.appendFrame(nil, cf); err == nil {
			ctx, cancel := context.WithTimeout(c.wctx, closeGrace)
			_ = c.ws.Write(ctx, websocket.MessageBinary, msg)
			cancel()
		}
	}
	_ = c.ws.Close(status, reason)
	c.mu.Lock()
	c.abort.Stop()
	c.mu.Unlock()
	c.wcancel()
}

// appendFrame encodes f in the connection's framing.
func (c *Conn) appendFrame(b []byte, f *frame) ([]byte, error) {
	if c.qmux() {
		return appendQmux(b, f)
	}
	return appendLegacy(b, f)
}

// encodeLocked appends f to b, or returns nil (logging it) if f cannot be
// encoded, which would be a bug.
func (c *Conn) encodeLocked(b []byte, f *frame) []byte {
	msg, err := c.appendFrame(b, f)
	if err != nil {
		c.log.Error("cannot encode frame", "kind", f.kind, "err", err)
		return nil
	}
	return msg
}

// nextMessageLocked builds the next message to send into b, or returns nil
// when there is nothing to send now.
func (c *Conn) nextMessageLocked(b []byte) []byte {
	if c.qmux() {
		if !c.paramsSent {
			c.paramsSent = true
			return c.encodeLocked(b, &frame{kind: kindTransportParams, params: c.ourParams()})
		}
		if c.pongDue {
			c.pongDue = false
			return c.encodeLocked(b, &frame{kind: kindQxPing, response: true, seq: c.pongSeq})
		}
		if c.maxDataDirty {
			c.maxDataDirty = false
			return c.encodeLocked(b, &frame{kind: kindMaxData, max: c.recvMaxData})
		}
		for k := range c.maxStreamsDirty {
			if c.maxStreamsDirty[k] {
				c.maxStreamsDirty[k] = false
				return c.encodeLocked(b, &frame{kind: kindMaxStreams, uni: k == 1, max: c.grantStreams[k]})
			}
		}
	}
	for len(c.ctrlQ) > 0 {
		s := c.ctrlQ[0]
		if f, ok := c.takeControlLocked(s); ok {
			return c.encodeLocked(b, &f)
		}
		c.ctrlQ[0] = nil
		c.ctrlQ = c.ctrlQ[1:]
		s.inCtrl = false
	}
	return c.nextDataLocked(b)
}

// takeControlLocked returns one control frame pending on s.
func (c *Conn) takeControlLocked(s *stream) (frame, bool) {
	switch {
	case s.resetPending:
		s.resetPending = false
		s.resetSent = true
		f := frame{kind: kindResetStream, id: s.id, code: s.resetCode, finalSize: s.sent}
		c.maybeDoneLocked(s)
		return f, true
	case s.stopPending:
		s.stopPending = false
		return frame{kind: kindStopSending, id: s.id, code: uint64(s.readCancelCode)}, true
	case s.rmaxDirty:
		s.rmaxDirty = false
		if !s.finRcvd && !s.resetRcvd && !s.readCancelled {
			return frame{kind: kindMaxStreamData, id: s.id, max: s.rmax}, true
		}
	}
	return frame{}, false
}

// nextDataLocked takes one STREAM frame from the most urgent stream that
// may send, or returns nil.
func (c *Conn) nextDataLocked(b []byte) []byte {
	connCredit := uint64(1<<63 - 1)
	if c.qmux() {
		connCredit = c.sendMaxData - c.sentData
	}
	for u := range c.sched.head {
		for s := c.sched.head[u]; s != nil; {
			next := s.next
			avail := s.queued()
			n := min(avail, maxStreamPayload)
			if c.qmux() {
				n = int(min(uint64(n), s.smax-s.sent, connCredit))
			}
			fin := s.finQueued && n == avail
			if n > 0 || fin {
				return c.takeDataLocked(b, s, n, fin)
			}
			if c.qmux() && s.smax <= s.sent {
				c.sched.remove(s) // until MAX_STREAM_DATA
				s.blocked = true
			}
			s = next
		}
	}
	return nil
}

func (c *Conn) takeDataLocked(b []byte, s *stream, n int, fin bool) []byte {
	f := frame{kind: kindStream, id: s.id, data: s.sbuf[s.shead : s.shead+n], fin: fin}
	if c.qmux() && s.sent > 0 {
		// As QUIC does: a frame without OFF carries offset 0, so every
		// later one says where its data goes. (The legacy framing has no
		// offset field.)
		f.hasOffset, f.offset = true, s.sent
	}
	msg := c.encodeLocked(b, &f)
	s.shead += n
	s.sent += uint64(n)
	c.sentData += uint64(n)
	if s.shead == len(s.sbuf) {
		s.sbuf, s.shead = s.sbuf[:0], 0
	}
	s.wsig.wake()
	if fin {
		s.finSent = true
		c.finWriting = s // settled once the message is written
		c.sched.remove(s)
		c.maybeDoneLocked(s)
	} else if s.queued() > 0 {
		c.sched.rotate(s)
	} else {
		c.sched.remove(s)
	}
	return msg
}
