package trail

import (
	"context"
	"time"

	"github.com/tollgate-dev/tollgate/host/audit"
)

// Table is a result as the stores return it: column names, text rows.
type Table struct {
	Columns []string
	Rows    [][]string
}

// MaxSessions bounds the sessions one listing returns.
const MaxSessions = 1000

// Sessions lists the sessions opened at or after since, newest first (at
// most MaxSessions): who, where, and how they ended ("open" while no
// close row has landed). Columns: session, opened_at, protocol, target,
// subject, repository, run_id, status, rows.
func (t *Trail) Sessions(ctx context.Context, since time.Time) (Table, error) {
	cols, rows, err := t.query(ctx, "sessions",
		"SELECT toString(session_id) AS session, opened_at, protocol, target, subject, "+
			"claim_values[indexOf(claim_keys, 'repository')] AS repository, claim_values[indexOf(claim_keys, 'run_id')] AS run_id, "+
			"if(closed = 1, status, 'open') AS status, last_seq AS rows FROM "+t.table("sessions")+" FINAL "+
			"WHERE opened_at >= {since:DateTime} ORDER BY opened_at DESC LIMIT "+itoa(MaxSessions),
		map[string]string{"since": dateTime(since)})
	return Table{cols, rows}, err
}

// MaxLiveSessions bounds the live sessions one listing returns.
const MaxLiveSessions = 200

// LiveSessions lists the sessions opened in the last day that have no
// close row yet, newest first (at most MaxLiveSessions), for the admin
// console. Columns: session, opened, protocol, target, subject,
// repository, run_id, client, rows.
func (t *Trail) LiveSessions(ctx context.Context) (Table, error) {
	cols, rows, err := t.query(ctx, "live sessions",
		"SELECT toString(session_id) AS session, toString(opened_at) AS opened, protocol, target, subject, "+
			"claim_values[indexOf(claim_keys, 'repository')] AS repository, claim_values[indexOf(claim_keys, 'run_id')] AS run_id, "+
			"remote_addr AS client, toString(last_seq) AS rows FROM "+t.table("sessions")+" FINAL "+
			"WHERE closed = 0 AND opened_at >= {since:DateTime} ORDER BY opened_at DESC LIMIT "+itoa(MaxLiveSessions),
		map[string]string{"since": dateTime(t.now().Add(-24 * time.Hour))})
	return Table{cols, rows}, err
}

// SessionsOpenedSince lists the IDs of the sessions opened at or after
// since, oldest first.
func (t *Trail) SessionsOpenedSince(ctx context.Context, since time.Time) ([]string, error) {
	return t.column(ctx, "sessions opened since",
		"SELECT toString(session_id) FROM "+t.table("sessions")+" FINAL WHERE opened_at >= {since:DateTime} ORDER BY opened_at",
		map[string]string{"since": dateTime(since)})
}

// CheckpointRuns lists the gateway runs that wrote checkpoints (a run's
// checkpoint chain is stored as a session whose ID is the run's).
func (t *Trail) CheckpointRuns(ctx context.Context) ([]string, error) {
	return t.column(ctx, "checkpoint runs",
		"SELECT DISTINCT toString(session_id) FROM "+t.table("events")+" WHERE kind = {kind:String}",
		map[string]string{"kind": audit.KindCheckpoint})
}
