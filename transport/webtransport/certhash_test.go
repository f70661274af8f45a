package webtransport

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"math/big"
	"net"
	"testing"
	"time"

	"github.com/moqp2p/moqp2p/transport/cert"
)

func TestCertificateHash(t *testing.T) {
	crt := newCert(t)
	sum := sha256.Sum256(crt.Certificate[0])
	if got := CertificateHash(crt); got != hex.EncodeToString(sum[:]) || len(got) != 64 {
		t.Fatalf("hash %q, want the hex SHA-256 of the DER", got)
	}
	if fp, err := cert.ParseFingerprint(CertificateHash(crt)); err != nil || fp != cert.Fingerprint(crt) {
		t.Fatalf("hash does not parse back to the fingerprint: %v", err)
	}
	if CertificateHash(tls.Certificate{}) != "" {
		t.Fatal("hash of no certificate")
	}
}

// cert.SelfSigned makes what Chromium accepts for serverCertificateHashes.
func TestSelfSignedSuitsBrowsers(t *testing.T) {
	crt := newCert(t)
	if err := CheckCertificate(crt, time.Now()); err != nil {
		t.Fatal(err)
	}
	leaf := crt.Leaf
	if k, ok := leaf.PublicKey.(*ecdsa.PublicKey); !ok || k.Curve != elliptic.P256() {
		t.Errorf("key %T, want ECDSA P-256", leaf.PublicKey)
	}
	if err := leaf.VerifyHostname("127.0.0.1"); err != nil {
		t.Error(err)
	}
	if err := leaf.VerifyHostname("localhost"); err != nil {
		t.Error(err)
	}
	if err := CheckCertificate(crt, leaf.NotAfter.Add(time.Second)); !errors.Is(err, ErrCertificate) {
		t.Errorf("after expiry: %v", err)
	}
}

func TestCheckCertificateRefuses(t *testing.T) {
	mk := func(key any, pub any, validity time.Duration) tls.Certificate {
		now := time.Now()
		tmpl := &x509.Certificate{
			SerialNumber: big.NewInt(1), NotBefore: now.Add(-time.Minute), NotAfter: now.Add(-time.Minute + validity),
			IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, pub, key)
		if err != nil {
			t.Fatal(err)
		}
		return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
	}
	ec, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	rk, _ := rsa.GenerateKey(rand.Reader, 2048)
	for name, c := range map[string]tls.Certificate{
		"RSA":            mk(rk, &rk.PublicKey, 24*time.Hour),
		"15 days":        mk(ec, &ec.PublicKey, 15*24*time.Hour),
		"no DER":         {},
		"P-256, 14 days": mk(ec, &ec.PublicKey, MaxCertificateValidity),
		"P-224 curve": func() tls.Certificate {
			k, _ := ecdsa.GenerateKey(elliptic.P224(), rand.Reader)
			return mk(k, &k.PublicKey, time.Hour)
		}(),
	} {
		err := CheckCertificate(c, time.Now())
		if wantOK := name == "P-256, 14 days"; (err == nil) != wantOK || (err != nil && !errors.Is(err, ErrCertificate)) {
			t.Errorf("%s: %v", name, err)
		}
	}
}
