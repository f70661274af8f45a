package websocket

// Flow control. On qmux-00 both sides follow QUIC: we grant ConnWindow
// bytes per connection, StreamWindow per stream and MaxIncoming(Uni)Streams
// streams, and move each limit forward once the app has consumed half a
// window (streams: as each peer stream finishes); the peer's grants bound
// what the writer sends and how many streams Open may start. Until the
// peer's QX_TRANSPORT_PARAMETERS arrive every peer grant is zero.
//
// The legacy framing has no credit, so the same numbers bound memory by
// back-pressure instead: the read loop stops taking messages off the
// socket while a stream's buffer (StreamWindow) or all buffers together
// (ConnWindow) are full, or the peer has MaxIncoming(Uni)Streams
// unfinished streams, until the app reads, cancels or accepts. TCP then
// pushes back on the peer. The cost is head-of-line blocking: while one
// stream's reader is slow, no other stream of the connection receives
// anything, so an app must read every stream it accepts (or cancel it).

// initialSendMaxLocked is the peer's initial credit on a stream, from its
// transport parameters (zero before they arrive).
func (c *Conn) initialSendMaxLocked(s *stream) uint64 {
	p := c.peerParams
	switch {
	case p == nil || !s.hasSend:
		return 0
	case isUni(s.id):
		return p.maxStreamDataUni
	case s.local: // the peer receives on a bidi stream we opened: its "remote"
		return p.maxStreamDataBR
	default:
		return p.maxStreamDataBL
	}
}

// paramsLocked applies the peer's transport parameters.
func (c *Conn) paramsLocked(p transportParams) error {
	if c.peerParams != nil {
		return violationf(ErrProtocol, "second QX_TRANSPORT_PARAMETERS")
	}
	if c.records() && p.maxRecordSize != 0 && p.maxRecordSize < minRecordSize {
		return violationf(ErrProtocol, "max_record_size %d below %d", p.maxRecordSize, minRecordSize)
	}
	c.peerParams = &p
	c.sendMaxData = max(c.sendMaxData, p.maxData)
	c.peerMaxStreams[0] = max(c.peerMaxStreams[0], p.maxStreamsBidi)
	c.peerMaxStreams[1] = max(c.peerMaxStreams[1], p.maxStreamsUni)
	c.openSig[0].wake()
	c.openSig[1].wake()
	for _, s := range c.streams {
		c.raiseSendMaxLocked(s, c.initialSendMaxLocked(s))
	}
	c.writer.wake()
	return nil
}

// raiseSendMaxLocked applies new stream credit from the peer.
func (c *Conn) raiseSendMaxLocked(s *stream, limit uint64) {
	if limit <= s.smax {
		return
	}
	s.smax = limit
	if s.blocked {
		s.blocked = false
		c.scheduleLocked(s)
	}
}

// ourParams are the limits we grant, sent first on qmux-00.
func (c *Conn) ourParams() transportParams {
	w := uint64(c.cfg.StreamWindow)
	return transportParams{
		maxData:          uint64(c.cfg.ConnWindow),
		maxStreamDataBL:  w,
		maxStreamDataBR:  w,
		maxStreamDataUni: w,
		maxStreamsBidi:   uint64(c.cfg.MaxIncomingStreams),
		maxStreamsUni:    uint64(c.cfg.MaxIncomingUniStreams),
	}
}

// admitDataLocked checks n new bytes on s against the credit we granted
// (qmux) or waits for buffer space (legacy). It returns errClosing if the
// connection ended while waiting.
func (c *Conn) admitDataLocked(s *stream, n int) error {
	if c.qmux() {
		end := s.rcvd + uint64(n)
		if end > s.rmax {
			return violationf(ErrFlowControl, "stream %d: %d bytes, credit %d", s.id, end, s.rmax)
		}
		if c.recvData+uint64(n) > c.recvMaxData {
			return violationf(ErrFlowControl, "connection: %d bytes, credit %d", c.recvData+uint64(n), c.recvMaxData)
		}
		return nil
	}
	sw, cw := c.cfg.StreamWindow, c.cfg.ConnWindow
	for !s.readCancelled &&
		((s.buffered() > 0 && s.buffered()+n > sw) || (c.buffered > 0 && c.buffered+n > cw)) {
		_ = c.waitLocked(&c.readLoop, nil)
		if c.cause != nil {
			return errClosing
		}
	}
	return nil
}

// receivedLocked counts n bytes taken off the wire for s (whether buffered
// or discarded).
func (c *Conn) receivedLocked(n int) {
	if c.qmux() {
		c.recvData += uint64(n)
	}
}

// consumedLocked counts n bytes of s that left its receive buffer (read or
// discarded) and moves the credit forward once half a window is used.
func (c *Conn) consumedLocked(s *stream, n int) {
	if s.rhead == len(s.rbuf) {
		s.rbuf, s.rhead = s.rbuf[:0], 0
	}
	if !c.qmux() {
		c.buffered -= n
		c.readLoop.wake()
		c.maybeDoneLocked(s)
		return
	}
	c.creditConnLocked(n)
	consumed := s.rcvd - uint64(s.buffered())
	if w := uint64(c.cfg.StreamWindow); !s.finRcvd && !s.resetRcvd && !s.readCancelled && s.rmax-consumed < w/2 {
		s.rmax = consumed + w
		s.rmaxDirty = true
		c.controlLocked(s)
	}
	c.maybeDoneLocked(s)
}

// creditConnLocked counts n consumed bytes against the connection window.
func (c *Conn) creditConnLocked(n int) {
	c.recvConsumed += uint64(n)
	if w := uint64(c.cfg.ConnWindow); c.recvMaxData-c.recvConsumed < w/2 {
		c.recvMaxData = c.recvConsumed + w
		c.maxDataDirty = true
		c.writer.wake()
	}
}

// admitStreamsLocked lets the peer open stream index idx of kind k (and
// every lower index not yet open): on qmux-00 it must be within our grant;
// on legacy the read loop waits for slots to free up.
func (c *Conn) admitStreamsLocked(k int, idx uint64) error {
	if c.qmux() {
		if idx >= c.grantStreams[k] {
			return violationf(ErrStreamLimit, "stream index %d, limit %d (%s)", idx, c.grantStreams[k], kindName(k))
		}
		return nil
	}
	limit := c.incomingLimit(k)
	n := idx + 1 - c.peerOpened[k]
	if n > uint64(limit) {
		return violationf(ErrStreamLimit, "stream index %d opens %d streams at once, limit %d (%s)", idx, n, limit, kindName(k))
	}
	for c.peerLive[k]+int(n) > limit {
		_ = c.waitLocked(&c.readLoop, nil)
		if c.cause != nil {
			return errClosing
		}
	}
	return nil
}

func kindName(k int) string {
	if k == 0 {
		return "bidirectional"
	}
	return "unidirectional"
}
