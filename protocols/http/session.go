package http

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"maps"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/tollgate-dev/tollgate/host/audit"
	"github.com/tollgate-dev/tollgate/host/event"
)

// A session is the requests one principal sends over one client
// connection. Keep-alive makes that the natural unit: an agent reuses its
// connection and its token. If a request on the same connection carries a
// different identity, the session closes and a new one opens, so that a
// session never mixes two principals.
type session struct {
	id        string
	principal *event.Principal // nil for requests that never authenticated
	opened    time.Time
	open      audit.Row // the session.open row, which the close row repeats
	requests  int

	mu    sync.Mutex
	seq   uint64
	chain audit.SessionChain
}

// sealLocked numbers r as the session's next row and links it into the
// session's hash chain. Rows are sealed in the order they are recorded,
// under s.mu.
func (s *session) sealLocked(r *audit.Row) {
	s.seq++
	r.Seq = s.seq
	r.EventID = audit.NewID()
	s.chain.Seal(r)
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
	s := &session{id: audit.NewID(), principal: p, opened: at, requests: 1}
	c.cur = s
	s.open = c.row(s, audit.KindSessionOpen, target)
	s.open.Time = s.opened
	c.l.record(s, s.open, false) // a synced request's wait covers it
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
	c.l.record(s, audit.CloseRow(s.open, time.Now(), fmt.Sprintf("%d requests", s.requests)), false)
}

// row starts an audit row for session s.
func (c *conn) row(s *session, kind, target string) audit.Row {
	r := audit.Row{
		Time:       time.Now(),
		GatewayID:  c.l.deps.GatewayID,
		SessionID:  s.id,
		Protocol:   "http",
		Listener:   c.l.cfg.Name,
		Target:     target,
		Kind:       kind,
		RemoteAddr: c.remote,
	}
	r.SetPrincipal(s.principal)
	return r
}

// record seals r into session s and hands it to the recorder. When the
// spool has no room for r, its minimal form takes r's place in the chain
// (the spool's reserve holds it), so the trail states the outage instead
// of showing a gap; when even that finds no room, the chain is rolled
// back and nothing refers to the missing row.
//
// synced rows (the target's durability) come back with a ticket to wait
// on before the request goes out or the answer is released; the wait is
// outside s.mu, so that a session's other rows never queue behind it.
func (l *Listener) record(s *session, r audit.Row, synced bool) (audit.Ticket, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	seq, chain := s.seq, s.chain
	s.sealLocked(&r)
	t, err := audit.RecordTicket(l.deps.Recorder, r, synced)
	if errors.Is(err, audit.ErrFull) && !audit.Reserved(&r) {
		s.seq, s.chain = seq, chain
		m := audit.Minimal(r)
		s.seq = m.Seq
		s.chain.Seal(&m)
		if t, err = audit.RecordTicket(l.deps.Recorder, m, synced); err == nil {
			return t, nil
		}
	}
	if err != nil {
		s.seq, s.chain = seq, chain
		l.deps.Log.Error("audit row not recorded", "session_id", r.SessionID, "kind", r.Kind, "err", err)
	}
	return t, err
}

func samePrincipal(a, b *event.Principal) bool {
	if a == nil || b == nil {
		return a == b
	}
	// Same subject with other kept claims (a new CI run's token, say) is a
	// new invocation, and so a new session.
	return a == b || (a.Issuer == b.Issuer && a.Subject == b.Subject && maps.Equal(a.Kept, b.Kept))
}
