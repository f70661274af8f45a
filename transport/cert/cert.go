// Package cert makes development certificates and TLS configs that pin a
// server by the SHA-256 fingerprint of its certificate.
//
// The certificates are ECDSA P-256 and valid for at most 14 days, which is what
// browsers require for WebTransport's serverCertificateHashes, so the same
// certificate serves raw QUIC, WebTransport and WebSocket.
package cert

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"errors"
	"fmt"
	"math/big"
	"net"
	"strings"
	"time"
)

// Validity is the lifetime of generated certificates: a day under the 14
// days browsers accept for serverCertificateHashes, so clock skew and
// rounding never push it over.
const Validity = 13 * 24 * time.Hour

// ErrFingerprint is returned when a server's certificate does not match the
// pinned fingerprint.
var ErrFingerprint = errors.New("cert: server certificate does not match the pinned SHA-256 fingerprint")

// SelfSigned returns a new self-signed certificate for the given host names
// and IP addresses (default: localhost, 127.0.0.1 and ::1).
func SelfSigned(hosts ...string) (tls.Certificate, error) {
	if len(hosts) == 0 {
		hosts = []string{"localhost", "127.0.0.1", "::1"}
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, err
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 128))
	if err != nil {
		return tls.Certificate{}, err
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: "moqp2p development"},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(Validity - time.Hour), // -1h: NotBefore is backdated by as much
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	for _, h := range hosts {
		if ip := net.ParseIP(h); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, h)
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return tls.Certificate{}, err
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		return tls.Certificate{}, err
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}, nil
}

// Fingerprint returns the SHA-256 of a certificate's leaf, the value browsers
// take as serverCertificateHashes and `moq --fingerprint` takes in hex.
func Fingerprint(c tls.Certificate) [32]byte { return sha256.Sum256(c.Certificate[0]) }

// ParseFingerprint reads a hex fingerprint; colons and spaces are ignored.
func ParseFingerprint(s string) ([32]byte, error) {
	var fp [32]byte
	clean := strings.NewReplacer(":", "", " ", "").Replace(s)
	b, err := hex.DecodeString(clean)
	if err != nil || len(b) != len(fp) {
		return fp, fmt.Errorf("cert: fingerprint must be 64 hex digits (SHA-256), got %q", s)
	}
	copy(fp[:], b)
	return fp, nil
}

// PinnedConfig returns a client TLS config that accepts exactly the server
// certificate with the given fingerprint, whatever its name or issuer.
func PinnedConfig(fp [32]byte) *tls.Config {
	return &tls.Config{
		InsecureSkipVerify: true, // replaced by the fingerprint check below
		VerifyPeerCertificate: func(raw [][]byte, _ [][]*x509.Certificate) error {
			if len(raw) == 0 {
				return ErrFingerprint
			}
			got := sha256.Sum256(raw[0])
			if subtle.ConstantTimeCompare(got[:], fp[:]) != 1 {
				return fmt.Errorf("%w: got %x", ErrFingerprint, got)
			}
			return nil
		},
	}
}
