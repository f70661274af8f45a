package webtransport

import (
	"github.com/quic-go/webtransport-go"
)

// wtSend is what *webtransport.Stream and *webtransport.SendStream share.
type wtSend interface {
	Write([]byte) (int, error)
	Close() error
	CancelWrite(webtransport.StreamErrorCode)
}

// wtReceive is what *webtransport.Stream and *webtransport.ReceiveStream
// share.
type wtReceive interface {
	Read([]byte) (int, error)
	CancelRead(webtransport.StreamErrorCode)
}

// Streams report the end of their session through c.streamErr, so that a
// stream failing with the connection says why the session ended.
type sendStream struct {
	s wtSend
	c *Conn
}

func (s *sendStream) Write(p []byte) (int, error) {
	n, err := s.s.Write(p)
	return n, s.c.streamErr(err)
}

func (s *sendStream) Close() error { return s.c.streamErr(s.s.Close()) }

// CancelWrite hands the moq-lite code to webtransport-go, which maps it into
// the HTTP/3 error space on the wire.
func (s *sendStream) CancelWrite(code uint32) { s.s.CancelWrite(webtransport.StreamErrorCode(code)) }

// SetPriority does nothing: webtransport-go v0.13.0 keeps each stream's QUIC
// stream private and offers no priority of its own, so WebTransport streams
// are scheduled in quic-go's default order.
func (s *sendStream) SetPriority(int8) {}

type receiveStream struct {
	s wtReceive
	c *Conn
}

func (s *receiveStream) Read(p []byte) (int, error) {
	n, err := s.s.Read(p)
	return n, s.c.streamErr(err)
}

// CancelRead hands the moq-lite code to webtransport-go, which maps it into
// the HTTP/3 error space on the wire.
func (s *receiveStream) CancelRead(code uint32) { s.s.CancelRead(webtransport.StreamErrorCode(code)) }

type stream struct {
	sendStream
	receiveStream
}

func newStream(c *Conn, s *webtransport.Stream) *stream {
	return &stream{sendStream{s: s, c: c}, receiveStream{s: s, c: c}}
}
