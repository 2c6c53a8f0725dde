package clickhouse

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/tollgate-dev/tollgate/host/audit"
	"github.com/tollgate-dev/tollgate/host/audit/schema"
)

// session is one row of the sessions table.
type session struct {
	SessionID  string    `ch:"session_id"`
	GatewayID  string    `ch:"gateway_id"`
	Protocol   string    `ch:"protocol"`
	Listener   string    `ch:"listener"`
	Target     string    `ch:"target"`
	RemoteAddr string    `ch:"remote_addr"`
	Issuer     string    `ch:"issuer"`
	Subject    string    `ch:"subject"`
	Email      string    `ch:"email"`
	Groups     []string  `ch:"groups"`
	ClaimKeys  []string  `ch:"claim_keys"`
	ClaimVals  []string  `ch:"claim_values"`
	OpenedAt   time.Time `ch:"opened_at"`
	OpenedUs   uint32    `ch:"opened_us"`
	Closed     uint8     `ch:"closed"`
	ClosedAt   time.Time `ch:"closed_at"`
	ClosedUs   uint32    `ch:"closed_us"`
	Status     string    `ch:"status"`
	DurationUs int64     `ch:"duration_us"`
	LastSeq    uint64    `ch:"last_seq"`
}

const sessionColumns = "session_id, gateway_id, protocol, listener, target, remote_addr, issuer, subject, email, groups, claim_keys, claim_values, opened_at, opened_us, closed, closed_at, closed_us, status, duration_us, last_seq"

// merge folds an open or close row into s. The open row is authoritative
// for identity and target; a close row only fills what is still empty
// (it arrives first when delivery reorders batches, and an HTTP close
// row names no target).
func (s *session) merge(r audit.Row) {
	open := r.Kind == audit.KindSessionOpen
	set := func(dst *string, v string) {
		if v != "" && (open || *dst == "") {
			*dst = v
		}
	}
	s.SessionID = r.SessionID
	set(&s.GatewayID, r.GatewayID)
	set(&s.Protocol, r.Protocol)
	set(&s.Listener, r.Listener)
	set(&s.Target, r.Target)
	set(&s.RemoteAddr, r.RemoteAddr)
	set(&s.Issuer, r.Issuer)
	set(&s.Subject, r.Subject)
	set(&s.Email, r.Email)
	if len(r.Groups) > 0 && (open || len(s.Groups) == 0) {
		s.Groups = r.Groups
	}
	if len(r.Claims) > 0 && (open || len(s.ClaimKeys) == 0) {
		s.ClaimKeys, s.ClaimVals = schema.Pairs(r.Claims)
	}
	if open {
		s.OpenedAt, s.OpenedUs = schema.Split(r.Time)
	} else {
		s.Closed = 1
		s.ClosedAt, s.ClosedUs = schema.Split(r.Time)
		s.Status, s.DurationUs = r.Status, r.DurationMicro
		if s.OpenedAt.Unix() == 0 {
			// Not seen the open row yet: its time, near enough, until it comes.
			s.OpenedAt, s.OpenedUs = schema.Split(r.Time.Add(-time.Duration(r.DurationMicro) * time.Microsecond))
		}
	}
	s.LastSeq = max(s.LastSeq, r.Seq)
}

// upsertSessions rewrites the session rows for the sessions opened or
// closed in rows: read what is stored (FINAL, by the sorting key: a point
// lookup), merge, insert. Rerunning it for the same rows writes the same
// result, so a retried Insert is harmless here too.
func (s *Store) upsertSessions(ctx context.Context, rows []audit.Row) error {
	var ids []string
	touched := map[string][]audit.Row{}
	for _, r := range rows {
		if r.Kind != audit.KindSessionOpen && r.Kind != audit.KindSessionClose {
			continue
		}
		if _, ok := touched[r.SessionID]; !ok {
			ids = append(ids, r.SessionID)
		}
		touched[r.SessionID] = append(touched[r.SessionID], r)
	}
	if len(ids) == 0 {
		return nil
	}
	s.sessionMu.Lock()
	defer s.sessionMu.Unlock()

	var stored []session
	q := fmt.Sprintf("SELECT %s FROM %s.sessions FINAL WHERE session_id IN (%s)",
		sessionColumns, s.db, strings.TrimSuffix(strings.Repeat("toUUID(?), ", len(ids)), ", "))
	args := make([]any, len(ids))
	for i, id := range ids {
		args[i] = id
	}
	if err := s.conn.Select(ctx, &stored, q, args...); err != nil {
		return err
	}
	byID := make(map[string]*session, len(stored))
	for i := range stored {
		byID[stored[i].SessionID] = &stored[i]
	}
	b, err := s.conn.PrepareBatch(ctx, fmt.Sprintf("INSERT INTO %s.sessions (%s)", s.db, sessionColumns))
	if err != nil {
		return err
	}
	defer b.Abort()
	for _, id := range ids {
		sess := byID[id]
		if sess == nil {
			sess = &session{OpenedAt: time.Unix(0, 0), ClosedAt: time.Unix(0, 0)}
		}
		// Open before close, whatever order the batch holds them in.
		for _, kind := range []string{audit.KindSessionOpen, audit.KindSessionClose} {
			for _, r := range touched[id] {
				if r.Kind == kind {
					sess.merge(r)
				}
			}
		}
		if sess.Groups == nil {
			sess.Groups = []string{}
		}
		if sess.ClaimKeys == nil {
			sess.ClaimKeys, sess.ClaimVals = []string{}, []string{}
		}
		if err := b.Append(sess.SessionID, sess.GatewayID, sess.Protocol, sess.Listener, sess.Target,
			sess.RemoteAddr, sess.Issuer, sess.Subject, sess.Email, sess.Groups, sess.ClaimKeys, sess.ClaimVals,
			sess.OpenedAt, sess.OpenedUs, sess.Closed, sess.ClosedAt, sess.ClosedUs, sess.Status,
			sess.DurationUs, sess.LastSeq); err != nil {
			return err
		}
	}
	return b.Send()
}
