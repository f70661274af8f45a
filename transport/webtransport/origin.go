package webtransport

import (
	"net/http"
	"net/url"
	"slices"
	"strings"
)

// sameOrigin is the default origin check: no Origin header (not a browser),
// or an Origin whose host:port is the request's.
func sameOrigin(r *http.Request) bool {
	origin := r.Header.Get("Origin")
	if origin == "" {
		return true
	}
	u, err := url.Parse(origin)
	if err != nil {
		return false
	}
	return strings.EqualFold(u.Host, r.Host)
}

// AllowOrigins returns a Config.CheckOrigin that admits requests without an
// Origin header and those whose Origin is one of origins, compared without
// regard to case, e.g. "http://127.0.0.1:8080". Pass "*" to admit any origin.
func AllowOrigins(origins ...string) func(r *http.Request) bool {
	allowed := make([]string, len(origins))
	for i, o := range origins {
		allowed[i] = strings.ToLower(strings.TrimSuffix(o, "/"))
	}
	anyOrigin := slices.Contains(allowed, "*")
	return func(r *http.Request) bool {
		origin := r.Header.Get("Origin")
		return origin == "" || anyOrigin || slices.Contains(allowed, strings.ToLower(origin))
	}
}
