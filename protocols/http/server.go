// Package http terminates HTTP for Tollgate: it authenticates each request
// with the agent's OIDC token, checks access, runs the request and its
// response through the plugin chain, forwards it to the target with the
// credential the gateway holds, and writes one audit row per request.
package http

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"sync"

	"github.com/tollgate-dev/tollgate/host/gate"
)

// Listener serves one [[listeners]] entry of protocol "http".
type Listener struct {
	cfg    listenerConfig
	deps   gate.Deps
	routes []route
	srv    *http.Server
	ln     net.Listener

	conns sync.Map // net.Conn → *conn
}

// New prepares a listener; targets must hold every target its routes name,
// with secrets resolved. It does not listen until Start.
func New(lc gate.Listener, targets map[string]*gate.Target, deps gate.Deps) (*Listener, error) {
	if deps.Log == nil {
		deps.Log = slog.Default()
	}
	cfg := listenerConfig{Listener: lc}
	if o, ok := lc.Options.(*ListenerOptions); ok {
		cfg.ListenerOptions = *o
	}
	l := &Listener{cfg: cfg, deps: deps}
	for _, rc := range cfg.Routes {
		t, ok := targets[rc.Target]
		if !ok {
			return nil, fmt.Errorf("http: listener %s: no target %q", cfg.Name, rc.Target)
		}
		up, err := newUpstream(t)
		if err != nil {
			return nil, fmt.Errorf("http: listener %s: %w", cfg.Name, err)
		}
		rt := route{cfg: rc, up: up}
		rt.proxy = up.proxy(
			func(pr *httputil.ProxyRequest) { exchangeFrom(pr.In.Context()).rewrite(pr) },
			func(resp *http.Response) error { return exchangeFrom(resp.Request.Context()).modifyResponse(resp) },
			func(w http.ResponseWriter, r *http.Request, err error) {
				exchangeFrom(r.Context()).proxyError(w, r, err)
			},
		)
		l.routes = append(l.routes, rt)
	}
	l.srv = &http.Server{
		Handler:           l,
		ReadHeaderTimeout: cfg.ReadHeaderTimeout.Duration,
		IdleTimeout:       cfg.IdleTimeout.Duration,
		MaxHeaderBytes:    cfg.MaxHeaderBytes,
		ConnContext:       l.connContext,
		ConnState:         l.connState,
		ErrorLog:          slog.NewLogLogger(deps.Log.Handler(), slog.LevelDebug),
	}
	return l, nil
}

// Start binds the listening socket and serves in the background.
func (l *Listener) Start() error {
	ln, err := net.Listen("tcp", l.cfg.Listen)
	if err != nil {
		return fmt.Errorf("http: listener %s: %w", l.cfg.Name, err)
	}
	if l.cfg.TLSCert != "" {
		cert, err := tls.LoadX509KeyPair(l.cfg.TLSCert, l.cfg.TLSKey)
		if err != nil {
			ln.Close()
			return fmt.Errorf("http: listener %s: tls: %w", l.cfg.Name, err)
		}
		ln = tls.NewListener(ln, &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12})
	}
	l.ln = ln
	// Watched over TLS, so the server's own answers are seen in clear.
	ln = watchListener{ln}
	go func() {
		if err := l.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			l.deps.Log.Error("http: serve stopped", "listener", l.cfg.Name, "err", err)
		}
	}()
	return nil
}

// Addr is the bound address; valid after Start.
func (l *Listener) Addr() net.Addr { return l.ln.Addr() }

// Name is the listener's name from the config.
func (l *Listener) Name() string { return l.cfg.Name }

// Shutdown stops accepting, lets in-flight requests finish until ctx ends,
// then closes what is left. Every session's close row is recorded before
// it returns.
func (l *Listener) Shutdown(ctx context.Context) error {
	err := l.srv.Shutdown(ctx)
	if err != nil {
		l.srv.Close()
	}
	// Connections cut by Close may not report StateClosed before we return.
	l.conns.Range(func(k, v any) bool {
		v.(*conn).closeSession()
		l.conns.Delete(k)
		return true
	})
	return err
}
