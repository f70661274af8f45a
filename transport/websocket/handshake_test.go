package websocket

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// A server that answers the upgrade with an HTTP status gives a
// HandshakeError with that status: 401 and 403 are refusals (the same
// request would be refused again), 429 and 503 are not. The error names
// the URL without its query, which may hold a token.
func TestDialHandshakeError(t *testing.T) {
	for _, c := range []struct {
		status  int
		refused bool
	}{{http.StatusForbidden, true}, {http.StatusUnauthorized, true}, {http.StatusTooManyRequests, false}, {http.StatusServiceUnavailable, false}} {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			http.Error(w, "no", c.status)
		}))
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		_, err := Dial(ctx, "ws"+strings.TrimPrefix(srv.URL, "http")+"/room?jwt=secret", nil)
		cancel()
		srv.Close()
		var he *HandshakeError
		if !errors.As(err, &he) || he.StatusCode != c.status || he.Refused() != c.refused {
			t.Errorf("HTTP %d: %v (%+v), want a HandshakeError with Refused %v", c.status, err, he, c.refused)
			continue
		}
		if strings.Contains(err.Error(), "secret") || !strings.Contains(err.Error(), "/room?…") {
			t.Errorf("HTTP %d: the error shows the query: %v", c.status, err)
		}
	}
}
