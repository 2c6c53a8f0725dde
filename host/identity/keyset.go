package identity

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"sync"
	"time"

	jose "github.com/go-jose/go-jose/v4"
)

// keySet fetches and caches an issuer's JWKS. It implements go-oidc's
// KeySet so that go-oidc checks the claims while we keep control of what a
// failed fetch means: go-oidc's RemoteKeySet folds "could not fetch" and
// "bad signature" into one error, and the two deserve different answers.
type keySet struct {
	url    string
	client *http.Client
	algs   []jose.SignatureAlgorithm

	mu        sync.Mutex
	keys      map[string]jose.JSONWebKey // by kid
	fetched   time.Time                  // last successful fetch
	failed    time.Time                  // last failed fetch
	lastError error
}

// An unknown kid triggers a refetch at most this often, so a stream of
// forged kids cannot turn the gateway into a load generator for the IdP.
const refetchInterval = 5 * time.Second

// After a failed fetch, wait this long before the next attempt.
const retryInterval = time.Second

// maxJWKSBytes bounds what we read from an issuer.
const maxJWKSBytes = 1 << 20

func (ks *keySet) VerifySignature(ctx context.Context, raw string) ([]byte, error) {
	jws, err := jose.ParseSigned(raw, ks.algs)
	if err != nil {
		return nil, invalid(parseReason(err))
	}
	if len(jws.Signatures) != 1 {
		return nil, invalid("token must carry exactly one signature")
	}
	hdr := jws.Signatures[0].Header
	key, err := ks.key(ctx, hdr.KeyID)
	if err != nil {
		return nil, err
	}
	payload, err := jws.Verify(key)
	if err != nil {
		return nil, invalid("signature does not verify")
	}
	return payload, nil
}

func parseReason(err error) string {
	// go-jose names the unexpected algorithm; that is useful and not secret.
	return fmt.Sprintf("malformed or unaccepted token: %v", err)
}

// key returns the public key for kid, fetching the JWKS when it is unknown.
func (ks *keySet) key(ctx context.Context, kid string) (jose.JSONWebKey, error) {
	ks.mu.Lock()
	defer ks.mu.Unlock()
	if k, ok := ks.lookup(kid); ok {
		return k, nil
	}
	now := time.Now()
	switch {
	case ks.keys != nil && now.Sub(ks.fetched) < refetchInterval:
		return jose.JSONWebKey{}, invalid("unknown signing key")
	case ks.keys == nil && now.Sub(ks.failed) < retryInterval && ks.lastError != nil:
		return jose.JSONWebKey{}, fmt.Errorf("%w: %v", ErrUnavailable, ks.lastError)
	}
	keys, err := ks.fetch(ctx)
	if err != nil {
		ks.failed, ks.lastError = now, err
		return jose.JSONWebKey{}, fmt.Errorf("%w: %v", ErrUnavailable, err)
	}
	ks.keys, ks.fetched, ks.lastError = keys, now, nil
	if k, ok := ks.lookup(kid); ok {
		return k, nil
	}
	return jose.JSONWebKey{}, invalid("unknown signing key")
}

// lookup finds kid; a token without kid is accepted only when the set has
// exactly one key, as most libraries do.
func (ks *keySet) lookup(kid string) (jose.JSONWebKey, bool) {
	if kid == "" && len(ks.keys) == 1 {
		for _, k := range ks.keys {
			return k, true
		}
	}
	k, ok := ks.keys[kid]
	return k, ok
}

func (ks *keySet) fetch(ctx context.Context) (map[string]jose.JSONWebKey, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, ks.url, nil)
	if err != nil {
		return nil, err
	}
	resp, err := ks.client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("fetch jwks: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("fetch jwks: %s", resp.Status)
	}
	var set jose.JSONWebKeySet
	if err := json.NewDecoder(io.LimitReader(resp.Body, maxJWKSBytes)).Decode(&set); err != nil {
		return nil, fmt.Errorf("decode jwks: %w", err)
	}
	keys := make(map[string]jose.JSONWebKey, len(set.Keys))
	for _, k := range set.Keys {
		if k.IsPublic() && (k.Use == "" || k.Use == "sig") {
			keys[k.KeyID] = k
		}
	}
	if len(keys) == 0 {
		return nil, fmt.Errorf("jwks at %s has no public signing keys", ks.url)
	}
	return keys, nil
}
