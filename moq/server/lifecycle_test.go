package server

import (
	"crypto/x509"
	"errors"
	"testing"
)

// Dialer with a nil tls.Config verifies with the system's roots on every
// scheme: a moql:// dial to a development certificate fails verification
// (it used to panic).
func TestDialerNilTLSConfigUsesSystemRoots(t *testing.T) {
	n := newNode(t)
	srv := serve(t, n, nil)
	d, err := Dialer("moql://"+srv.UDPAddr().String(), nil)
	if err != nil {
		t.Fatal(err)
	}
	_, err = d(testCtx(t))
	var ue x509.UnknownAuthorityError
	if !errors.As(err, &ue) {
		t.Fatalf("moql:// dial with nil tls.Config: %v, want an unknown-authority error", err)
	}
}
