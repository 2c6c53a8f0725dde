package kube

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"slices"
	"sync"

	"github.com/tollgate-dev/tollgate/host/event"
	"github.com/tollgate-dev/tollgate/host/gate"
)

// A session is the requests one principal sends over one client
// connection (kubectl keeps its connection and its token for a whole
// command). A request with another identity on the same connection closes
// the session and opens a new one, so that a session never mixes two
// principals.
type conn struct {
	l      *Listener
	remote string

	mu        sync.Mutex
	cur       *gate.Session
	principal *event.Principal
	requests  int
}

type connKey struct{}

func (l *Listener) connContext(ctx context.Context, c net.Conn) context.Context {
	cs := &conn{l: l, remote: c.RemoteAddr().String()}
	l.conns.Store(c, cs)
	return context.WithValue(ctx, connKey{}, cs)
}

func (l *Listener) connState(c net.Conn, st http.ConnState) {
	if st == http.StateClosed || st == http.StateHijacked {
		if v, ok := l.conns.LoadAndDelete(c); ok {
			v.(*conn).close()
		}
	}
}

func connFrom(ctx context.Context) *conn {
	c, _ := ctx.Value(connKey{}).(*conn)
	return c
}

// sessionFor is the connection's session for p, opened on its first
// request.
func (c *conn) sessionFor(p *event.Principal) *gate.Session {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.cur != nil && samePrincipal(c.principal, p) {
		c.requests++
		return c.cur
	}
	c.closeLocked()
	s := c.l.deps.NewSession(gate.SessionInfo{Protocol: "kube", Listener: c.l.opts.Name, Remote: c.remote})
	s.SetPrincipal(p)
	s.SetTarget(c.l.opts.Target.Name, "")
	if err := s.Open(s.Row("")); err != nil {
		// The request's own row is refused by Admit and Decide after this.
		s.Log().Error("kube: record session.open", "err", err)
	}
	c.cur, c.principal, c.requests = s, p, 1
	return s
}

// refuse answers a request whose token was missing or refused, and records
// it in a session of its own (it has no principal to share one with).
func (c *conn) refuse(r *http.Request, err error, w http.ResponseWriter) {
	kind, reason := gate.AuthFailure(err)
	s := c.l.deps.NewSession(gate.SessionInfo{Protocol: "kube", Listener: c.l.opts.Name, Remote: c.remote})
	s.SetTarget(c.l.opts.Target.Name, "")
	if kind == gate.AuthUnavailable {
		s.Log().Warn("kube: token not verified", "err", err)
	}
	open := s.Row("")
	open.Verdict, open.Error = "deny", "auth: "+reason
	open.Request = map[string]string{"method": r.Method, "path": r.URL.Path}
	if oerr := s.Open(open); oerr != nil {
		s.Log().Error("kube: record refused session", "err", oerr)
	}
	code, status := http.StatusUnauthorized, "Unauthorized"
	if kind == gate.AuthUnavailable {
		code, status = http.StatusServiceUnavailable, "ServiceUnavailable"
	}
	s.Close("refused", "auth: "+reason)
	writeStatus(w, code, status, fmt.Sprintf("tollgate: %s", reason))
}

func (c *conn) close() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.closeLocked()
}

func (c *conn) closeLocked() {
	if c.cur == nil {
		return
	}
	c.cur.Close(fmt.Sprintf("%d requests", c.requests), "")
	c.cur, c.principal = nil, nil
}

func samePrincipal(a, b *event.Principal) bool {
	return a != nil && b != nil && a.Issuer == b.Issuer && a.Subject == b.Subject && slices.Equal(a.Groups, b.Groups)
}
