package server

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/moqp2p/moqp2p/internal/testutil"
	"github.com/moqp2p/moqp2p/session"
	"github.com/moqp2p/moqp2p/transport/rawquic"
)

// StatsHandler serves the node's broadcasts and live sessions, with the
// counters of a subscription a client is reading; only GET and HEAD.
func TestStatsHandler(t *testing.T) {
	n := newNode(t)
	live(t, publish(t, n, "clock"))
	srv := serve(t, n, func(s *Server) {
		mux := http.NewServeMux()
		mux.Handle("/stats", StatsHandler(n))
		mux.Handle("/anonymous", AnonymousStatsHandler(n))
		s.Handler = mux
	})
	conn, err := rawquic.Dial(testCtx(t), srv.UDPAddr().String(), pinned(t, srv), nil)
	if err != nil {
		t.Fatal(err)
	}
	cs := clientSession(t, conn)
	testutil.Until(t, testCtx(t), "clock announced", func() bool { return cs.Remote().Get("clock") != nil })
	tc, err := cs.Subscribe(testCtx(t), "clock", "video", session.SubscribeOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer tc.Close() // open while /stats is read
	for range 5 {
		g, err := tc.NextGroup(testCtx(t))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := g.ReadFrame(testCtx(t)); err != nil {
			t.Fatal(err)
		}
	}

	url := "http://" + srv.TCPAddr().String() + "/stats"
	var doc NodeStats
	testutil.Until(t, testCtx(t), "the served subscription's frames in /stats", func() bool {
		resp, err := http.Get(url)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "application/json" {
			t.Fatalf("GET /stats: %s, %q", resp.Status, resp.Header.Get("Content-Type"))
		}
		doc = NodeStats{}
		if err := json.NewDecoder(resp.Body).Decode(&doc); err != nil {
			t.Fatal(err)
		}
		return len(doc.Sessions) == 1 && len(doc.Sessions[0].Subscriptions) == 1 && doc.Sessions[0].Subscriptions[0].Frames >= 5
	})
	s := doc.Sessions[0]
	sub := s.Subscriptions[0]
	if doc.Peer != n.Host().ID().String() || len(doc.Broadcasts) != 1 || doc.Broadcasts[0] != "clock" ||
		!strings.HasPrefix(s.Peer, "client 127.0.0.1:") || s.Via != "raw QUIC or WebTransport" || s.Version != "moq-lite-05" ||
		s.Dialed || s.RTTMillis <= 0 || s.Link.BytesSent == 0 || s.Media.FramesSent < 5 ||
		!sub.Served || sub.Broadcast != "clock" || sub.Track != "video" {
		t.Errorf("stats %+v", doc)
	}

	// The anonymous document has the same session and counters, without
	// the client's address.
	resp, err := http.Get("http://" + srv.TCPAddr().String() + "/anonymous")
	if err != nil {
		t.Fatal(err)
	}
	raw, err := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	if err != nil {
		t.Fatal(err)
	}
	var anon NodeStats
	if err := json.Unmarshal(raw, &anon); err != nil {
		t.Fatal(err)
	}
	if len(anon.Sessions) != 1 || anon.Sessions[0].Peer != "" || anon.Sessions[0].Media.FramesSent < 5 ||
		strings.Contains(string(raw), "127.0.0.1") || strings.Contains(string(raw), `"peer":""`) {
		t.Errorf("anonymous stats %s", raw)
	}

	resp, err = http.Post(url, "application/json", nil)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("POST /stats: %s", resp.Status)
	}
}
