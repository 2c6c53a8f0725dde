// Package postgres terminates the PostgreSQL wire protocol for Tollgate.
//
// An agent connects as to any PostgreSQL server, over TLS, with its OIDC
// token as the password. The gateway verifies the token, checks access to
// the target the startup database names (or the listener's target),
// connects to the real server with the credential it holds (pgconn:
// SCRAM-SHA-256 or md5, TLS verify-full), and from then on relays the
// protocol with pgproto3: every statement (a simple Query, or a Bind of
// the extended protocol with its parameters) is a pg.query event for the
// plugin chain before it reaches the database, result rows go to the
// chain as pg.rows batches when a plugin subscribed to them, and every
// statement is one audit row.
//
// The gateway's view of a session is the server's view. Whatever the
// gateway reasons about is committed when the server confirms it, in the
// order the server answers, pipelining included: a prepared statement's
// SQL on ParseComplete and its end on CloseComplete, never on the client's
// Parse or Close (statements.go); the session's encoding and
// standard_conforming_strings from the server's ParameterStatus, with
// statement text that depends on them judged only once the server has
// answered what came before it (settings.go); where a result column comes
// from, from the RowDescription's table OID and attribute number
// (catalog.go); a statement's outcome from its CommandComplete or
// ErrorResponse, waited for even when the client has left. Each of these
// has a test that attacks it (attack_test.go, sensitive_test.go,
// testdata/mask_corpus.txt).
//
// Typical use, as cmd/gateway wires it:
//
//	l, err := postgres.New(listenerCfg, targets, gate.Deps{...})
//	if err == nil { err = l.Start() }
//	...
//	l.Shutdown(ctx)
package postgres

import (
	"context"
	"crypto/tls"
	"fmt"
	"log/slog"
	"net"

	"github.com/tollgate-dev/tollgate/host/gate"
)

// Listener serves one [[listeners]] entry of protocol "postgres".
type Listener struct {
	cfg     listenerConfig
	deps    gate.Deps
	targets map[string]*target
	tlsConf *tls.Config // nil: no TLS offered
	ln      net.Listener
	srv     gate.Server // the accept loop and the connections it serves

	admit    admission
	cancels  cancelMap
	catalogs catalogs // sensitive columns per target database
}

// New prepares a listener; targets must hold every postgres target a
// client may name, with secrets resolved. It does not listen until Start.
//
// # Errors
//
// A target that cannot be prepared (an unreadable ca_file), a tls_cert
// that does not load, or a listener with neither TLS nor allow_plaintext.
func New(lc gate.Listener, targets map[string]*gate.Target, deps gate.Deps) (*Listener, error) {
	if deps.Log == nil {
		deps.Log = slog.Default()
	}
	cfg := listenerConfig{Listener: lc}
	if o, ok := lc.Options.(*ListenerOptions); ok {
		cfg.ListenerOptions = *o
	}
	// A listener that did not pass through config.Parse still gets caps,
	// a message cap and a login deadline.
	if cfg.MaxConnections <= 0 {
		cfg.MaxConnections = DefaultMaxConnections
	}
	if cfg.MaxConnectionsPerSource <= 0 {
		cfg.MaxConnectionsPerSource = min(DefaultMaxConnectionsPerSource, cfg.MaxConnections)
	}
	if cfg.AuthTimeout.Duration <= 0 {
		cfg.AuthTimeout.Duration = DefaultAuthTimeout
	}
	if cfg.MaxMessageBytes <= 0 {
		cfg.MaxMessageBytes = DefaultMaxMessageBytes
	}
	l := &Listener{cfg: cfg, deps: deps, targets: map[string]*target{}}
	for name, t := range targets {
		if t.Protocol != "postgres" || (cfg.Target != "" && name != cfg.Target) {
			continue
		}
		up, err := newTarget(t)
		if err != nil {
			return nil, fmt.Errorf("postgres: listener %s: %w", cfg.Name, err)
		}
		l.targets[name] = up
	}
	if cfg.Target != "" && l.targets[cfg.Target] == nil {
		return nil, fmt.Errorf("postgres: listener %s: no postgres target %q", cfg.Name, cfg.Target)
	}
	switch {
	case cfg.TLSCert != "":
		cert, err := tls.LoadX509KeyPair(cfg.TLSCert, cfg.TLSKey)
		if err != nil {
			return nil, fmt.Errorf("postgres: listener %s: tls: %w", cfg.Name, err)
		}
		l.tlsConf = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	case deps.DevTLS:
		cert, err := gate.SelfSigned(cfg.Listen)
		if err != nil {
			return nil, fmt.Errorf("postgres: listener %s: dev certificate: %w", cfg.Name, err)
		}
		l.tlsConf = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	case !cfg.AllowPlaintext:
		return nil, fmt.Errorf("postgres: listener %s: no tls_cert and allow_plaintext is off: no client could log in", cfg.Name)
	}
	return l, nil
}

// Start binds the listening socket and serves in the background.
func (l *Listener) Start() error {
	ln, err := net.Listen("tcp", l.cfg.Listen)
	if err != nil {
		return fmt.Errorf("postgres: listener %s: %w", l.cfg.Name, err)
	}
	l.ln = ln
	l.srv.Serve(ln, l.deps.Logger().With("listener", l.cfg.Name, "protocol", "postgres"), l.accept)
	return nil
}

// accept admits one connection against the caps. Over a cap it is still
// served, to be answered 53300 once its startup message is read; over a
// cap with too many refusals already in progress, it is closed without a
// word, so that a flood costs one accept each.
func (l *Listener) accept(nc net.Conn) (func(), bool) {
	src := sourceOf(nc.RemoteAddr())
	refusal, ok := l.admit.enter(src, l.cfg.MaxConnections, l.cfg.MaxConnectionsPerSource)
	if !ok {
		l.admit.dropped(l.deps.Log, l.cfg.Name)
		return nil, false
	}
	return func() {
		defer l.admit.leave(src, refusal)
		l.serveConn(nc, refusal)
	}, true
}

// Addr is the bound address; valid after Start.
func (l *Listener) Addr() net.Addr { return l.ln.Addr() }

// Name is the listener's name from the config.
func (l *Listener) Name() string { return l.cfg.Name }

// Shutdown stops accepting and waits until ctx ends for sessions to end
// on their own (clients disconnect); then it closes the client
// connections that are left. Every session's close row is recorded before
// it returns.
func (l *Listener) Shutdown(ctx context.Context) error { return l.srv.Shutdown(ctx) }
