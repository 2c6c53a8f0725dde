// Package identity verifies the OIDC tokens agents present and turns them
// into a Principal; it also runs the development issuer.
package identity

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	jose "github.com/go-jose/go-jose/v4"

	"github.com/tollgate-dev/tollgate/host/config"
	"github.com/tollgate-dev/tollgate/host/event"
)

// MaxTokenBytes bounds a token before any parsing.
const MaxTokenBytes = 16 << 10

// Verifier checks tokens against the configured issuers. It is safe for
// concurrent use.
type Verifier struct {
	byURL map[string]*issuer
	cache *tokenCache
	now   func() time.Time
}

type issuer struct {
	cfg    config.Issuer
	client *http.Client

	mu       sync.Mutex
	verifier *oidc.IDTokenVerifier // nil until discovery succeeds
	failed   time.Time
}

// Options tunes a Verifier; the zero value is fine.
type Options struct {
	HTTPClient *http.Client     // for discovery and JWKS; default: 10 s timeout
	Now        func() time.Time // for tests
}

// NewVerifier trusts the given issuers. Discovery and key fetches happen on
// first use, so a gateway starts even while an IdP is down, and fails
// closed until it is back.
func NewVerifier(issuers []config.Issuer, cacheSize int, opts Options) *Verifier {
	if opts.HTTPClient == nil {
		opts.HTTPClient = &http.Client{Timeout: 10 * time.Second}
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	v := &Verifier{byURL: map[string]*issuer{}, cache: newTokenCache(cacheSize), now: opts.Now}
	for _, cfg := range issuers {
		v.byURL[strings.TrimSuffix(cfg.URL, "/")] = &issuer{cfg: cfg, client: opts.HTTPClient}
	}
	return v
}

// Verify checks raw and returns who it names. Errors are *TokenError (the
// token is refused; its Reason is safe to show) or wrap ErrUnavailable.
func (v *Verifier) Verify(ctx context.Context, raw string) (*event.Principal, error) {
	if raw == "" {
		return nil, invalid("no token")
	}
	if len(raw) > MaxTokenBytes {
		return nil, invalid("token too large")
	}
	now := v.now()
	key := sha256.Sum256([]byte(raw))
	if p, ok := v.cache.get(key, now); ok {
		return p, nil
	}
	iss, err := unverifiedIssuer(raw)
	if err != nil {
		return nil, err
	}
	is, ok := v.byURL[strings.TrimSuffix(iss, "/")]
	if !ok {
		return nil, invalid("issuer is not trusted")
	}
	ov, err := is.get(ctx)
	if err != nil {
		return nil, err
	}
	tok, err := ov.Verify(ctx, raw)
	if err != nil {
		var te *TokenError
		if errors.As(err, &te) || errors.Is(err, ErrUnavailable) {
			return nil, err
		}
		return nil, invalid(strings.TrimPrefix(err.Error(), "oidc: "))
	}
	var claims map[string]any
	if err := tok.Claims(&claims); err != nil {
		return nil, invalid("claims are not a JSON object")
	}
	exp, err := checkTimes(claims, now, is.cfg.ClockSkew.Duration)
	if err != nil {
		return nil, err
	}
	if !audienceAccepted(tok.Audience, is.cfg.Audience) {
		return nil, invalid("audience not accepted by this gateway")
	}
	p := principal(is.cfg, claims)
	v.cache.put(key, p, exp.Add(is.cfg.ClockSkew.Duration))
	return p, nil
}

// unverifiedIssuer reads iss from the payload to choose the issuer whose
// keys will then verify the whole token. Nothing else is trusted from it.
func unverifiedIssuer(raw string) (string, error) {
	parts := strings.Split(raw, ".")
	if len(parts) != 3 {
		return "", invalid("not a signed JWT")
	}
	payload, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return "", invalid("payload is not base64url")
	}
	var c struct {
		Issuer string `json:"iss"`
	}
	if err := json.Unmarshal(payload, &c); err != nil {
		return "", invalid("payload is not a JSON object")
	}
	if c.Issuer == "" {
		return "", invalid("token has no issuer")
	}
	return c.Issuer, nil
}

