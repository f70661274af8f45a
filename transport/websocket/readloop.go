package websocket

import (
	"bytes"
	"context"
	"errors"
	"fmt"

	"github.com/coder/websocket"

	"github.com/moqp2p/moqp2p/transport"
)

// errClosing stops the read loop once the connection is ending; it is never
// a cause.
var errClosing = errors.New("websocket: connection closing")

// readLoopRun takes messages off the WebSocket one at a time and applies
// their frames. It is the only goroutine that opens peer streams or fills
// receive buffers.
func (c *Conn) readLoopRun() {
	defer c.loopDone()
	var buf bytes.Buffer
	for {
		typ, r, err := c.ws.Reader(context.Background())
		if err == nil {
			buf.Reset()
			_, err = buf.ReadFrom(r)
		}
		if err != nil {
			c.readFailed(err)
			return
		}
		c.bytesReceived.Add(uint64(buf.Len()))
		if typ != websocket.MessageBinary {
			continue // @moq/qmux ignores text messages too
		}
		err = c.handleMessage(buf.Bytes())
		if errors.Is(err, errClosing) {
			return // stop reading: the close handshake reads on its own
		}
		if err != nil {
			c.violated(err)
			return
		}
	}
}

// readFailed ends the connection after the WebSocket failed to deliver a
// message.
func (c *Conn) readFailed(err error) {
	var cause error
	switch st := websocket.CloseStatus(err); {
	case errors.Is(err, websocket.ErrMessageTooBig):
		// coder/websocket has already answered with close status 1009.
		cause = violationf(ErrMessageTooBig, "over %d bytes", c.cfg.MaxMessageSize)
	case st != -1:
		code := codeTransport
		switch st {
		case websocket.StatusNormalClosure, websocket.StatusGoingAway:
			code = codeCancel
		case websocket.StatusProtocolError, websocket.StatusUnsupportedData,
			websocket.StatusInvalidFramePayloadData, websocket.StatusMessageTooBig:
			code = codeProtocol
		}
		var ce websocket.CloseError
		reason := fmt.Sprintf("websocket closed with status %d", int(st))
		if errors.As(err, &ce) && ce.Reason != "" {
			reason += ": " + ce.Reason
		}
		cause = &transport.ConnError{Code: code, Reason: reason, Remote: true}
	default:
		cause = fmt.Errorf("%w: %w", ErrConnLost, err)
	}
	c.mu.Lock()
	c.terminateLocked(cause, nil, websocket.StatusNormalClosure, "")
	c.mu.Unlock()
}

// violated closes the connection because the peer broke the rules: a close
// frame says why (moq-lite code 15), then the WebSocket closes with status
// 1002, as @moq/qmux does.
func (c *Conn) violated(err error) {
	var v *violation
	if !errors.As(err, &v) {
		err = &violation{kind: err, msg: err.Error()}
	}
	reason := err.Error()
	if len(reason) > maxReasonLen {
		reason = reason[:maxReasonLen]
	}
	wsReason := reason
	if len(wsReason) > 120 { // a close frame holds 123 bytes of reason
		wsReason = wsReason[:120]
	}
	c.log.Info("peer violated the protocol; closing", "err", err)
	c.mu.Lock()
	c.terminateLocked(err, &frame{kind: kindClose, code: uint64(codeProtocol), reason: reason},
		websocket.StatusProtocolError, wsReason)
	c.mu.Unlock()
}

