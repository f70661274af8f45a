package webtransport

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"fmt"
	"time"

	"github.com/moqp2p/moqp2p/transport/cert"
)

// MaxCertificateValidity is the longest validity period (NotAfter minus
// NotBefore) browsers accept for a certificate pinned by
// serverCertificateHashes.
const MaxCertificateValidity = 14 * 24 * time.Hour

// CertificateHash returns the value a browser passes as
// serverCertificateHashes (and moq relays serve at /certificate.sha256): the
// lowercase hex SHA-256 of the leaf certificate's DER. It is "" when c holds
// no certificate.
func CertificateHash(c tls.Certificate) string {
	if len(c.Certificate) == 0 {
		return ""
	}
	fp := cert.Fingerprint(c)
	return hex.EncodeToString(fp[:])
}

// CheckCertificate reports why browsers would refuse c through
// serverCertificateHashes at time now, or nil if they would accept it: the
// key must be ECDSA P-256 or P-384 or Ed25519 (RSA is forbidden), the
// validity period at most MaxCertificateValidity, and now inside it. The
// errors match ErrCertificate. Host names are not checked: a pinned hash
// replaces name verification.
func CheckCertificate(c tls.Certificate, now time.Time) error {
	if len(c.Certificate) == 0 {
		return fmt.Errorf("%w: no certificate", ErrCertificate)
	}
	leaf := c.Leaf
	if leaf == nil {
		var err error
		if leaf, err = x509.ParseCertificate(c.Certificate[0]); err != nil {
			return fmt.Errorf("%w: %w", ErrCertificate, err)
		}
	}
	switch k := leaf.PublicKey.(type) {
	case *ecdsa.PublicKey:
		if k.Curve != elliptic.P256() && k.Curve != elliptic.P384() {
			return fmt.Errorf("%w: ECDSA curve %s, want P-256 or P-384", ErrCertificate, k.Curve.Params().Name)
		}
	case ed25519.PublicKey:
	default:
		return fmt.Errorf("%w: %s key, want ECDSA P-256", ErrCertificate, leaf.PublicKeyAlgorithm)
	}
	if d := leaf.NotAfter.Sub(leaf.NotBefore); d > MaxCertificateValidity {
		return fmt.Errorf("%w: valid for %s, more than %s", ErrCertificate, d, MaxCertificateValidity)
	}
	if now.Before(leaf.NotBefore) || !now.Before(leaf.NotAfter) {
		return fmt.Errorf("%w: not valid at %s (valid %s to %s)", ErrCertificate,
			now.UTC().Format(time.RFC3339), leaf.NotBefore.UTC().Format(time.RFC3339), leaf.NotAfter.UTC().Format(time.RFC3339))
	}
	return nil
}
