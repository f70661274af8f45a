package main

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/moqp2p/moqp2p/broadcast"
)

func enc(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

// hmacKey returns a secret and its JWK as moq-token writes it (base64url of
// the JSON; older keys leave kty out).
func hmacKey(t *testing.T) ([]byte, string) {
	secret := make([]byte, 32)
	_, _ = rand.Read(secret)
	j, _ := json.Marshal(map[string]any{"alg": "HS256", "key_ops": []string{"sign", "verify"}, "k": enc(secret)})
	return secret, enc(j)
}

// hmacKeyFile writes a new HMAC key's JWK (hmacKey) to root.jwk in dir, for
// a relay's --auth-key, and returns the secret and the file's path.
func hmacKeyFile(t *testing.T, dir string) ([]byte, string) {
	t.Helper()
	secret, jwk := hmacKey(t)
	file := filepath.Join(dir, "root.jwk")
	if err := os.WriteFile(file, []byte(jwk), 0o600); err != nil {
		t.Fatal(err)
	}
	return secret, file
}

func sign(t *testing.T, method jwt.SigningMethod, key any, c map[string]any) string {
	t.Helper()
	tok, err := jwt.NewWithClaims(method, jwt.MapClaims(c)).SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func future() int64 { return time.Now().Add(time.Hour).Unix() }

func TestRelayTokens(t *testing.T) {
	secret, jwk := hmacKey(t)
	v, err := parseKey(jwk)
	if err != nil {
		t.Fatal(err)
	}
	other := make([]byte, 32)
	_, _ = rand.Read(other)
	unauth := &broadcast.Error{Code: broadcast.CodeUnauthorized}
	for _, tc := range []struct {
		name string
		tok  string
		path string
		ok   bool
		put  string // a path put must allow
		get  string // and get
	}{
		{"valid", sign(t, jwt.SigningMethodHS256, secret, map[string]any{"root": "room", "put": "alice", "get": []string{""}, "exp": future()}), "room", true, "room/alice/cam", "room/bob"},
		{"path below root", sign(t, jwt.SigningMethodHS256, secret, map[string]any{"root": "room", "get": "", "exp": future()}), "room/x", true, "", "room/x/y"},
		{"expired", sign(t, jwt.SigningMethodHS256, secret, map[string]any{"root": "room", "get": "", "exp": time.Now().Add(-time.Minute).Unix()}), "room", false, "", ""},
		{"no expiry", sign(t, jwt.SigningMethodHS256, secret, map[string]any{"root": "room", "get": ""}), "room", false, "", ""},
		{"wrong scope", sign(t, jwt.SigningMethodHS256, secret, map[string]any{"root": "other", "get": "", "exp": future()}), "room", false, "", ""},
		{"forged", sign(t, jwt.SigningMethodHS256, other, map[string]any{"root": "room", "get": "", "exp": future()}), "room", false, "", ""},
		{"other algorithm", sign(t, jwt.SigningMethodHS512, secret, map[string]any{"root": "room", "get": "", "exp": future()}), "room", false, "", ""},
		{"none", func() string {
			s, _ := jwt.NewWithClaims(jwt.SigningMethodNone, jwt.MapClaims{"root": "room", "get": "", "exp": future()}).SignedString(jwt.UnsafeAllowNoneSignatureType)
			return s
		}(), "room", false, "", ""},
		{"grants nothing", sign(t, jwt.SigningMethodHS256, secret, map[string]any{"root": "room", "exp": future()}), "room", false, "", ""},
		{"garbage", "not.a.token", "room", false, "", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, err := v.verify(tc.tok, tc.path)
			if !tc.ok {
				if !errors.Is(err, unauth) {
					t.Fatalf("accepted (%v), want Unauthorized", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if tc.put != "" && !p.may(p.put, tc.put) {
				t.Errorf("may not publish %s: %+v", tc.put, p)
			}
			if tc.get != "" && !p.may(p.get, tc.get) {
				t.Errorf("may not subscribe to %s: %+v", tc.get, p)
			}
			if p.may(p.put, "elsewhere/x") || p.may(p.get, "elsewhere/x") {
				t.Errorf("allowed outside its root: %+v", p)
			}
		})
	}
}

// Public-key tokens, with keys as JSON JWKs.
func TestRelayTokensPublicKey(t *testing.T) {
	ec, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	point, _ := ec.PublicKey.Bytes() // 0x04 || X || Y
	ecJWK, _ := json.Marshal(map[string]any{"alg": "ES256", "kty": "EC", "crv": "P-256", "x": enc(point[1:33]), "y": enc(point[33:])})
	edPub, edPriv, _ := ed25519.GenerateKey(rand.Reader)
	edJWK, _ := json.Marshal(map[string]any{"alg": "EdDSA", "kty": "OKP", "crv": "Ed25519", "x": enc(edPub)})
	claims := map[string]any{"root": "", "get": "live", "exp": future()}
	for _, tc := range []struct {
		name   string
		jwk    []byte
		method jwt.SigningMethod
		key    any
	}{
		{"ES256", ecJWK, jwt.SigningMethodES256, ec},
		{"EdDSA", edJWK, jwt.SigningMethodEdDSA, edPriv},
	} {
		t.Run(tc.name, func(t *testing.T) {
			v, err := parseKey(string(tc.jwk))
			if err != nil {
				t.Fatal(err)
			}
			p, err := v.verify(sign(t, tc.method, tc.key, claims), "live")
			if err != nil || !p.may(p.get, "live/a") || p.may(p.put, "live/a") {
				t.Fatalf("%+v, %v", p, err)
			}
			// A token signed with the HMAC secret made of the public key
			// (the classic algorithm confusion) is refused.
			forged := sign(t, jwt.SigningMethodHS256, tc.jwk, claims)
			if _, err := v.verify(forged, "live"); err == nil {
				t.Fatal("HS256 token accepted by a public key")
			}
		})
	}
}
