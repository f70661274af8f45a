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

type sendStream struct{ s wtSend }

func (s *sendStream) Write(p []byte) (int, error) {
	n, err := s.s.Write(p)
	return n, convert(err)
}

func (s *sendStream) Close() error { return convert(s.s.Close()) }

// CancelWrite hands the moq-lite code to webtransport-go, which maps it into
// the HTTP/3 error space on the wire.
func (s *sendStream) CancelWrite(code uint32) { s.s.CancelWrite(webtransport.StreamErrorCode(code)) }

// SetPriority does nothing: webtransport-go v0.13.0 keeps each stream's QUIC
// stream private and offers no priority of its own, so WebTransport streams
// are scheduled in quic-go's default order.
func (s *sendStream) SetPriority(int8) {}

type receiveStream struct{ s wtReceive }

func (s *receiveStream) Read(p []byte) (int, error) {
	n, err := s.s.Read(p)
	return n, convert(err)
}

// CancelRead hands the moq-lite code to webtransport-go, which maps it into
// the HTTP/3 error space on the wire.
func (s *receiveStream) CancelRead(code uint32) { s.s.CancelRead(webtransport.StreamErrorCode(code)) }

type stream struct {
	sendStream
	receiveStream
}

func newStream(s *webtransport.Stream) *stream {
	return &stream{sendStream{s: s}, receiveStream{s: s}}
}
