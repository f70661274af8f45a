package webtransport

import (
	"bytes"
	"context"
	"errors"
	"io"
	"slices"
	"testing"

	"github.com/quic-go/quic-go"
	"github.com/quic-go/quic-go/http3"

	"github.com/moqp2p/moqp2p/transport"
)

func TestProtocolNegotiation(t *testing.T) {
	all := []string{"moq-lite-04", "moq-lite-03", "moql"}
	net := []string{"moq-lite-05", "moq-lite-04", "moq-lite-03", "moql", "moqt-20", "moqt-19"} // @moq/net 0.3.4
	for _, tc := range []struct {
		name           string
		server, client []string
		want           string
	}{
		{"server has all", nil, all, "moq-lite-04"},
		{"server has lite-03 only", []string{"moq-lite-03"}, all, "moq-lite-03"},
		{"client order wins", nil, []string{"moq-lite-03", "moq-lite-04"}, "moq-lite-03"},
		{"@moq/net gets lite-05", nil, net, "moq-lite-05"},
		{"lite-05 alone", nil, []string{"moq-lite-05"}, "moq-lite-05"},
		{"no overlap", nil, []string{"moq-lite-06-wip"}, ""},
		{"client offers none", nil, []string{}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newServer(t, Config{Protocols: tc.server})
			client, server, req := f.pair(t, tc.client)
			if client.Protocol() != tc.want || server.Protocol() != tc.want {
				t.Fatalf("negotiated client %q, server %q; want %q", client.Protocol(), server.Protocol(), tc.want)
			}
			if req == nil || req.URL.Path != "/room" {
				t.Fatalf("request %+v, want the CONNECT to /room", req)
			}
		})
	}
}

func TestAddrsAndStats(t *testing.T) {
	f := newServer(t, Config{})
	client, server, _ := f.pair(t, nil)
	if client.RemoteAddr().String() != f.addr || server.LocalAddr().String() != f.addr ||
		port(server.RemoteAddr()) != port(client.LocalAddr()) {
		t.Fatalf("addresses: client %s→%s, server %s→%s", client.LocalAddr(), client.RemoteAddr(), server.LocalAddr(), server.RemoteAddr())
	}
	for _, c := range []transport.Conn{client, server} {
		st, ok := c.(transport.StatsConn)
		if !ok {
			t.Fatalf("%T is no StatsConn", c)
		}
		if s := st.Stats(); s.BytesSent == 0 || s.BytesReceived == 0 || s.RTT == 0 || s.PacketsSent == 0 || s.Transport != "webtransport" {
			t.Errorf("stats %+v: want traffic and an RTT", s)
		}
	}
}

// echo copies one stream's data back to its sender.
func echo(t *testing.T, s transport.Stream) {
	if _, err := io.Copy(s, s); err != nil {
		t.Error(err)
	}
	_ = s.Close()
}

func roundTrip(t *testing.T, s transport.Stream, msg string) {
	t.Helper()
	if _, err := s.Write([]byte(msg)); err != nil {
		t.Fatal(err)
	}
	_ = s.Close()
	got, err := io.ReadAll(s)
	if err != nil || string(got) != msg {
		t.Fatalf("echo %q, %v; want %q", got, err, msg)
	}
}

func TestStreamsBothWays(t *testing.T) {
	f := newServer(t, Config{})
	client, server, _ := f.pair(t, nil)
	ctx := testCtx(t)
	for _, dir := range []struct {
		name       string
		open, peer transport.Conn
	}{{"client opens", client, server}, {"server opens", server, client}} {
		t.Run(dir.name+"/bidi", func(t *testing.T) {
			s, err := dir.open.OpenStream(ctx)
			if err != nil {
				t.Fatal(err)
			}
			done := make(chan struct{})
			go func() {
				defer close(done)
				ps, err := dir.peer.AcceptStream(ctx)
				if err != nil {
					t.Error(err)
					return
				}
				echo(t, ps)
			}()
			roundTrip(t, s, "hello over "+dir.name)
			<-done
		})
		t.Run(dir.name+"/uni", func(t *testing.T) {
			payload := bytes.Repeat([]byte("moq"), 100_000) // several flow-control windows' worth
			s, err := dir.open.OpenUniStream(ctx)
			if err != nil {
				t.Fatal(err)
			}
			go func() {
				if _, err := s.Write(payload); err != nil {
					t.Error(err)
				}
				_ = s.Close()
			}()
			rs, err := dir.peer.AcceptUniStream(ctx)
			if err != nil {
				t.Fatal(err)
			}
			got, err := io.ReadAll(rs)
			if err != nil || !bytes.Equal(got, payload) {
				t.Fatalf("read %d bytes, %v; want %d", len(got), err, len(payload))
			}
		})
	}
}

