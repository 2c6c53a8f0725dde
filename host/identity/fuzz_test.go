package identity_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"strings"
	"testing"

	"github.com/tollgate-dev/tollgate/host/identity"
)

// FuzzVerify feeds arbitrary tokens to a verifier that trusts a live dev
// issuer. Nothing may panic, every refusal must be a TokenError (or the
// issuer being unavailable), and only the token the issuer minted verifies.
func FuzzVerify(f *testing.F) {
	iss := devIssuer(f)
	v := verifierFor(iss)
	good, err := iss.Mint(identity.MintOptions{Subject: "agent"})
	if err != nil {
		f.Fatal(err)
	}
	f.Add(good)
	f.Add(good[:len(good)-2])
	f.Add(rawJWT(map[string]any{"alg": "none"}, claimsFor(iss), nil))
	f.Add(rawJWT(map[string]any{"alg": "HS256", "kid": iss.KeyID()}, claimsFor(iss), []byte("k")))
	f.Add("e30.e30.e30")
	f.Add("..")
	f.Fuzz(func(t *testing.T, tok string) {
		p, err := v.Verify(context.Background(), tok)
		if err == nil {
			// base64url tolerates variations in unused trailing bits, so
			// compare what the token decodes to, not its text.
			if !sameJWT(tok, good) || p.Subject != "agent" {
				t.Fatalf("accepted a token the issuer never minted: %q", tok)
			}
			return
		}
		var te *identity.TokenError
		if !errors.As(err, &te) && !errors.Is(err, identity.ErrUnavailable) {
			t.Fatalf("unexpected error kind: %v", err)
		}
	})
}

func sameJWT(a, b string) bool {
	pa, pb := strings.Split(a, "."), strings.Split(b, ".")
	if len(pa) != 3 || len(pb) != 3 {
		return false
	}
	for i := range pa {
		da, err1 := base64.RawURLEncoding.DecodeString(pa[i])
		db, err2 := base64.RawURLEncoding.DecodeString(pb[i])
		if err1 != nil || err2 != nil || !bytes.Equal(da, db) {
			return false
		}
	}
	return true
}
