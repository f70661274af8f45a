package main

// moq relay's authorization, compatible with moq-relay's tokens (moq-dev/moq,
// rs/moq-token): a JWT passed as ?jwt= on the connection URL, signed with a
// key given as a JWK (JSON, or base64url of the JSON, as moq-token writes
// it), with the claims root (a path the others are relative to), put (may
// publish under), get (may subscribe under), each a string or a list, and
// exp (enforced for the whole session).

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/moqp2p/moqp2p/broadcast"
)

// jwk is the subset of a JSON Web Key that moq-token writes.
type jwk struct {
	Alg string `json:"alg"`
	Kty string `json:"kty"`
	K   string `json:"k"`   // oct
	Crv string `json:"crv"` // EC, OKP
	X   string `json:"x"`
	Y   string `json:"y"`
	N   string `json:"n"` // RSA
	E   string `json:"e"`
}

// verifier checks tokens with one key.
type verifier struct {
	alg string
	key any // []byte, *ecdsa.PublicKey, ed25519.PublicKey or *rsa.PublicKey
}

func b64(s string) ([]byte, error) {
	return base64.RawURLEncoding.DecodeString(strings.TrimRight(s, "="))
}

// loadKey reads a key file: a JWK as JSON or as base64url of the JSON.
func loadKey(path string) (*verifier, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return parseKey(string(raw))
}

func parseKey(s string) (*verifier, error) {
	s = strings.TrimSpace(s)
	if !strings.HasPrefix(s, "{") {
		dec, err := b64(s)
		if err != nil {
			return nil, errors.New("neither JSON nor base64url")
		}
		s = string(dec)
	}
	var k jwk
	if err := json.Unmarshal([]byte(s), &k); err != nil {
		return nil, fmt.Errorf("not a JWK: %v", err)
	}
	if k.Kty == "" {
		k.Kty = "oct" // moq-token's older keys leave it out
	}
	v := &verifier{alg: k.Alg}
	switch k.Kty {
	case "oct":
		if !slices.Contains([]string{"HS256", "HS384", "HS512"}, k.Alg) {
			return nil, fmt.Errorf("oct key with algorithm %q", k.Alg)
		}
		secret, err := b64(k.K)
		if err != nil || len(secret) == 0 {
			return nil, errors.New("oct key without a secret")
		}
		v.key = secret
	case "EC":
		curve, alg, size := elliptic.P256(), "ES256", 32
		if k.Crv == "P-384" {
			curve, alg, size = elliptic.P384(), "ES384", 48
		} else if k.Crv != "P-256" {
			return nil, fmt.Errorf("EC curve %q", k.Crv)
		}
		if k.Alg != alg {
			return nil, fmt.Errorf("algorithm %q for curve %s", k.Alg, k.Crv)
		}
		x, err1 := b64(k.X)
		y, err2 := b64(k.Y)
		if err1 != nil || err2 != nil || len(x) != size || len(y) != size {
			return nil, errors.New("EC key coordinates")
		}
		// The uncompressed point form; parsing it checks the point is on the curve.
		pub, err := ecdsa.ParseUncompressedPublicKey(curve, append(append([]byte{4}, x...), y...))
		if err != nil {
			return nil, fmt.Errorf("EC key: %v", err)
		}
		v.key = pub
	case "OKP":
		if k.Crv != "Ed25519" || k.Alg != "EdDSA" {
			return nil, fmt.Errorf("OKP key %s/%s", k.Crv, k.Alg)
		}
		x, err := b64(k.X)
		if err != nil || len(x) != ed25519.PublicKeySize {
			return nil, errors.New("Ed25519 public key")
		}
		v.key = ed25519.PublicKey(x)
	case "RSA":
		if !slices.Contains([]string{"RS256", "RS384", "RS512", "PS256", "PS384", "PS512"}, k.Alg) {
			return nil, fmt.Errorf("RSA key with algorithm %q", k.Alg)
		}
		n, err1 := b64(k.N)
		e, err2 := b64(k.E)
		if err1 != nil || err2 != nil || len(e) > 4 {
			return nil, errors.New("RSA key parameters")
		}
		v.key = &rsa.PublicKey{N: new(big.Int).SetBytes(n), E: int(new(big.Int).SetBytes(e).Int64())}
	default:
		return nil, fmt.Errorf("key type %q", k.Kty)
	}
	return v, nil
}

// stringOrList is a claim that is a string or a list of them.
type stringOrList []string

func (l *stringOrList) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err == nil {
		*l = []string{s}
		return nil
	}
	var list []string
	if err := json.Unmarshal(b, &list); err != nil {
		return errors.New("want a string or a list of strings")
	}
	*l = list
	return nil
}

// claims are moq-relay's token claims.
type claims struct {
	Root string       `json:"root"`
	Put  stringOrList `json:"put"`
	Get  stringOrList `json:"get"`
	jwt.RegisteredClaims
}

// errUnauthorized refusals carry moq-lite's Unauthorized code.
func unauthorized(format string, args ...any) error {
	return &broadcast.Error{Code: broadcast.CodeUnauthorized, Reason: fmt.Sprintf(format, args...)}
}

// perms is what one session may do: absolute path prefixes.
type perms struct {
	put, get []string
	exp      time.Time // zero: no expiry
	all      bool      // a trusted peer: everything
}

func (p perms) may(list []string, path string) bool {
	return p.all || slices.ContainsFunc(list, func(pre string) bool { return broadcast.HasPrefix(path, pre) })
}

func (p perms) expired(now time.Time) bool { return !p.exp.IsZero() && !now.Before(p.exp) }

// verify checks a token for a connection at path (cleaned) and returns what
// it allows.
func (v *verifier) verify(token, path string) (perms, error) {
	var c claims
	_, err := jwt.ParseWithClaims(token, &c, func(t *jwt.Token) (any, error) { return v.key, nil },
		jwt.WithValidMethods([]string{v.alg}), jwt.WithExpirationRequired())
	if err != nil {
		return perms{}, unauthorized("token refused: %v", err)
	}
	root := broadcast.CleanPath(c.Root)
	// The session's path and the token's root must lie on one branch: the
	// session sees names relative to its path, the grants are relative to
	// the root.
	if !broadcast.HasPrefix(path, root) && !broadcast.HasPrefix(root, path) {
		return perms{}, unauthorized("token for %q used at %q", root, path)
	}
	p := perms{exp: c.ExpiresAt.Time}
	for _, s := range c.Put {
		p.put = append(p.put, broadcast.JoinPath(root, s))
	}
	for _, s := range c.Get {
		p.get = append(p.get, broadcast.JoinPath(root, s))
	}
	if len(p.put) == 0 && len(p.get) == 0 {
		return perms{}, unauthorized("token grants nothing")
	}
	return p, nil
}
