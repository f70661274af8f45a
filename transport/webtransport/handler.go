package webtransport

import (
	"net/http"

	"github.com/quic-go/quic-go"
)

// isWebTransport tells a WebTransport CONNECT's :protocol, current
// ("webtransport-h3") or from before draft 15 ("webtransport").
func isWebTransport(r *http.Request) bool {
	return r.Method == http.MethodConnect && (r.Proto == "webtransport-h3" || r.Proto == "webtransport")
}

// serveHTTP handles every HTTP/3 request: WebTransport CONNECTs become
// queued sessions, anything else goes to the configured handler.
func (s *Server) serveHTTP(w http.ResponseWriter, r *http.Request) {
	if !isWebTransport(r) {
		s.handler.ServeHTTP(w, r)
		return
	}
	log := s.log.With("remote", r.RemoteAddr, "path", r.URL.Path)
	// webtransport-go checks the origin too, but answers nothing on refusal.
	if !s.check(r) {
		log.Info("refusing WebTransport session: origin not allowed", "origin", r.Header.Get("Origin"), "host", r.Host)
		http.Error(w, "origin not allowed", http.StatusForbidden)
		return
	}
	if !s.queue.reserve() {
		log.Warn("refusing WebTransport session", "error", ErrAcceptQueueFull)
		http.Error(w, ErrAcceptQueueFull.Error(), http.StatusServiceUnavailable)
		return
	}
	sess, err := s.wt.Upgrade(w, r)
	if err != nil {
		s.queue.release()
		log.Info("WebTransport upgrade failed", "error", err)
		w.WriteHeader(http.StatusBadRequest)
		return
	}
	qconn, _ := r.Context().Value(quicConnKey{}).(*quic.Conn)
	conn := Wrap(sess, qconn)
	req := r.WithContext(conn.Context())
	req.Body = http.NoBody
	log.Debug("WebTransport session queued", "protocol", conn.Protocol())
	s.queue.push(&accepted{conn: conn, req: req})
}
