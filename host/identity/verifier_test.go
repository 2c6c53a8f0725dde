package identity_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"math/big"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/tollgate-dev/tollgate/host/config"
	"github.com/tollgate-dev/tollgate/host/identity"
)

// devIssuer starts a development issuer on a free loopback port.
func devIssuer(t testing.TB) *identity.DevIssuer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	iss := newIssuerAt(t, ln.Addr().String(), t.TempDir())
	srv := &http.Server{Handler: iss.Handler()}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return iss
}

func newIssuerAt(t testing.TB, addr, dataDir string) *identity.DevIssuer {
	t.Helper()
	iss, err := identity.NewDevIssuer(&config.Dev{IssuerListen: addr, Audience: "tollgate",
		MaxTTL: config.Duration{Duration: time.Hour}}, dataDir)
	if err != nil {
		t.Fatal(err)
	}
	return iss
}

func verifierFor(iss *identity.DevIssuer) *identity.Verifier {
	cfg := iss.IssuerConfig()
	cfg.KeepClaims = []string{"repository", "run_id"}
	return identity.NewVerifier([]config.Issuer{cfg}, 100, identity.Options{})
}

func mint(t *testing.T, iss *identity.DevIssuer, o identity.MintOptions) string {
	t.Helper()
	if o.Subject == "" {
		o.Subject = "repo:acme/app:ref:refs/heads/main"
	}
	tok, err := iss.Mint(o)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func TestVerifyMapsClaims(t *testing.T) {
	iss := devIssuer(t)
	v := verifierFor(iss)
	tok := mint(t, iss, identity.MintOptions{Groups: []string{"ci", "deployers"},
		Claims: map[string]any{"repository": "acme/app", "run_id": "4242", "email": "bot@acme.test", "secret_note": "x"}})
	p, err := v.Verify(context.Background(), tok)
	if err != nil {
		t.Fatalf("Verify: %v", err)
	}
	if p.Issuer != "dev" || p.Subject != "repo:acme/app:ref:refs/heads/main" || p.Email != "bot@acme.test" {
		t.Errorf("principal = %+v", p)
	}
	if !p.InGroup("deployers") || p.InGroup("admins") {
		t.Errorf("groups = %v", p.Groups)
	}
	if len(p.Kept) != 2 || p.Kept["repository"] != "acme/app" || p.Kept["run_id"] != "4242" {
		t.Errorf("kept claims = %v, want only repository and run_id", p.Kept)
	}
	if p.Claims["secret_note"] != "x" {
		t.Errorf("all claims must stay available to access rules: %v", p.Claims)
	}
	// A second verification is served from the cache and names the same principal.
	p2, err := v.Verify(context.Background(), tok)
	if err != nil || p2.Subject != p.Subject {
		t.Fatalf("cached Verify = %v, %v", p2, err)
	}
}

// rejection asserts err is a *TokenError whose reason contains want.
func rejection(t *testing.T, err error, want string) {
	t.Helper()
	var te *identity.TokenError
	if !errors.As(err, &te) {
		t.Fatalf("err = %v, want a TokenError containing %q", err, want)
	}
	if !strings.Contains(te.Reason, want) {
		t.Fatalf("reason = %q, want it to contain %q", te.Reason, want)
	}
}

func TestVerifyRejects(t *testing.T) {
	iss := devIssuer(t)
	v := verifierFor(iss)
	ctx := context.Background()

	t.Run("wrong issuer", func(t *testing.T) {
		other := devIssuer(t)
		_, err := v.Verify(ctx, mint(t, other, identity.MintOptions{}))
		rejection(t, err, "issuer is not trusted")
	})
	t.Run("wrong audience", func(t *testing.T) {
		_, err := v.Verify(ctx, mint(t, iss, identity.MintOptions{Audience: "another-service"}))
		rejection(t, err, "audience")
	})
	t.Run("expired", func(t *testing.T) {
		tok := mint(t, iss, identity.MintOptions{TTL: time.Minute, Now: time.Now().Add(-10 * time.Minute)})
		_, err := v.Verify(ctx, tok)
		rejection(t, err, "expired")
	})
	t.Run("expired within clock skew is accepted", func(t *testing.T) {
		tok := mint(t, iss, identity.MintOptions{TTL: time.Minute, Now: time.Now().Add(-time.Minute - 10*time.Second)})
		if _, err := v.Verify(ctx, tok); err != nil {
			t.Fatalf("a token 10s past expiry with 30s skew: %v", err)
		}
	})
	t.Run("not yet valid", func(t *testing.T) {
		tok := mint(t, iss, identity.MintOptions{Now: time.Now().Add(5 * time.Minute)})
		_, err := v.Verify(ctx, tok)
		rejection(t, err, "not valid yet")
	})
	t.Run("alg none", func(t *testing.T) {
		tok := rawJWT(map[string]any{"alg": "none", "typ": "JWT"}, claimsFor(iss), nil)
		_, err := v.Verify(ctx, tok)
		rejection(t, err, "none")
	})
	t.Run("HS256 signed with the public key", func(t *testing.T) {
		// The confusion attack: the attacker signs with HMAC, using the
		// issuer's public key (which anyone can fetch) as the secret.
		pub := fetchJWKS(t, iss)
		tok := rawJWT(map[string]any{"alg": "HS256", "typ": "JWT", "kid": iss.KeyID()}, claimsFor(iss), pub)
		_, err := v.Verify(ctx, tok)
		rejection(t, err, "HS256")
	})
	t.Run("unknown kid", func(t *testing.T) {
		forger := newIssuerAt(t, strings.TrimPrefix(iss.URL, "http://"), t.TempDir())
		_, err := v.Verify(ctx, mint(t, forger, identity.MintOptions{}))
		rejection(t, err, "unknown signing key")
	})
	t.Run("known kid, other key", func(t *testing.T) {
		key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		tok, err := identity.Sign(key, iss.KeyID(), claimsFor(iss))
		if err != nil {
			t.Fatal(err)
		}
		_, err = v.Verify(ctx, tok)
		rejection(t, err, "signature does not verify")
	})
	t.Run("no expiry", func(t *testing.T) {
		c := claimsFor(iss)
		delete(c, "exp")
		key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		tok, _ := identity.Sign(key, "x", c)
		_, err := v.Verify(ctx, tok)
		var te *identity.TokenError
		if !errors.As(err, &te) {
			t.Fatalf("err = %v", err)
		}
	})
	for name, tok := range map[string]string{
		"empty":        "",
		"garbage":      "not-a-jwt",
		"two parts":    "a.b",
		"bad base64":   "a.!!!.c",
		"not json":     "a." + base64.RawURLEncoding.EncodeToString([]byte("[1,2]")) + ".c",
		"no issuer":    "a." + base64.RawURLEncoding.EncodeToString([]byte(`{"sub":"x"}`)) + ".c",
		"huge":         strings.Repeat("a", identity.MaxTokenBytes+1),
		"tampered sig": mint(t, iss, identity.MintOptions{}) + "AA",
	} {
		t.Run(name, func(t *testing.T) {
			_, err := v.Verify(ctx, tok)
			var te *identity.TokenError
			if !errors.As(err, &te) {
				t.Fatalf("err = %v, want a TokenError", err)
			}
		})
	}
}

func TestVerifyCachedTokenStillExpires(t *testing.T) {
	iss := devIssuer(t)
	now := time.Now()
	clock := func() time.Time { return now }
	cfg := iss.IssuerConfig()
	v := identity.NewVerifier([]config.Issuer{cfg}, 100, identity.Options{Now: clock})
	tok := mint(t, iss, identity.MintOptions{TTL: time.Minute})
	if _, err := v.Verify(context.Background(), tok); err != nil {
		t.Fatal(err)
	}
	now = now.Add(2 * time.Minute) // past expiry plus the 30s skew
	_, err := v.Verify(context.Background(), tok)
	rejection(t, err, "expired")
}

func TestVerifyFailsClosedWhileJWKSIsDown(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // nothing listens: discovery and JWKS cannot be fetched
	iss := newIssuerAt(t, addr, t.TempDir())
	v := verifierFor(iss)
	tok := mint(t, iss, identity.MintOptions{})

	_, err = v.Verify(context.Background(), tok)
	if !errors.Is(err, identity.ErrUnavailable) {
		t.Fatalf("err = %v, want ErrUnavailable", err)
	}

	// The issuer comes back; a later attempt (after the retry interval) works.
	ln, err = net.Listen("tcp", addr)
	if err != nil {
		t.Fatalf("re-listen on %s: %v", addr, err)
	}
	srv := &http.Server{Handler: iss.Handler()}
	go srv.Serve(ln)
	defer srv.Close()
	deadline := time.Now().Add(10 * time.Second)
	for {
		_, err = v.Verify(context.Background(), tok)
		if err == nil {
			return
		}
		if !errors.Is(err, identity.ErrUnavailable) || time.Now().After(deadline) {
			t.Fatalf("after the issuer came back: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func TestDevKeySurvivesRestart(t *testing.T) {
	dir := t.TempDir()
	a := newIssuerAt(t, "127.0.0.1:1", dir)
	b := newIssuerAt(t, "127.0.0.1:1", dir)
	if a.KeyID() != b.KeyID() {
		t.Fatal("a second issuer on the same data dir must load the same key")
	}
	if _, err := a.Mint(identity.MintOptions{Subject: "x", TTL: 2 * time.Hour}); err == nil {
		t.Fatal("a ttl above max_ttl must be refused")
	}
}

func claimsFor(iss *identity.DevIssuer) map[string]any {
	now := time.Now()
	return map[string]any{"iss": iss.URL, "sub": "mallory", "aud": "tollgate",
		"iat": now.Unix(), "exp": now.Add(time.Hour).Unix()}
}

// rawJWT assembles a JWT by hand; with hmacKey it signs with HS256.
func rawJWT(header, claims map[string]any, hmacKey []byte) string {
	h, _ := json.Marshal(header)
	c, _ := json.Marshal(claims)
	signing := base64.RawURLEncoding.EncodeToString(h) + "." + base64.RawURLEncoding.EncodeToString(c)
	if hmacKey == nil {
		return signing + "."
	}
	m := hmac.New(sha256.New, hmacKey)
	m.Write([]byte(signing))
	return signing + "." + base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

// fetchJWKS returns the issuer's public key as PEM, as an attacker would
// get it.
func fetchJWKS(t *testing.T, iss *identity.DevIssuer) []byte {
	t.Helper()
	resp, err := http.Get(iss.URL + "/jwks")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var set struct {
		Keys []struct{ X, Y string } `json:"keys"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&set); err != nil || len(set.Keys) != 1 {
		t.Fatalf("jwks: %v", err)
	}
	x, _ := base64.RawURLEncoding.DecodeString(set.Keys[0].X)
	y, _ := base64.RawURLEncoding.DecodeString(set.Keys[0].Y)
	pub := &ecdsa.PublicKey{Curve: elliptic.P256()}
	pub.X, pub.Y = new(big.Int).SetBytes(x), new(big.Int).SetBytes(y)
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
}
