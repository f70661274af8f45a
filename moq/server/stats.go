package server

import (
	"context"
	"encoding/json"
	"net/http"

	"github.com/moqp2p/moqp2p/moq"
	"github.com/moqp2p/moqp2p/session"
	"github.com/moqp2p/moqp2p/transport"
)

// NodeStats is a node's live statistics, as StatsHandler serves them (the
// document moq stats prints and the watch pages show).
type NodeStats struct {
	// Peer is the node's libp2p peer ID ("" without a host).
	Peer string `json:"peer,omitempty"`
	// Broadcasts are the names the node publishes itself.
	Broadcasts []string `json:"broadcasts"`
	// Sessions are the live sessions, oldest first.
	Sessions []SessionStats `json:"sessions"`
}

// SessionStats is one session in NodeStats.
type SessionStats struct {
	// Peer names the other end: its peer ID, or "client ADDR" for a
	// client without a libp2p identity.
	Peer string `json:"peer,omitempty"`
	// Via names the transport the session runs on.
	Via     string  `json:"via"`
	Version string  `json:"version"` // the moq-lite version negotiated
	Dialed  bool    `json:"dialed"`  // this node opened it
	Seconds float64 `json:"seconds"` // since it opened
	// RTTMillis is the smoothed round-trip time, 0 if unknown.
	RTTMillis     float64                     `json:"rtt_ms"`
	Link          transport.Stats             `json:"link"`
	Media         session.Stats               `json:"media"`
	Subscriptions []session.SubscriptionStats `json:"subscriptions"`
}

// Stats reads m's statistics now.
func Stats(ctx context.Context, m *moq.Moq) NodeStats {
	doc := NodeStats{Broadcasts: []string{}, Sessions: []SessionStats{}}
	if m == nil {
		return doc
	}
	if h := m.Host(); h != nil {
		doc.Peer = h.ID().String()
	}
	if names, err := m.PublishedBroadcasts(ctx); err == nil {
		doc.Broadcasts = append(doc.Broadcasts, names...)
	}
	list, _ := m.Sessions(ctx)
	for _, s := range list {
		st := s.Stats()
		doc.Sessions = append(doc.Sessions, SessionStats{
			Peer: SessionPeer(s), Via: SessionVia(s), Version: s.Version(), Dialed: s.Dialed(),
			Seconds: st.Since.Seconds(), RTTMillis: float64(st.RTT.Microseconds()) / 1000,
			Link: st.Link, Media: st.Media, Subscriptions: st.Subscriptions,
		})
	}
	return doc
}

// SessionPeer names the other end of s: its peer ID, or "client ADDR" for
// a client without a libp2p identity.
func SessionPeer(s *moq.Session) string {
	if p := s.RemotePeer(); p != "" {
		return p.String()
	}
	return "client " + s.RemoteAddr().String()
}

// SessionVia names the transport s runs on, the two libp2p paths by the
// name their counters carry.
func SessionVia(s *moq.Session) string {
	switch {
	case s.RemotePeer() == "" && s.RemoteAddr().Network() == "tcp":
		return "WebSocket"
	case s.RemotePeer() == "":
		return "raw QUIC or WebTransport"
	case s.Stats().Link.Transport == "p2pquic":
		return "raw QUIC (p2pquic)"
	}
	return "libp2p streams (p2pstream)"
}

// Anonymous is s without what names the node's peers and clients (each
// session's Peer): the counts, rates and broadcasts a page shows, for
// anyone who can load it.
func (s NodeStats) Anonymous() NodeStats {
	out := s
	out.Sessions = make([]SessionStats, len(s.Sessions))
	for i, ss := range s.Sessions {
		ss.Peer = ""
		out.Sessions[i] = ss
	}
	return out
}

// StatsHandler serves m's statistics (Stats) as JSON to GET requests:
// mount it at /stats next to watch.Handler and the pages show the node's
// sessions, broadcasts and rates. The document names the node's peers
// and its clients' addresses: serve it only where they may be seen, and
// AnonymousStatsHandler elsewhere.
func StatsHandler(m *moq.Moq) http.Handler {
	return statsHandler(m, false)
}

// AnonymousStatsHandler is StatsHandler serving NodeStats.Anonymous: no
// peer ID or client address.
func AnonymousStatsHandler(m *moq.Moq) http.Handler {
	return statsHandler(m, true)
}

func statsHandler(m *moq.Moq, anonymous bool) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "no-store")
		doc := Stats(r.Context(), m)
		if anonymous {
			doc = doc.Anonymous()
		}
		_ = json.NewEncoder(w).Encode(doc)
	})
}
