package clickhouse

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/tollgate-dev/tollgate/host/audit"
	"github.com/tollgate-dev/tollgate/host/audit/schema"
)

// session is the shared sessions-table row.
type session = schema.Session

const sessionColumns = schema.SessionColumns

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
					sess.Merge(r)
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
