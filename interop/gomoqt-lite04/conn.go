package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"math/big"
	"net"
	"sync/atomic"
	"time"

	"github.com/quic-go/quic-go"
	"github.com/qumo-dev/gomoqt/transport"
)

// subscribeStreamType is the moq-lite bidirectional stream type of a SUBSCRIBE stream.
const subscribeStreamType = 0x02

// subscribeEnded receives the first read error (io.EOF = the publisher's FIN) seen on a
// SUBSCRIBE stream this process opened. gomoqt does not surface the end of a track through its
// API (TrackReader keeps waiting for groups after the publisher's FIN), so the QUIC adapter below
// watches for it. Each peer process makes at most one subscription.
var subscribeEnded = make(chan error, 1)

// listenQUIC is used as moqt.Server.ListenFunc so that the bound address can be reported.
func listenQUIC(addr string, tlsConf *tls.Config, quicConf *quic.Config) (transport.QUICListener, error) {
	ln, err := quic.ListenAddrEarly(addr, tlsConf, quicConf)
	if err != nil {
		return nil, err
	}
	return quicListener{ln}, nil
}

// dialQUIC is used as moqt.Dialer.DialQUICFunc.
func dialQUIC(ctx context.Context, addr string, tlsConf *tls.Config, quicConf *quic.Config) (transport.StreamConn, error) {
	conn, err := quic.DialAddrEarly(ctx, addr, tlsConf, quicConf)
	if err != nil {
		return nil, err
	}
	return quicConn{conn}, nil
}

type quicListener struct{ ln *quic.EarlyListener }

func (l quicListener) Accept(ctx context.Context) (transport.StreamConn, error) {
	conn, err := l.ln.Accept(ctx)
	if err != nil {
		return nil, err
	}
	return quicConn{conn}, nil
}

func (l quicListener) Close() error   { return l.ln.Close() }
func (l quicListener) Addr() net.Addr { return l.ln.Addr() }

// quicConn adapts *quic.Conn to transport.StreamConn. quic-go's stream types satisfy gomoqt's
// stream interfaces directly; only bidirectional streams opened locally are wrapped.
type quicConn struct{ *quic.Conn }

func (c quicConn) AcceptStream(ctx context.Context) (transport.Stream, error) {
	s, err := c.Conn.AcceptStream(ctx)
	if err != nil {
		return nil, err
	}
	return s, nil
}

func (c quicConn) AcceptUniStream(ctx context.Context) (transport.ReceiveStream, error) {
	s, err := c.Conn.AcceptUniStream(ctx)
	if err != nil {
		return nil, err
	}
	return s, nil
}

func (c quicConn) OpenStream() (transport.Stream, error) {
	s, err := c.Conn.OpenStream()
	if err != nil {
		return nil, err
	}
	return &localStream{Stream: s}, nil
}

func (c quicConn) OpenStreamSync(ctx context.Context) (transport.Stream, error) {
	s, err := c.Conn.OpenStreamSync(ctx)
	if err != nil {
		return nil, err
	}
	return &localStream{Stream: s}, nil
}

func (c quicConn) OpenUniStream() (transport.SendStream, error) {
	s, err := c.Conn.OpenUniStream()
	if err != nil {
		return nil, err
	}
	return s, nil
}

func (c quicConn) OpenUniStreamSync(ctx context.Context) (transport.SendStream, error) {
	s, err := c.Conn.OpenUniStreamSync(ctx)
	if err != nil {
		return nil, err
	}
	return s, nil
}

func (c quicConn) TLS() *tls.ConnectionState {
	state := c.ConnectionState().TLS
	return &state
}

func (c quicConn) QUICConn() *quic.Conn { return c.Conn }

// localStream remembers the stream type (first byte gomoqt writes) and reports the end of a
// SUBSCRIBE stream's read side on subscribeEnded.
type localStream struct {
	*quic.Stream
	streamType atomic.Int32 // type+1; 0 = nothing written yet
	ended      atomic.Bool
}

func (s *localStream) Write(p []byte) (int, error) {
	if len(p) > 0 {
		s.streamType.CompareAndSwap(0, int32(p[0])+1)
	}
	return s.Stream.Write(p)
}

func (s *localStream) Read(p []byte) (int, error) {
	n, err := s.Stream.Read(p)
	if err != nil && s.streamType.Load() == subscribeStreamType+1 && s.ended.CompareAndSwap(false, true) {
		select {
		case subscribeEnded <- err:
		default:
		}
	}
	return n, err
}

// selfSignedCert returns an ECDSA P-256 certificate for 127.0.0.1, ::1 and localhost.
func selfSignedCert() (tls.Certificate, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, err
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 62))
	if err != nil {
		return tls.Certificate{}, err
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: "localhost"},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(10 * 24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		DNSNames:     []string{"localhost"},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return tls.Certificate{}, err
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, nil
}
