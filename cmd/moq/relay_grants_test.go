package main

import (
	"errors"
	"fmt"
	"net/http/httptest"
	"testing"

	"github.com/golang-jwt/jwt/v5"

	"github.com/moqp2p/moqp2p/broadcast"
)

// One address opening connection after connection (a new source port
// each) to a public path fills only its own share of the relay's token
// grants: it is refused, and a valid token from another address is not.
// An IPv6 client's /64 counts as one address.
func TestRelayGrantsPerIP(t *testing.T) {
	secret, jwk := hmacKey(t)
	v, err := parseKey(jwk)
	if err != nil {
		t.Fatal(err)
	}
	a := newRelayAuth()
	a.key, a.public = v, []string{"pub"}
	route := func(path, remote string) error {
		r := httptest.NewRequest("GET", path, nil)
		r.RemoteAddr = remote
		_, err := a.route(r)
		return err
	}
	tooMany := &broadcast.Error{Code: broadcast.CodeBoundsExceeded}
	for _, host := range []string{"192.0.2.1:%d", "[2001:db8:1:2::%x]:443"} {
		for i := range maxGrants {
			err := route("/pub", fmt.Sprintf(host, 1024+i))
			if i < maxGrantsPerIP && err != nil {
				t.Fatalf("%s: request %d: %v", host, i, err)
			}
			if i >= maxGrantsPerIP {
				if !errors.Is(err, tooMany) {
					t.Fatalf("%s: request %d past the address's share: %v", host, i, err)
				}
				break
			}
		}
	}
	// A client already granted may present itself again (same address).
	if err := route("/pub", "192.0.2.1:1024"); err != nil {
		t.Fatalf("same address again: %v", err)
	}
	tok := sign(t, jwt.SigningMethodHS256, secret, map[string]any{"root": "room", "get": "", "exp": future()})
	if err := route("/room?jwt="+tok, "198.51.100.7:4433"); err != nil {
		t.Fatalf("a valid token from another address refused: %v", err)
	}
	if got := len(a.byAddr); got != 2*maxGrantsPerIP+1 {
		t.Fatalf("%d grants, want %d", got, 2*maxGrantsPerIP+1)
	}
	a.mu.Lock()
	for addr := range a.byAddr {
		a.forget(addr)
	}
	a.mu.Unlock()
	if len(a.perIP) != 0 {
		t.Fatalf("per-address counts left after forgetting every grant: %v", a.perIP)
	}
}
