package identity

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/tollgate-dev/tollgate/host/config"
)

// DevIssuer is a small OIDC provider for `gateway serve --dev` and tests:
// a discovery document and a JWKS on loopback, and an ES256 key kept on
// disk so that tokens minted before a restart still verify after it. The
// gateway verifies its tokens through the same code path as a real IdP's.
type DevIssuer struct {
	URL      string // http://host:port, the "iss" of every token
	Audience string
	MaxTTL   time.Duration

	key *ecdsa.PrivateKey
	kid string
	srv *http.Server
}

// DevKeyPath is where the issuer's key lives under the data directory.
func DevKeyPath(dataDir string) string { return filepath.Join(dataDir, "dev", "issuer-key.pem") }

// NewDevIssuer loads (or creates) the key under dataDir. It does not listen;
// call Start for that. Minting needs no listener.
func NewDevIssuer(cfg *config.Dev, dataDir string) (*DevIssuer, error) {
	key, err := loadOrCreateKey(DevKeyPath(dataDir))
	if err != nil {
		return nil, fmt.Errorf("dev issuer: %w", err)
	}
	der, err := x509.MarshalPKIXPublicKey(&key.PublicKey)
	if err != nil {
		return nil, fmt.Errorf("dev issuer: %w", err)
	}
	sum := sha256.Sum256(der)
	return &DevIssuer{
		URL:      "http://" + cfg.IssuerListen,
		Audience: cfg.Audience,
		MaxTTL:   cfg.MaxTTL.Duration,
		key:      key,
		kid:      base64.RawURLEncoding.EncodeToString(sum[:12]),
	}, nil
}

// KeyID is the kid of the issuer's signing key.
func (d *DevIssuer) KeyID() string { return d.kid }

// IssuerConfig is how the gateway trusts this issuer.
func (d *DevIssuer) IssuerConfig() config.Issuer {
	return config.Issuer{
		Name:        "dev",
		URL:         d.URL,
		Audience:    []string{d.Audience},
		Algorithms:  []string{"ES256"},
		ClockSkew:   config.Duration{Duration: 30 * time.Second},
		GroupsClaim: "groups",
		EmailClaim:  "email",
		KeepClaims:  []string{"*"},
	}
}

// Handler serves discovery and the JWKS.
func (d *DevIssuer) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /.well-known/openid-configuration", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, map[string]any{
			"issuer":                                d.URL,
			"jwks_uri":                              d.URL + "/jwks",
			"id_token_signing_alg_values_supported": []string{"ES256"},
			"response_types_supported":              []string{"id_token"},
			"subject_types_supported":               []string{"public"},
		})
	})
	mux.HandleFunc("GET /jwks", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{
			Key: &d.key.PublicKey, KeyID: d.kid, Algorithm: "ES256", Use: "sig",
		}}})
	})
	return mux
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(v)
}

// Start listens on the address in the issuer's URL.
func (d *DevIssuer) Start() error {
	ln, err := net.Listen("tcp", d.URL[len("http://"):])
	if err != nil {
		return fmt.Errorf("dev issuer: %w", err)
	}
	d.srv = &http.Server{Handler: d.Handler(), ReadHeaderTimeout: 5 * time.Second}
	go d.srv.Serve(ln)
	return nil
}

// Shutdown stops the listener started by Start.
func (d *DevIssuer) Shutdown(ctx context.Context) error {
	if d.srv == nil {
		return nil
	}
	return d.srv.Shutdown(ctx)
}

// MintOptions describe a token.
type MintOptions struct {
	Subject  string
	Groups   []string
	Claims   map[string]any // extra claims, e.g. repository, run_id
	TTL      time.Duration
	Audience string // default: the issuer's audience
	Now      time.Time
}

// Mint signs a token. It refuses a TTL beyond the configured maximum.
func (d *DevIssuer) Mint(o MintOptions) (string, error) {
	if o.Subject == "" {
		return "", errors.New("dev issuer: subject is required")
	}
	if o.TTL <= 0 {
		o.TTL = 10 * time.Minute
	}
	if d.MaxTTL > 0 && o.TTL > d.MaxTTL {
		return "", fmt.Errorf("dev issuer: ttl %s exceeds max_ttl %s", o.TTL, d.MaxTTL)
	}
	if o.Audience == "" {
		o.Audience = d.Audience
	}
	if o.Now.IsZero() {
		o.Now = time.Now()
	}
	claims := map[string]any{}
	for k, v := range o.Claims {
		claims[k] = v
	}
	if len(o.Groups) > 0 {
		claims["groups"] = o.Groups
	}
	jti := make([]byte, 12)
	_, _ = rand.Read(jti)
	claims["iss"] = d.URL
	claims["sub"] = o.Subject
	claims["aud"] = o.Audience
	claims["iat"] = o.Now.Unix()
	claims["nbf"] = o.Now.Unix()
	claims["exp"] = o.Now.Add(o.TTL).Unix()
	claims["jti"] = base64.RawURLEncoding.EncodeToString(jti)
	return Sign(d.key, d.kid, claims)
}

// Sign makes an ES256 JWT with the given key and claims.
func Sign(key *ecdsa.PrivateKey, kid string, claims map[string]any) (string, error) {
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: key},
		(&jose.SignerOptions{}).WithType("JWT").WithHeader("kid", kid))
	if err != nil {
		return "", fmt.Errorf("sign: %w", err)
	}
	payload, err := json.Marshal(claims)
	if err != nil {
		return "", fmt.Errorf("sign: %w", err)
	}
	jws, err := signer.Sign(payload)
	if err != nil {
		return "", fmt.Errorf("sign: %w", err)
	}
	return jws.CompactSerialize()
}

func loadOrCreateKey(path string) (*ecdsa.PrivateKey, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return createKey(path)
	}
	if err != nil {
		return nil, err
	}
	blk, _ := pem.Decode(b)
	if blk == nil {
		return nil, fmt.Errorf("%s: no PEM block", path)
	}
	k, err := x509.ParsePKCS8PrivateKey(blk.Bytes)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	ec, ok := k.(*ecdsa.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("%s: not an ECDSA key", path)
	}
	return ec, nil
}

func createKey(path string) (*ecdsa.PrivateKey, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, err
	}
	// Write aside, then link into place: when `gateway token` and `gateway
	// serve` race to create the key, one wins, and the other never reads a
	// half-written file; it reads the winner's key.
	tmp, err := os.CreateTemp(filepath.Dir(path), ".issuer-key-*")
	if err != nil {
		return nil, err
	}
	defer os.Remove(tmp.Name())
	if err := pem.Encode(tmp, &pem.Block{Type: "PRIVATE KEY", Bytes: der}); err != nil {
		tmp.Close()
		return nil, err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return nil, err
	}
	if err := tmp.Close(); err != nil {
		return nil, err
	}
	if err := os.Link(tmp.Name(), path); errors.Is(err, os.ErrExist) {
		return loadOrCreateKey(path)
	} else if err != nil {
		return nil, err
	}
	return key, nil
}
