package main

import (
	"errors"
	"fmt"
	"net/http/httptest"
	"testing"

	"github.com/golang-jwt/jwt/v5"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/moqp2p/moqp2p/broadcast"
)

// Audit probe: the relay's token grants are keyed by the client's remote
// address (IP and port) and recorded by route, which server.Server calls
// before its per-IP bounds. One client IP opening connections to a public
// path (each from a new port) fills maxGrants, and for a minute every
// other client, a valid token holder included, is refused.
func TestAuditRelayGrantsFilledByOneIP(t *testing.T) {
	secret, jwk := hmacKey(t)
	v, err := parseKey(jwk)
	if err != nil {
		t.Fatal(err)
	}
	a := &relayAuth{key: v, public: []string{"pub"}, byAddr: map[string]addrPerms{}, trusted: map[peer.ID]bool{}}
	for i := range maxGrants {
		r := httptest.NewRequest("GET", "/pub", nil)
		r.RemoteAddr = fmt.Sprintf("192.0.2.1:%d", 1024+i) // one IP, a new port per connection
		if _, err := a.route(r); err != nil {
			t.Fatalf("request %d: %v", i, err)
		}
	}
	tok := sign(t, jwt.SigningMethodHS256, secret, map[string]any{"root": "room", "get": "", "exp": future()})
	r := httptest.NewRequest("GET", "/room?jwt="+tok, nil)
	r.RemoteAddr = "198.51.100.7:4433"
	_, err = a.route(r)
	if errors.Is(err, &broadcast.Error{Code: broadcast.CodeBoundsExceeded}) {
		t.Fatalf("a valid token from another address refused after one address's %d public requests: %v", maxGrants, err)
	}
}
