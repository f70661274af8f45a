package p2pstream

import (
	"bufio"
	"context"
	"errors"
	"io"
	"sync/atomic"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"

	"github.com/moqp2p/moqp2p/internal/wire"
	"github.com/moqp2p/moqp2p/transport"
)

// rawStream opens a plain libp2p stream from a to b on the lite-04
// protocol, for writing whatever a test likes.
func rawStream(t *testing.T, a, b host.Host) network.Stream {
	t.Helper()
	s, err := a.NewStream(testCtx(t), b.ID(), ProtocolLite04)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Reset() })
	return s
}

// resetCode reads s until it fails and returns the peer's reset code.
func resetCode(t *testing.T, s network.Stream) network.StreamErrorCode {
	t.Helper()
	_ = s.SetReadDeadline(time.Now().Add(5 * time.Second))
	_, err := io.Copy(io.Discard, s)
	var se *network.StreamError
	if !errors.As(err, &se) || !se.Remote {
		t.Fatalf("read ended with %v, want a reset by the peer", err)
	}
	return se.ErrorCode
}

func TestRefusedStreams(t *testing.T) {
	forKinds(t, func(t *testing.T, kind string) {
		a, b := newHost(t, kind), newHost(t, kind)
		connect(t, a, b)
		newTransport(t, b)
		for _, c := range []struct {
			name  string
			bytes []byte
			fin   bool
			want  network.StreamErrorCode
		}{
			{"unknown kind", appendHeader(nil, 7, 1), false, network.StreamErrorCode(codeUnexpectedStream)},
			{"unknown session, uni", appendHeader(nil, kindUni, 12345), false, codeSessionGone},
			{"unknown session, bidi", appendHeader(nil, kindBidi, 12345), false, codeSessionGone},
			{"session ID 0", appendHeader(nil, kindControl, 0), false, network.StreamErrorCode(codeDecode)},
			{"truncated header", []byte{0x01, 0x40}, true, network.StreamErrorCode(codeDecode)},
			{"empty stream", nil, true, network.StreamErrorCode(codeDecode)},
		} {
			t.Run(c.name, func(t *testing.T) {
				s := rawStream(t, a, b)
				if _, err := s.Write(c.bytes); err != nil && len(c.bytes) > 0 {
					t.Fatal(err)
				}
				if c.fin {
					_ = s.CloseWrite()
				}
				if got := resetCode(t, s); got != c.want {
					t.Errorf("reset code %#x, want %#x", got, c.want)
				}
			})
		}
	})
}

// rawIDs numbers hand-made sessions: a session that just ended may still
// hold its ID for an instant.
var rawIDs atomic.Uint64

// rawSession starts a session on b's transport by hand, from a raw stream
// of a's, and returns the stream (past ACCEPT) and b's end of the session.
func rawSession(t *testing.T, a, b host.Host, tb *Transport) (network.Stream, *bufio.Reader, *Conn) {
	t.Helper()
	s := rawStream(t, a, b)
	if _, err := s.Write(appendHeader(nil, kindControl, rawIDs.Add(1))); err != nil {
		t.Fatal(err)
	}
	c, err := tb.Accept(testCtx(t))
	if err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(s)
	if typ, err := wire.ReadVarint(br); err != nil || typ != msgAccept {
		t.Fatalf("first control message %d, %v; want ACCEPT", typ, err)
	}
	return s, br, c
}

