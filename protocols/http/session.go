package http

import (
	"context"
	"crypto/tls"
	"fmt"
	"maps"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/tollgate-dev/tollgate/host/event"
	"github.com/tollgate-dev/tollgate/host/gate"
)

// A session is the requests one principal sends over one client
// connection. Keep-alive makes that the natural unit: an agent reuses its
// connection and its token. If a request on the same connection carries a
// different identity, the session closes and a new one opens, so that a
// session never mixes two principals. Its rows (IDs, numbering, hash
// chain, open and close rows) are the layer's gate.Session.
type session struct {
	*gate.Session
	principal *event.Principal // nil for requests that never authenticated
	requests  int              // under conn.mu
}

// conn is the gateway's state for one client connection.
type conn struct {
	l      *Listener
	remote string
	tls    func() *tls.ConnectionState // nil for plain connections

	mu  sync.Mutex
	cur *session
}

type connKey struct{}

func (l *Listener) connContext(ctx context.Context, c net.Conn) context.Context {
	cs := &conn{l: l, remote: c.RemoteAddr().String()}
	if w, ok := c.(*watchedConn); ok {
		w.mu.Lock()
		w.cs = cs
		w.mu.Unlock()
		cs.tls = w.tlsState
	}
	l.conns.Store(c, cs)
	return context.WithValue(ctx, connKey{}, cs)
}

func (l *Listener) connState(c net.Conn, st http.ConnState) {
	switch st {
	case http.StateClosed:
		if v, ok := l.conns.LoadAndDelete(c); ok {
			v.(*conn).closeSession()
		}
	case http.StateHijacked:
		// The handler that hijacked closes the session when it returns.
		l.conns.Delete(c)
	}
}

func connFrom(ctx context.Context) *conn {
	c, _ := ctx.Value(connKey{}).(*conn)
	return c
}

// sessionFor returns the session for p on this connection, opening one (and
// closing the previous) when the identity changes.
func (c *conn) sessionFor(p *event.Principal, target string, at time.Time) *session {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.cur != nil && samePrincipal(c.cur.principal, p) {
		c.cur.requests++
		return c.cur
	}
	if c.cur != nil {
		c.closeLocked()
	}
	s := &session{Session: c.l.deps.NewSession(gate.SessionInfo{Protocol: "http", Listener: c.l.cfg.Name, Remote: c.remote}), principal: p, requests: 1}
	s.SetPrincipal(p)
	s.SetTarget(target, "")
	c.cur = s
	open := s.Row(gate.KindSessionOpen)
	open.Time = at
	s.Open(open) // not synced: a synced request's wait covers it
	return s
}

func (c *conn) closeSession() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.cur != nil {
		c.closeLocked()
	}
}

func (c *conn) closeLocked() {
	s := c.cur
	c.cur = nil
	s.Close(fmt.Sprintf("%d requests", s.requests), "")
}

// sessionRow starts an audit row of session s about target.
func sessionRow(s *session, kind, target string) gate.Row {
	r := s.Row(kind)
	r.Target = target
	return r
}

func samePrincipal(a, b *event.Principal) bool {
	if a == nil || b == nil {
		return a == b
	}
	// Same subject with other kept claims (a new CI run's token, say) is a
	// new invocation, and so a new session.
	return a == b || (a.Issuer == b.Issuer && a.Subject == b.Subject && maps.Equal(a.Kept, b.Kept))
}
