package ssh

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"sync/atomic"
	"time"

	xssh "golang.org/x/crypto/ssh"

	"github.com/tollgate-dev/tollgate/host/gate"
)

// Listener serves SSH for its targets. New prepares it without side
// effects; Start loads (or creates) the host key and listens; Shutdown
// stops it.
type Listener struct {
	name    string
	opts    ListenerOptions
	targets map[string]*target
	deps    gate.Deps
	log     *slog.Logger
	limit   *limiter

	signer  xssh.Signer
	ca      atomic.Pointer[xssh.Signer] // the user CA, once started (nil: certificates off)
	revoked *revocations                // nil without a revoked_serials file
	ln      net.Listener
	srv     gate.Server // the accept loop and the connections it serves
}

// New checks opts and targets and prepares a listener named name. Only
// the targets opts.Targets lists (all, when it is empty) are reachable.
func New(name string, opts ListenerOptions, targets map[string]TargetOptions, deps gate.Deps) (*Listener, error) {
	if opts.Listen == "" {
		return nil, fmt.Errorf("ssh: listener %s: listen is required", name)
	}
	if opts.HostKey == "" {
		return nil, fmt.Errorf("ssh: listener %s: host_key (a path) is required", name)
	}
	if opts.DefaultLogin != "" && !validLogin.MatchString(opts.DefaultLogin) {
		return nil, fmt.Errorf("ssh: listener %s: default_login %q is not a valid login", name, opts.DefaultLogin)
	}
	if deps.Auth == nil || deps.Recorder == nil {
		return nil, fmt.Errorf("ssh: listener %s: an authenticator and an audit recorder are required", name)
	}
	if opts.MaxAuthFailures <= 0 {
		opts.MaxAuthFailures = 10
	}
	if opts.AuthFailureWindow <= 0 {
		opts.AuthFailureWindow = time.Minute
	}
	if opts.MaxSessions <= 0 {
		opts.MaxSessions = 10
	}
	if opts.HandshakeTimeout <= 0 {
		opts.HandshakeTimeout = 30 * time.Second
	}
	if opts.MaxCertTTL <= 0 {
		opts.MaxCertTTL = time.Hour
	}
	l := &Listener{name: name, opts: opts, targets: map[string]*target{}, deps: deps,
		log:   deps.Logger().With("listener", name, "protocol", "ssh"),
		limit: newLimiter(opts.MaxAuthFailures, opts.AuthFailureWindow)}
	if opts.RevokedSerials != "" {
		l.revoked = &revocations{path: opts.RevokedSerials}
	}
	for tn, to := range targets {
		if len(opts.Targets) > 0 && !slices.Contains(opts.Targets, tn) {
			continue
		}
		t, err := newTarget(tn, to)
		if err != nil {
			return nil, fmt.Errorf("ssh: listener %s: %w", name, err)
		}
		l.targets[tn] = t
	}
	for _, tn := range opts.Targets {
		if l.targets[tn] == nil {
			return nil, fmt.Errorf("ssh: listener %s: target %s is not defined", name, tn)
		}
	}
	return l, nil
}

// Name is the listener's name.
func (l *Listener) Name() string { return l.name }

// HostKey is the gateway's public host key (after Start), for an
// agent's known_hosts.
func (l *Listener) HostKey() xssh.PublicKey { return l.signer.PublicKey() }

// Start loads or creates the host key, listens and serves.
func (l *Listener) Start() error {
	s, err := LoadOrCreateHostKey(l.opts.HostKey)
	if err != nil {
		return fmt.Errorf("ssh: listener %s: %w", l.name, err)
	}
	l.signer = s
	var ca xssh.Signer
	if l.opts.CAKey != "" {
		if ca, err = LoadOrCreateCAKey(l.opts.CAKey); err != nil {
			return fmt.Errorf("ssh: listener %s: %w", l.name, err)
		}
		if sameKey(ca.PublicKey(), s.PublicKey()) {
			return fmt.Errorf("ssh: listener %s: ca_key and host_key are the same key; the CA needs its own", l.name)
		}
	}
	ln, err := net.Listen("tcp", l.opts.Listen)
	if err != nil {
		return fmt.Errorf("ssh: listener %s: %w", l.name, err)
	}
	l.ln = ln
	if ca != nil {
		// Stored last: the API's handlers read the rest once they see it.
		l.ca.Store(&ca)
		l.log.Info("ssh user CA", "ca_key", l.opts.CAKey, "ca", xssh.FingerprintSHA256(ca.PublicKey()))
	}
	l.log.Info("listening", "addr", ln.Addr().String(), "host_key", xssh.FingerprintSHA256(s.PublicKey()))
	l.srv.Serve(ln, l.log, func(nc net.Conn) (func(), bool) { return func() { l.serveConn(nc) }, true })
	return nil
}

// Addr is the bound address.
func (l *Listener) Addr() net.Addr { return l.ln.Addr() }

// Shutdown stops accepting, waits for the connections to end until ctx
// ends, then closes those left (their sessions are closed and recorded).
func (l *Listener) Shutdown(ctx context.Context) error { return l.srv.Shutdown(ctx) }

// defaultLogin is the login used when the SSH user names only the target.
func (l *Listener) defaultLogin(target string) string {
	if t := l.targets[target]; t != nil && t.opts.Login != "" {
		return t.opts.Login
	}
	return l.opts.DefaultLogin
}