func TestBadControlStream(t *testing.T) {
	forKinds(t, func(t *testing.T, kind string) {
		a, b := newHost(t, kind), newHost(t, kind)
		connect(t, a, b)
		tb := newTransport(t, b)
		for _, c := range []struct {
			name  string
			bytes []byte
		}{
			{"unknown message", []byte{0x3f, 0, 0, 0}},
			{"second ACCEPT", []byte{byte(msgAccept)}},
			{"reason too long", append(wire.AppendVarint([]byte{byte(msgClose), 6}, 5000), make([]byte, 5000)...)},
			{"code beyond 32 bits", wire.AppendVarint([]byte{byte(msgClose)}, 1<<40)},
			{"truncated CLOSE", []byte{byte(msgClose), 6, 10, 'a'}},
		} {
			t.Run(c.name, func(t *testing.T) {
				s, br, conn := rawSession(t, a, b, tb)
				_, _ = s.Write(c.bytes)
				_ = s.CloseWrite()
				<-conn.Context().Done()
				ce := connErr(context.Cause(conn.Context()))
				if ce == nil || ce.Code != codeDecode || ce.Remote {
					t.Fatalf("cause %v, want a local Decode close", context.Cause(conn.Context()))
				}
				// The peer is told why.
				typ, err := wire.ReadVarint(br)
				if err != nil || typ != msgClose {
					t.Fatalf("control message %d, %v; want CLOSE", typ, err)
				}
				if code, _, err := readCloseBody(br); err != nil || code != codeDecode {
					t.Fatalf("CLOSE code %d, %v; want 5", code, err)
				}
			})
		}
		t.Run("end without CLOSE", func(t *testing.T) {
			s, _, conn := rawSession(t, a, b, tb)
			_ = s.CloseWrite()
			<-conn.Context().Done()
			if err := context.Cause(conn.Context()); !errors.Is(err, ErrConnLost) || connErr(err) != nil {
				t.Fatalf("cause %v, want ErrConnLost", err)
			}
		})
		t.Run("reset", func(t *testing.T) {
			s, _, conn := rawSession(t, a, b, tb)
			_ = s.Reset()
			<-conn.Context().Done()
			if err := context.Cause(conn.Context()); !errors.Is(err, ErrConnLost) {
				t.Fatalf("cause %v, want ErrConnLost", err)
			}
		})
		t.Run("duplicate session ID", func(t *testing.T) {
			_, _, conn := rawSession(t, a, b, tb)
			s := rawStream(t, a, b)
			_, _ = s.Write(appendHeader(nil, kindControl, conn.key.id))
			br := bufio.NewReader(s)
			if typ, err := wire.ReadVarint(br); err != nil || typ != msgClose {
				t.Fatalf("answer %d, %v; want CLOSE", typ, err)
			}
			if code, _, _ := readCloseBody(br); code != codeDuplicate {
				t.Fatalf("CLOSE code %d, want Duplicate", code)
			}
			if conn.Context().Err() != nil {
				t.Fatal("the duplicate ended the first session")
			}
		})
	})
}

// TestDialBadListener: a peer that answers garbage, or nothing, fails the
// dial and leaves no session behind.
func TestDialBadListener(t *testing.T) {
	for _, c := range []struct {
		name   string
		answer []byte
		check  func(error) bool
	}{
		{"garbage", []byte{0x3f}, func(err error) bool { return errors.Is(err, errDecode) }},
		{"CLOSE", appendClose(nil, 9, "go away"), func(err error) bool {
			ce := connErr(err)
			return ce != nil && ce.Code == 9 && ce.Reason == "go away" && ce.Remote
		}},
		{"reset", nil, func(err error) bool {
			var se *network.StreamError
			return errors.As(err, &se)
		}},
		{"silence", []byte{}, func(err error) bool { return errors.Is(err, context.DeadlineExceeded) }},
	} {
		t.Run(c.name, func(t *testing.T) {
			a, b := newHost(t, "tcp"), newHost(t, "tcp")
			ta := newTransport(t, a)
			b.SetStreamHandler(ProtocolLite04, func(s network.Stream) {
				_, _, _ = readHeader(&byteReader{r: s})
				switch {
				case c.answer == nil:
					_ = s.ResetWithError(3)
				case len(c.answer) == 0:
					_, _ = io.Copy(io.Discard, s) // until the dialer gives up
					_ = s.Reset()
				default:
					_, _ = s.Write(c.answer)
					_ = s.Close()
				}
			})
			connect(t, a, b)
			ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
			defer cancel()
			_, err := ta.Dial(ctx, b.ID())
			if err == nil || !c.check(err) {
				t.Fatalf("Dial: %v", err)
			}
			ta.mu.Lock()
			n := len(ta.sessions)
			ta.mu.Unlock()
			if n != 0 {
				t.Fatalf("%d sessions left behind", n)
			}
		})
	}
}

// TestStreamsOfEndedSession: a stream arriving for a session that just
// ended is refused, and the opener learns why the session ended.
func TestStreamsOfEndedSession(t *testing.T) {
	d, a := setup(t, "quic")
	_ = a.CloseWithError(13, "gone")
	<-a.Context().Done()
	st, err := d.OpenUniStream(testCtx(t)) // may race with the CLOSE
	if err == nil {
		deadline := time.Now().Add(5 * time.Second)
		for err == nil && time.Now().Before(deadline) {
			_, err = st.Write(make([]byte, 1024))
		}
	}
	if ce := connErr(err); ce == nil || ce.Code != 13 || !ce.Remote {
		t.Fatalf("opener saw %v, want the session's close", err)
	}
	var se *transport.StreamError
	if errors.As(err, &se) {
		t.Fatalf("opener saw a stream error %v", se)
	}
}
