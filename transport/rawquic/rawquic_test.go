package rawquic

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/quic-go/quic-go"
	"go.uber.org/goleak"

	"github.com/moqp2p/moqp2p/transport/cert"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// The client's order picks the protocol: lite-05 when both sides speak it,
// "moql" (compat SETUP) only with a peer that offers nothing else.
func TestALPNSelection(t *testing.T) {
	crt, err := cert.SelfSigned()
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name           string
		server, client []string
		want           string
	}{
		{"both default: lite-05 between moqp2p peers", nil, nil, "moq-lite-05"},
		{"client prefers lite-04 (gomoqt)", nil, []string{"moq-lite-04", "moq-lite-03"}, "moq-lite-04"},
		{"client prefers lite-05 (moq-net)", nil, []string{"moq-lite-05", "moq-lite-04", "moq-lite-03", "moql", "moqt-19"}, "moq-lite-05"},
		{"client offers only lite-05", nil, []string{"moq-lite-05"}, "moq-lite-05"},
		{"client's order wins", nil, []string{"moq-lite-03", "moq-lite-04"}, "moq-lite-03"},
		{"client offers only moql", nil, []string{"moql"}, "moql"},
		{"server offers only moql", []string{"moql"}, nil, "moql"},
		{"server offers only lite-03", []string{"moq-lite-03"}, nil, "moq-lite-03"},
	} {
		t.Run(c.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			ln, err := Listen("127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{crt}, NextProtos: c.server}, nil)
			if err != nil {
				t.Fatal(err)
			}
			defer ln.Close()
			ep, err := NewEndpoint("127.0.0.1:0", nil)
			if err != nil {
				t.Fatal(err)
			}
			defer ep.Close()
			cc, err := ep.Dial(ctx, ln.Addr().String(), &tls.Config{InsecureSkipVerify: true, NextProtos: c.client})
			if err != nil {
				t.Fatal(err)
			}
			sc, err := ln.Accept(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if cc.Protocol() != c.want || sc.Protocol() != c.want {
				t.Fatalf("negotiated %q (client) / %q (server), want %q", cc.Protocol(), sc.Protocol(), c.want)
			}
			_ = cc.CloseWithError(0, "")
		})
	}
}

// Close releases the socket: its port can be bound again at once.
func TestCloseReleasesSocket(t *testing.T) {
	ep, err := NewEndpoint("127.0.0.1:0", nil)
	if err != nil {
		t.Fatal(err)
	}
	addr := ep.Addr().String()
	if err := ep.Close(); err != nil {
		t.Fatal(err)
	}
	again, err := NewEndpoint(addr, nil)
	if err != nil {
		t.Fatalf("port still bound after Close: %v", err)
	}
	_ = again.Close()
}

// A handshake without a common protocol fails with ErrNoCommonProtocol
// naming what the client offered, and the server logs both sides' lists.
func TestALPNMismatchNamesProtocols(t *testing.T) {
	crt, err := cert.SelfSigned()
	if err != nil {
		t.Fatal(err)
	}
	var logs bytes.Buffer
	var mu sync.Mutex
	log := slog.New(slog.NewTextHandler(lockedWriter{&mu, &logs}, nil))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	tr := &quic.Transport{Conn: pc}
	defer pc.Close()
	defer tr.Close()
	stc := LogALPNMismatch(&tls.Config{Certificates: []tls.Certificate{crt}, NextProtos: []string{"moq-00"}}, log)
	ln, err := tr.Listen(stc, Config())
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	_, err = Dial(ctx, pc.LocalAddr().String(), &tls.Config{InsecureSkipVerify: true}, nil)
	if !errors.Is(err, ErrNoCommonProtocol) || !strings.Contains(err.Error(), "moq-lite-05, moq-lite-04, moq-lite-03, moql") {
		t.Fatalf("dial error %v, want ErrNoCommonProtocol naming our protocols", err)
	}
	mu.Lock()
	got := logs.String()
	mu.Unlock()
	if !strings.Contains(got, "client_offered=moq-lite-05,moq-lite-04,moq-lite-03,moql") || !strings.Contains(got, "we_offer=moq-00") {
		t.Fatalf("server log %q, want both sides' protocols", got)
	}
}

type lockedWriter struct {
	mu *sync.Mutex
	w  io.Writer
}

func (l lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// With QLOGDIR set, each end of a connection writes a qlog file there.
func TestQLOGDIR(t *testing.T) {
	dir := t.TempDir()
	t.Setenv("QLOGDIR", dir)
	crt, err := cert.SelfSigned()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ln, err := Listen("127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{crt}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	ep, err := NewEndpoint("127.0.0.1:0", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ep.Close()
	cc, err := ep.Dial(ctx, ln.Addr().String(), &tls.Config{InsecureSkipVerify: true})
	if err != nil {
		t.Fatal(err)
	}
	sc, err := ln.Accept(ctx)
	if err != nil {
		t.Fatal(err)
	}
	_ = cc.CloseWithError(0, "")
	<-sc.Context().Done()
	for _, side := range []string{"client", "server"} {
		for {
			files, _ := filepath.Glob(filepath.Join(dir, "*_"+side+".sqlog"))
			if len(files) == 1 {
				if b, _ := os.ReadFile(files[0]); bytes.Contains(b, []byte("transport:packet_sent")) {
					break
				}
			}
			select {
			case <-ctx.Done():
				t.Fatalf("no %s qlog with packets in %s: %v", side, dir, files)
			case <-time.After(10 * time.Millisecond):
			}
		}
	}
}

// A nil tls.Config means the system's roots: dialing a server with a
// self-signed certificate fails its verification instead of panicking.
func TestDialNilTLSConfigVerifiesWithSystemRoots(t *testing.T) {
	crt, err := cert.SelfSigned()
	if err != nil {
		t.Fatal(err)
	}
	ln, err := Listen("127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{crt}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	ep, err := NewEndpoint("127.0.0.1:0", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ep.Close()
	for name, dial := range map[string]func() (any, error){
		"Dial":          func() (any, error) { return Dial(ctx, ln.Addr().String(), nil, nil) },
		"Endpoint.Dial": func() (any, error) { return ep.Dial(ctx, ln.Addr().String(), nil) },
	} {
		_, err := dial()
		var ue x509.UnknownAuthorityError
		if !errors.As(err, &ue) {
			t.Errorf("%s with nil tls.Config: %v, want an unknown-authority error", name, err)
		}
	}
}