// codes are moq-lite codes around the points where the HTTP/3 mapping skips
// a reserved codepoint (every 0x1e codes), and application codes.
var codes = []uint32{0, 1, 13, 24, 29, 30, 31, 61, 64, 64 + 1000, 1<<32 - 1}

func TestResetCodesArriveUnchanged(t *testing.T) {
	f := newServer(t, Config{})
	client, server, _ := f.pair(t, nil)
	ctx := testCtx(t)
	for _, code := range codes {
		// RESET_STREAM: the client abandons a uni stream.
		s, err := client.OpenUniStream(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := s.Write([]byte("x")); err != nil {
			t.Fatal(err)
		}
		s.CancelWrite(code)
		rs, err := server.AcceptUniStream(ctx)
		if err != nil {
			t.Fatal(err)
		}
		_, err = io.ReadAll(rs)
		if se, ok := errors.AsType[*transport.StreamError](err); !ok || se.Code != code || !se.Remote {
			t.Fatalf("code %d: read error %v, want a remote StreamError with that code", code, err)
		}

		// STOP_SENDING: the server stops reading a bidi stream.
		bs, err := client.OpenStream(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := bs.Write([]byte("x")); err != nil {
			t.Fatal(err)
		}
		ps, err := server.AcceptStream(ctx)
		if err != nil {
			t.Fatal(err)
		}
		ps.CancelRead(code)
		var werr error
		for werr == nil { // the write fails once STOP_SENDING has arrived
			_, werr = bs.Write(make([]byte, 1024))
		}
		if se, ok := errors.AsType[*transport.StreamError](werr); !ok || se.Code != code || !se.Remote {
			t.Fatalf("code %d: write error %v, want a remote StreamError with that code", code, werr)
		}
		bs.CancelRead(0)
		ps.CancelWrite(0)
	}
}

func TestLocalResetIsLocalStreamError(t *testing.T) {
	f := newServer(t, Config{})
	client, _, _ := f.pair(t, nil)
	s, err := client.OpenUniStream(testCtx(t))
	if err != nil {
		t.Fatal(err)
	}
	s.CancelWrite(13)
	_, err = s.Write([]byte("late"))
	if se, ok := errors.AsType[*transport.StreamError](err); !ok || se.Code != 13 || se.Remote {
		t.Fatalf("write after CancelWrite: %v, want a local StreamError 13", err)
	}
}

// wantClosed checks that err and the connection's context cause report a
// close with code and reason by the given side.
func wantClosed(t *testing.T, c transport.Conn, err error, code uint32, reason string, remote bool) {
	t.Helper()
	want := transport.ConnError{Code: code, Reason: reason, Remote: remote}
	if ce, ok := errors.AsType[*transport.ConnError](err); !ok || *ce != want {
		t.Errorf("error %v, want %+v", err, want)
	}
	select {
	case <-c.Context().Done():
	case <-testCtx(t).Done():
		t.Fatal("context not done after the close")
	}
	cause := context.Cause(c.Context())
	if ce, ok := errors.AsType[*transport.ConnError](cause); !ok || *ce != want {
		t.Errorf("context cause %v, want %+v", cause, want)
	}
}

func TestSessionCloseArrivesAsConnError(t *testing.T) {
	t.Run("server closes", func(t *testing.T) {
		f := newServer(t, Config{})
		client, server, req := f.pair(t, nil)
		if err := server.CloseWithError(12, "duplicate session"); err != nil {
			t.Fatal(err)
		}
		_, err := client.AcceptStream(testCtx(t))
		wantClosed(t, client, err, 12, "duplicate session", true)
		_, err = server.OpenUniStream(testCtx(t))
		wantClosed(t, server, err, 12, "duplicate session", false)
		if req.Context().Err() == nil {
			t.Error("the request's context outlived the session")
		}
	})
	t.Run("client closes", func(t *testing.T) {
		f := newServer(t, Config{})
		client, server, _ := f.pair(t, nil)
		if err := client.CloseWithError(64+7, "bye"); err != nil {
			t.Fatal(err)
		}
		_, err := server.AcceptUniStream(testCtx(t))
		wantClosed(t, server, err, 64+7, "bye", true)
		_, err = client.OpenStream(testCtx(t))
		wantClosed(t, client, err, 64+7, "bye", false)
	})
	t.Run("a blocked stream reads the server's code", func(t *testing.T) {
		// The session's streams see its end too, some of them as the
		// dialed QUIC connection's own close once the session has ended:
		// each must report the server's code all the same. The race this
		// guards is narrow: many sessions, each closed while the client's
		// stream waits for an answer.
		f := newServer(t, Config{})
		for i := range 40 {
			client, server, _ := f.pair(t, nil)
			st, err := client.OpenStream(testCtx(t))
			if err != nil {
				t.Fatal(err)
			}
			if _, err := st.Write([]byte("please")); err != nil {
				t.Fatal(err)
			}
			read := make(chan error, 1)
			go func() {
				_, err := st.Read(make([]byte, 1))
				read <- err
			}()
			if err := server.CloseWithError(6, "token refused"); err != nil {
				t.Fatal(err)
			}
			err = <-read
			if ce, ok := errors.AsType[*transport.ConnError](err); !ok || ce.Code != 6 || !ce.Remote {
				t.Fatalf("session %d: the stream's read failed with %v, want the server's close with code 6", i, err)
			}
		}
	})
	t.Run("the released connection's close reads as the session's", func(t *testing.T) {
		f := newServer(t, Config{})
		client, server, _ := f.pair(t, nil)
		if err := server.CloseWithError(6, "token refused"); err != nil {
			t.Fatal(err)
		}
		<-client.QUICConn().Context().Done() // released once the session ended
		// What a stream that webtransport-go no longer tracks sees then.
		own := &quic.ApplicationError{ErrorCode: quic.ApplicationErrorCode(http3.ErrCodeNoError)}
		wantClosed(t, client, client.streamErr(own), 6, "token refused", true)
	})
	t.Run("server stops", func(t *testing.T) {
		f := newServer(t, Config{})
		client, _, _ := f.pair(t, nil)
		_ = f.srv.Close()
		// The QUIC connection closes with H3_NO_ERROR: a clean close.
		_, err := client.AcceptStream(testCtx(t))
		if ce, ok := errors.AsType[*transport.ConnError](err); !ok || ce.Code != 0 || !ce.Remote {
			t.Fatalf("after the server closed: %v, want a remote ConnError with code 0", err)
		}
		if ce, ok := errors.AsType[*transport.ConnError](context.Cause(client.Context())); !ok || ce.Code != 0 || !ce.Remote {
			t.Fatalf("context cause %v, want a remote ConnError with code 0", context.Cause(client.Context()))
		}
		if _, _, err := f.srv.Accept(testCtx(t)); !errors.Is(err, ErrServerClosed) {
			t.Fatalf("Accept after Close: %v", err)
		}
	})
}

func TestManySessions(t *testing.T) {
	f := newServer(t, Config{})
	var clients []*Conn
	for range 5 {
		clients = append(clients, f.dial(t, "/many", nil))
	}
	var ports []int
	for range clients {
		c, req := f.accept(t)
		if req.URL.Path != "/many" {
			t.Errorf("path %q", req.URL.Path)
		}
		ports = append(ports, port(c.RemoteAddr()))
	}
	for _, c := range clients {
		if !slices.Contains(ports, port(c.LocalAddr())) {
			t.Errorf("client %s was not accepted", c.LocalAddr())
		}
	}
}

func TestDialErrors(t *testing.T) {
	ctx := testCtx(t)
	if _, err := Dial(ctx, "http://127.0.0.1:1/x", nil, nil); !errors.Is(err, ErrURL) {
		t.Errorf("http URL: %v, want ErrURL", err)
	}
	f := newServer(t, Config{})
	if _, err := (&Dialer{Transport: loopback(t)}).Dial(ctx, f.url("/x")); err == nil {
		t.Error("dial without pinning accepted a self-signed certificate")
	}
}