// handleMessage decodes and applies the frames of one binary message.
func (c *Conn) handleMessage(msg []byte) error {
	if len(msg) == 0 {
		if c.records() {
			return nil // a record of no frames (qmux-01 over WebSocket allows it)
		}
		return violationf(ErrTruncated, "empty message")
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.cause != nil {
		return errClosing
	}
	if !c.qmux() {
		f, err := decodeLegacy(msg)
		if err != nil {
			return err
		}
		return c.handleFrameLocked(&f)
	}
	for len(msg) > 0 {
		f, n, err := decodeQmux(msg)
		if err != nil {
			return err
		}
		msg = msg[n:]
		if err := c.handleFrameLocked(&f); err != nil {
			return err
		}
	}
	return nil
}

func (c *Conn) handleFrameLocked(f *frame) error {
	switch f.kind {
	case kindStream:
		return c.onStreamLocked(f)
	case kindResetStream:
		return c.onResetLocked(f)
	case kindStopSending:
		s, err := c.streamForLocked(f, false, true)
		if s != nil {
			c.stopReceivedLocked(s, f.code)
		}
		return err
	case kindMaxStreamData:
		s, err := c.streamForLocked(f, false, true)
		if s != nil {
			c.raiseSendMaxLocked(s, f.max)
			c.writer.wake()
		}
		return err
	case kindClose:
		c.onCloseLocked(f)
		return errClosing
	case kindTransportParams:
		return c.paramsLocked(f.params)
	case kindMaxData:
		if f.max > c.sendMaxData {
			c.sendMaxData = f.max
			c.writer.wake()
		}
	case kindMaxStreams:
		k := kindIndex(f.uni)
		if f.max > c.peerMaxStreams[k] {
			c.peerMaxStreams[k] = f.max
			c.openSig[k].wake()
		}
	case kindQxPing:
		if !c.records() {
			return violationf(ErrUnknownFrame, "QX_PING on %s", c.framing)
		}
		if !f.response { // answer the latest request; an older one needs no answer of its own
			c.pongDue, c.pongSeq = true, f.seq
			c.writer.wake()
		}
	case kindBlocked, kindDatagram, kindPadding:
		// Nothing to do: credit is granted as the app reads, not on
		// request, and datagrams are not part of this transport.
	}
	return nil
}

// streamForLocked finds the stream a frame is for, checking the frame may
// be sent on it: needRecv for frames only a sender sends (STREAM,
// RESET_STREAM), needSend for frames only a receiver sends (STOP_SENDING,
// MAX_STREAM_DATA). A frame on a peer stream not seen yet opens it and
// every lower one of its kind. It returns nil and no error for a stream
// that has finished and been forgotten: late frames are ignored.
func (c *Conn) streamForLocked(f *frame, needRecv, needSend bool) (*stream, error) {
	id := f.id
	local, uni := c.isLocal(id), isUni(id)
	switch {
	case local && uni && needRecv:
		return nil, violationf(ErrStreamState, "%v on stream %d, which only we send on", f.kind, id)
	case !local && uni && needSend:
		return nil, violationf(ErrStreamState, "%v on stream %d, which only the peer sends on", f.kind, id)
	}
	if s := c.streams[id]; s != nil {
		return s, nil
	}
	k, idx := kindIndex(uni), id>>2
	if local {
		if idx >= c.nextLocal[k] {
			return nil, violationf(ErrStreamState, "%v on stream %d, which we never opened", f.kind, id)
		}
		return nil, nil
	}
	if idx < c.peerOpened[k] {
		return nil, nil
	}
	if err := c.admitStreamsLocked(k, idx); err != nil {
		return nil, err
	}
	for i := c.peerOpened[k]; i <= idx; i++ {
		s := c.newStreamLocked(streamID(i, !c.server, uni))
		c.acceptQ[k] = append(c.acceptQ[k], s)
		c.peerLive[k]++
	}
	c.peerOpened[k] = idx + 1
	c.acceptSig[k].wake()
	return c.streams[id], nil
}

func (c *Conn) onStreamLocked(f *frame) error {
	s, err := c.streamForLocked(f, true, false)
	if s == nil || err != nil {
		return err
	}
	if s.resetRcvd {
		return nil // QUIC ignores data after a reset
	}
	// Over one WebSocket nothing is reordered or repeated, so a frame's
	// offset must be exactly what arrived before it. A frame without OFF
	// is QUIC's offset 0, but @moq/qmux (0.0.6) sends every frame that
	// way, so one after data is taken as the continuation it is.
	if f.hasOffset && f.offset != s.rcvd {
		return violationf(ErrOffset, "stream %d: offset %d, %d bytes received", s.id, f.offset, s.rcvd)
	}
	n := len(f.data)
	if s.finRcvd {
		if n > 0 {
			return violationf(ErrFinalSize, "stream %d: %d bytes after FIN", s.id, n)
		}
		return nil // a repeated empty FIN changes nothing
	}
	if err := c.admitDataLocked(s, n); err != nil {
		return err
	}
	s.rcvd += uint64(n)
	c.receivedLocked(n)
	switch {
	case s.readCancelled:
		if c.qmux() {
			c.creditConnLocked(n) // nobody will read it: the credit comes back now
		}
	case n > 0:
		if s.rhead > 0 && len(s.rbuf)+n > cap(s.rbuf) {
			s.rbuf = s.rbuf[:copy(s.rbuf, s.rbuf[s.rhead:])]
			s.rhead = 0
		}
		s.rbuf = append(s.rbuf, f.data...)
		if !c.qmux() {
			c.buffered += n
		}
	}
	if f.fin {
		s.finRcvd = true
	}
	s.rsig.wake()
	c.maybeDoneLocked(s)
	return nil
}

func (c *Conn) onResetLocked(f *frame) error {
	s, err := c.streamForLocked(f, true, false)
	if s == nil || err != nil {
		return err
	}
	if s.resetRcvd || (s.finRcvd && s.buffered() == 0 && !s.readCancelled) {
		return nil // already over, or everything was delivered
	}
	// @moq/qmux always sends final size 0, so 0 means "not stated"; any
	// other value must agree with what arrived.
	if c.qmux() && f.finalSize != 0 {
		switch {
		case f.finalSize < s.rcvd || (s.finRcvd && f.finalSize != s.rcvd):
			return violationf(ErrFinalSize, "stream %d: reset with final size %d, %d bytes received", s.id, f.finalSize, s.rcvd)
		case f.finalSize > s.rmax || c.recvData+(f.finalSize-s.rcvd) > c.recvMaxData:
			return violationf(ErrFlowControl, "stream %d: reset with final size %d beyond credit", s.id, f.finalSize)
		}
		extra := int(f.finalSize - s.rcvd)
		s.rcvd = f.finalSize
		c.receivedLocked(extra)
		c.creditConnLocked(extra) // never to arrive, so consumed now
	}
	s.resetRcvd = true
	s.resetRcvdCode = f.code
	if n := s.buffered(); n > 0 {
		s.rhead += n
		c.consumedLocked(s, n)
	}
	s.rsig.wake()
	c.maybeDoneLocked(s)
	return nil
}

func (c *Conn) onCloseLocked(f *frame) {
	cause := &transport.ConnError{Code: fromWire(f.code), Reason: f.reason, Remote: true}
	if f.transport { // a qmux transport error: its code is not a moq-lite code
		cause = &transport.ConnError{Code: codeTransport, Remote: true,
			Reason: fmt.Sprintf("transport error 0x%x (frame 0x%x): %s", f.code, f.frameType, f.reason)}
	}
	c.terminateLocked(cause, nil, websocket.StatusNormalClosure, "")
}
