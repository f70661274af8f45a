package p2pstream

import (
	"bufio"
	"errors"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
)

// handle serves every libp2p stream opened to us on a moq-lite protocol: it
// reads the header and hands the stream to its session, or starts a session
// for a control stream. libp2p runs it on a goroutine per stream.
func (t *Transport) handle(s network.Stream) {
	_ = s.SetReadDeadline(time.Now().Add(headerTimeout))
	kind, id, err := readHeader(&byteReader{r: s})
	if err == nil && id == 0 {
		err = errors.New("session ID 0") // never chosen by a dialer
	}
	if err != nil {
		t.log.Debug("refusing stream: bad header", "peer", s.Conn().RemotePeer().String(), "err", err)
		_ = s.ResetWithError(network.StreamErrorCode(codeDecode))
		return
	}
	_ = s.SetReadDeadline(time.Time{})
	switch kind {
	case kindControl:
		t.acceptSession(s, id)
	case kindBidi, kindUni:
		c := t.lookup(sessionKey{s.Conn().RemotePeer(), id})
		switch {
		case c == nil:
			t.log.Debug("refusing stream: unknown session", "peer", s.Conn().RemotePeer().String(), "session", id)
			_ = s.ResetWithError(codeSessionGone)
		case s.Protocol() != c.proto:
			c.log.Warn("refusing stream: protocol differs from the session's", "stream_protocol", string(s.Protocol()))
			_ = s.ResetWithError(network.StreamErrorCode(codeProtocol))
		default:
			c.deliver(kind, s)
		}
	default:
		t.log.Debug("refusing stream: unknown kind", "peer", s.Conn().RemotePeer().String(), "kind", kind)
		_ = s.ResetWithError(network.StreamErrorCode(codeUnexpectedStream))
	}
}

// acceptSession starts the session a dialer's control stream asks for. It
// waits for room in the Accept queue before it sends ACCEPT, so a listener
// that does not accept slows dialers down instead of dropping sessions.
func (t *Transport) acceptSession(s network.Stream, id uint64) {
	c, err := t.register(s.Conn().RemotePeer(), id, true, func(id uint64) *Conn { return newConn(t, s, id) })
	if err != nil {
		code := codeCancel
		switch {
		case errors.Is(err, errDuplicate):
			code = codeDuplicate
		case errors.Is(err, errTooManySessions):
			code = codeBoundsExceeded
			t.log.Debug("refusing session", "peer", s.Conn().RemotePeer().String(), "err", err)
		}
		_ = s.SetWriteDeadline(time.Now().Add(ctlWriteTimeout))
		if _, err := s.Write(appendClose(nil, code, err.Error())); err != nil {
			_ = s.Reset()
			return
		}
		_ = s.Close()
		return
	}
	c.ready.Store(true)
	// Read from the start: a dialer that gives up resets the stream, which
	// must end the wait below.
	go c.readControl(bufio.NewReaderSize(s, 64))
	select {
	case t.incoming <- c:
		c.sendAccept()
		c.log.Debug("session accepted", "limited", c.Limited())
	case <-c.ctx.Done():
	case <-t.done: // Close closes c with CLOSE
	}
}
