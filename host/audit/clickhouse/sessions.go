package clickhouse

import (
	"context"
	"fmt"
	"strings"

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
	ids, touched := schema.TouchedSessions(rows)
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
	for _, sess := range schema.FoldSessions(ids, touched, byID) {
		if err := b.Append(sess.Values()...); err != nil {
			return err
		}
	}
	return b.Send()
}