// get discovers the issuer once; a failure is retried after a second.
func (is *issuer) get(ctx context.Context) (*oidc.IDTokenVerifier, error) {
	is.mu.Lock()
	defer is.mu.Unlock()
	if is.verifier != nil {
		return is.verifier, nil
	}
	if time.Since(is.failed) < retryInterval {
		return nil, fmt.Errorf("%w: discovery for %s failed moments ago", ErrUnavailable, is.cfg.Name)
	}
	jwksURL := is.cfg.JWKSURL
	if jwksURL == "" {
		dctx, cancel := context.WithTimeout(oidc.ClientContext(ctx, is.client), 10*time.Second)
		defer cancel()
		prov, err := oidc.NewProvider(dctx, is.cfg.URL)
		if err != nil {
			is.failed = time.Now()
			return nil, fmt.Errorf("%w: discovery for %s: %v", ErrUnavailable, is.cfg.Name, err)
		}
		var doc struct {
			JWKS string `json:"jwks_uri"`
		}
		if err := prov.Claims(&doc); err != nil || doc.JWKS == "" {
			is.failed = time.Now()
			return nil, fmt.Errorf("%w: discovery for %s has no jwks_uri", ErrUnavailable, is.cfg.Name)
		}
		jwksURL = doc.JWKS
	}
	algs := make([]jose.SignatureAlgorithm, len(is.cfg.Algorithms))
	for i, a := range is.cfg.Algorithms {
		algs[i] = jose.SignatureAlgorithm(a)
	}
	ks := &keySet{url: jwksURL, client: is.client, algs: algs}
	is.verifier = oidc.NewVerifier(is.cfg.URL, ks, &oidc.Config{
		SupportedSigningAlgs: is.cfg.Algorithms,
		// Audience lists and clock skew are ours to check; go-oidc takes
		// one client ID and a fixed leeway.
		SkipClientIDCheck: true,
		SkipExpiryCheck:   true,
	})
	return is.verifier, nil
}

// checkTimes enforces exp (required), nbf and iat with the issuer's skew.
func checkTimes(claims map[string]any, now time.Time, skew time.Duration) (time.Time, error) {
	exp, ok := numericDate(claims["exp"])
	if !ok {
		return time.Time{}, invalid("token has no expiry")
	}
	if now.After(exp.Add(skew)) {
		return time.Time{}, invalid("token expired")
	}
	if nbf, ok := numericDate(claims["nbf"]); ok && now.Add(skew).Before(nbf) {
		return time.Time{}, invalid("token not valid yet")
	}
	if iat, ok := numericDate(claims["iat"]); ok && now.Add(skew).Before(iat) {
		return time.Time{}, invalid("token issued in the future")
	}
	return exp, nil
}

func numericDate(v any) (time.Time, bool) {
	f, ok := v.(float64)
	if !ok {
		return time.Time{}, false
	}
	return time.Unix(int64(f), 0), true
}

func audienceAccepted(got, accepted []string) bool {
	for _, a := range got {
		for _, b := range accepted {
			if a == b {
				return true
			}
		}
	}
	return false
}

// principal maps verified claims to a Principal.
func principal(cfg config.Issuer, claims map[string]any) *event.Principal {
	p := &event.Principal{Issuer: cfg.Name, Claims: make(map[string]string, len(claims)), Kept: map[string]string{}}
	for k, v := range claims {
		if s, ok := scalar(v); ok {
			p.Claims[k] = s
		}
	}
	p.Subject = p.Claims["sub"]
	p.Email = p.Claims[cfg.EmailClaim]
	switch g := claims[cfg.GroupsClaim].(type) {
	case string:
		p.Groups = []string{g}
	case []any:
		for _, e := range g {
			if s, ok := e.(string); ok {
				p.Groups = append(p.Groups, s)
			}
		}
	}
	for _, k := range cfg.KeepClaims {
		if k == "*" {
			for ck, cv := range p.Claims {
				if !registeredClaims[ck] {
					p.Kept[ck] = cv
				}
			}
			continue
		}
		if v, ok := p.Claims[k]; ok {
			p.Kept[k] = v
		}
	}
	return p
}

// registeredClaims are the JWT's own bookkeeping; "keep everything" means
// everything that describes the caller, not these.
var registeredClaims = map[string]bool{
	"iss": true, "aud": true, "exp": true, "nbf": true, "iat": true, "jti": true, "sub": true,
}

func scalar(v any) (string, bool) {
	switch v := v.(type) {
	case string:
		return v, true
	case float64:
		return strconv.FormatFloat(v, 'f', -1, 64), true
	case bool:
		return strconv.FormatBool(v), true
	}
	return "", false
}
