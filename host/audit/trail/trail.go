// Package trail reads the audit trail back: the queries behind `gateway
// audit sessions`, `tail` and `verify` and the admin console's live
// sessions, over any store that answers SQL (the clickhouse and embedded
// stores, or the admin API of the gateway that owns the store).
//
// No value is ever spliced into SQL text. Each query names its values as
// ClickHouse does, {name:Type}, and sqlparam binds them as typed literals
// it has parsed and escaped itself: ClickHouse 18.16 has no server-side
// parameters, and the admin API carries SQL only. The one name formatted
// into the text, the database, must be a plain identifier (New checks it).
//
// Typical use:
//
//	tr, err := trail.New(trail.FromStore(store), "tollgate")
//	sessions, err := tr.Sessions(ctx, time.Now().Add(-24*time.Hour))
//	rows, err := tr.VerifyRows(ctx, trail.Scope{Since: since})
//	report := trail.Verify(rows, trail.Scope{Since: since}, key)
package trail

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/tollgate-dev/tollgate/host/audit"
	"github.com/tollgate-dev/tollgate/host/audit/sqlparam"
)

// Reader is an audit store's read side.
type Reader interface {
	// Query runs one read-only statement and returns its result as text
	// (times in UTC RFC 3339). The trail passes no args: its SQL arrives
	// bound.
	Query(ctx context.Context, sql string, args ...any) ([]string, [][]string, error)
	// SessionRows reads one session's rows, or every row for "".
	SessionRows(ctx context.Context, session string) ([]audit.Row, error)
}

// Store is what the clickhouse and embedded stores (and admin.AuditReader)
// offer: Rows takes a trusted condition with the store's own ? binding.
type Store interface {
	Query(ctx context.Context, sql string, args ...any) ([]string, [][]string, error)
	Rows(ctx context.Context, where string, args ...any) ([]audit.Row, error)
}

// FromStore reads a store directly.
func FromStore(s Store) Reader { return storeReader{s} }

type storeReader struct{ Store }

// SessionRows checks the ID is a UUID before the store sees it: the
// condition is bound by sqlparam like every other value of the trail.
func (s storeReader) SessionRows(ctx context.Context, session string) ([]audit.Row, error) {
	if session == "" {
		return s.Rows(ctx, "")
	}
	where, err := sqlparam.Bind("session_id = {session:UUID}", map[string]string{"session": session}, time.Now())
	if err != nil {
		return nil, fmt.Errorf("trail: session rows: %w", err)
	}
	return s.Rows(ctx, where)
}

// ErrDatabaseName is returned by New for a database name that is not a
// plain identifier.
var ErrDatabaseName = errors.New("trail: the audit database name must be a plain identifier (letters, digits, _; not starting with a digit)")

// Trail reads one audit database.
type Trail struct {
	r  Reader
	db string
	// now anchors the times the trail computes (tests set it).
	now func() time.Time
}

// New reads database through r.
//
// # Errors
//
// ErrDatabaseName (wrapped, with the name) when database is not a plain
// identifier: it is the one name formatted into the SQL, so it is checked
// instead of quoted.
func New(r Reader, database string) (*Trail, error) {
	if !Identifier(database) {
		return nil, fmt.Errorf("%w: %q", ErrDatabaseName, database)
	}
	return &Trail{r: r, db: database, now: time.Now}, nil
}

// Identifier reports whether s is a plain SQL identifier:
// [A-Za-z_][A-Za-z0-9_]*, at most 128 bytes. Such a name needs no
// quoting in any ClickHouse release.
func Identifier(s string) bool {
	if s == "" || len(s) > 128 || s[0] >= '0' && s[0] <= '9' {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c == '_' || c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z') {
			return false
		}
	}
	return true
}

// table is db.name; both are identifiers.
func (t *Trail) table(name string) string { return t.db + "." + name }

// query binds params into sql (its {name:Type} placeholders) and runs it.
func (t *Trail) query(ctx context.Context, what, sql string, params map[string]string) ([]string, [][]string, error) {
	bound, err := sqlparam.Bind(sql, params, t.now())
	if err != nil {
		return nil, nil, fmt.Errorf("trail: %s: %w", what, err)
	}
	cols, rows, err := t.r.Query(ctx, bound)
	if err != nil {
		return nil, nil, fmt.Errorf("trail: %s: %w", what, err)
	}
	return cols, rows, nil
}

// column reads the first column of a one-column query.
func (t *Trail) column(ctx context.Context, what, sql string, params map[string]string) ([]string, error) {
	_, rows, err := t.query(ctx, what, sql, params)
	if err != nil {
		return nil, err
	}
	out := make([]string, 0, len(rows))
	for _, r := range rows {
		if len(r) == 0 {
			return nil, fmt.Errorf("trail: %s: a row without columns", what)
		}
		out = append(out, r[0])
	}
	return out, nil
}

// dateTime is t as a DateTime parameter's value (whole seconds, UTC); a
// time before 1970, where DateTime begins, is 1970 (--since 100000h
// means everything).
func dateTime(t time.Time) string {
	if t.Before(time.Unix(0, 0)) {
		t = time.Unix(0, 0)
	}
	return t.UTC().Format(time.RFC3339)
}
