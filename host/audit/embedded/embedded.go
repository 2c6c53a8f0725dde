// Package embedded is the audit store inside the gateway process: chDB
// (ClickHouse as a library, libchdb.so) on a local data directory, with
// the same schema (package schema), the same analyst SQL and the same Go
// API as the ClickHouse server store (package clickhouse).
//
// The library is bound with purego and loaded lazily by Open, never at
// program start: a gateway that uses the file or server store runs on a
// machine without libchdb.so. Open looks for it at Options.LibPath, then
// $CHDB_LIB_PATH, then <module root>/.deps/chdb/libchdb.so (what `make
// deps` installs), then /usr/local/lib/libchdb.so.
//
// chDB holds one connection per process and runs one query at a time, and
// a data directory is locked by one process: so one Store per process.
// The Store serializes its calls; a call waiting for another gives up when
// its context ends, but a statement already running in the library runs
// to its end.
//
// Delivery is at least once, as for the server store: an Insert carries an
// insert_deduplication_token derived from its rows (and the events table
// gets non_replicated_deduplication_window), so a replayed batch is a
// no-op; a replay the window no longer remembers is still collapsed by
// ReplacingMergeTree and hidden by FINAL.
package embedded

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/tollgate-dev/tollgate/host/audit"
	"github.com/tollgate-dev/tollgate/host/audit/schema"
)

// DedupWindow is the number of recent insert blocks whose tokens the
// events table remembers.
const DedupWindow = 10000

// Options say where the data and the library are.
type Options struct {
	Dir      string // data directory (created if missing); required
	Database string // default "tollgate"
	LibPath  string // libchdb.so; default: see the package comment
}

// Store writes audit rows to chDB and reads them back for analysts.
type Store struct {
	c    *conn
	db   string
	dir  string
	lock chan struct{} // one call at a time
}

// Open loads the library (once per process), opens the data directory and
// applies the schema (idempotent) and its version.
func Open(ctx context.Context, o Options) (*Store, error) {
	if o.Dir == "" {
		return nil, errors.New("embedded: no data directory")
	}
	if o.Database == "" {
		o.Database = "tollgate"
	}
	if !isIdent(o.Database) {
		return nil, fmt.Errorf("embedded: database name %q is not a plain identifier", o.Database)
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	dir, err := filepath.Abs(o.Dir)
	if err != nil {
		return nil, fmt.Errorf("embedded: %w", err)
	}
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, fmt.Errorf("embedded: %w", err)
	}
	l, err := loadLibrary(o.LibPath)
	if err != nil {
		return nil, err
	}
	c, err := dial(l, dir)
	if err != nil {
		return nil, err
	}
	s := &Store{c: c, db: o.Database, dir: dir, lock: make(chan struct{}, 1)}
	if err := s.migrate(ctx); err != nil {
		c.close()
		return nil, err
	}
	return s, nil
}

// Dir is the data directory.
func (s *Store) Dir() string { return s.dir }

// LibPath is the library the process loaded.
func (s *Store) LibPath() string { return s.c.lib.path }

func (s *Store) acquire(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	select {
	case s.lock <- struct{}{}:
	case <-ctx.Done():
		return ctx.Err()
	}
	if err := ctx.Err(); err != nil {
		<-s.lock
		return err
	}
	return nil
}

func (s *Store) release() { <-s.lock }

func (s *Store) migrate(ctx context.Context) error {
	if err := s.acquire(ctx); err != nil {
		return err
	}
	defer s.release()
	for _, stmt := range schema.Statements(schema.Options{Database: s.db}) {
		if _, err := s.c.exec(stmt, "TabSeparated"); err != nil {
			return fmt.Errorf("embedded: schema: %w\n%s", err, stmt)
		}
	}
	// Session state: analyst SQL names tables without the database, and
	// DateTime text is UTC whatever the host's zone.
	for _, stmt := range []string{
		"USE " + s.db,
		"SET session_timezone = 'UTC'",
		fmt.Sprintf("ALTER TABLE %s.events MODIFY SETTING non_replicated_deduplication_window = %d", s.db, DedupWindow),
	} {
		if _, err := s.c.exec(stmt, "TabSeparated"); err != nil {
			return fmt.Errorf("embedded: schema: %w\n%s", err, stmt)
		}
	}
	out, err := s.c.exec(fmt.Sprintf("SELECT max(version) FROM %s.schema_version", s.db), "TabSeparated")
	if err != nil {
		return fmt.Errorf("embedded: schema version: %w", err)
	}
	have, err := strconv.ParseUint(strings.TrimSpace(string(out)), 10, 32)
	if err != nil {
		return fmt.Errorf("embedded: schema version %q: %w", out, err)
	}
	switch {
	case have > schema.Version:
		return fmt.Errorf("embedded: the database holds schema version %d, newer than this gateway's %d; upgrade the gateway", have, schema.Version)
	case have == schema.Version:
		return nil
	}
	if _, err := s.c.exec(fmt.Sprintf("INSERT INTO %s.schema_version (version) VALUES (%d)", s.db, schema.Version), "TabSeparated"); err != nil {
		return fmt.Errorf("embedded: record schema version: %w", err)
	}
	return nil
}

// Close releases the connection (and the directory's lock). The library
// stays loaded; another Open in this process may follow.
func (s *Store) Close() error {
	s.lock <- struct{}{}
	defer s.release()
	s.c.close()
	return nil
}

// Insert writes rows as one INSERT into events (all or none); the
// schema's materialized view derives the sessions table from them. An
// error means "retry these rows": a retry of rows that did arrive is a
// no-op.
func (s *Store) Insert(ctx context.Context, rows []audit.Row) error {
	if len(rows) == 0 {
		return nil
	}
	var b bytes.Buffer
	b.Grow(len(rows) * 700)
	fmt.Fprintf(&b, "INSERT INTO %s.events (%s) SETTINGS insert_deduplication_token = '%s' FORMAT TabSeparated\n",
		s.db, strings.Join(schema.Columns(), ", "), Token(rows))
	for i := range rows {
		writeTSV(&b, schema.Values(rows[i]))
	}
	if err := s.acquire(ctx); err != nil {
		return err
	}
	defer s.release()
	if _, err := s.c.exec(b.String(), "TabSeparated"); err != nil {
		return fmt.Errorf("embedded: insert: %w", err)
	}
	return nil
}

// Token is the insert_deduplication_token of a batch: a hash over each
// row's event ID and row hash, in order. A replay of the batch gets the
// same token; a batch that differs in any row's identity or content
// (including an unsealed row's event ID) gets another.
func Token(rows []audit.Row) string {
	h := sha256.New()
	for i := range rows {
		h.Write([]byte(rows[i].EventID))
		h.Write([]byte{0})
		h.Write([]byte(rows[i].RowHash))
		h.Write([]byte{0})
		if rows[i].RowHash == "" {
			// Unsealed rows: their content is the only identity besides the ID.
			j, _ := json.Marshal(rows[i])
			h.Write(j)
		}
	}
	return "tollgate-" + hex.EncodeToString(h.Sum(nil))
}

// writeTSV appends one TabSeparated line of values (schema.Values types).
func writeTSV(b *bytes.Buffer, vals []any) {
	for i, v := range vals {
		if i > 0 {
			b.WriteByte('\t')
		}
		switch x := v.(type) {
		case string:
			escapeTSV(b, x)
		case []string:
			writeArray(b, x)
		case time.Time:
			b.WriteString(dateTime(x))
		case uint32:
			b.WriteString(strconv.FormatUint(uint64(x), 10))
		case uint64:
			b.WriteString(strconv.FormatUint(x, 10))
		case int64:
			b.WriteString(strconv.FormatInt(x, 10))
		default:
			escapeTSV(b, fmt.Sprint(x))
		}
	}
	b.WriteByte('\n')
}

// dateTime is t as DateTime text in UTC (the session's zone), clamped to
// the type's range.
func dateTime(t time.Time) string {
	u := t.Unix()
	switch {
	case u < 0:
		u = 0
	case u > 4294967295:
		u = 4294967295
	}
	return time.Unix(u, 0).UTC().Format("2006-01-02 15:04:05")
}

func escapeTSV(b *bytes.Buffer, s string) { escape(b, s, false) }

// quote writes s as a quoted SQL string literal without raw control
// characters (so it may sit inside a TSV field).
func quote(b *bytes.Buffer, s string) {
	b.WriteByte('\'')
	escape(b, s, true)
	b.WriteByte('\'')
}

// escape writes s with backslash escapes for what TSV and SQL string
// literals cannot hold raw; quotes too inside a literal.
func escape(b *bytes.Buffer, s string, literal bool) {
	for i := 0; i < len(s); i++ {
		switch c := s[i]; c {
		case '\\':
			b.WriteString(`\\`)
		case '\t':
			b.WriteString(`\t`)
		case '\n':
			b.WriteString(`\n`)
		case '\r':
			b.WriteString(`\r`)
		case 0:
			b.WriteString(`\0`)
		case '\'':
			if literal {
				b.WriteString(`\'`)
			} else {
				b.WriteByte(c)
			}
		default:
			b.WriteByte(c)
		}
	}
}

// writeArray writes ss as an Array(String) literal.
func writeArray(b *bytes.Buffer, ss []string) {
	b.WriteByte('[')
	for i, e := range ss {
		if i > 0 {
			b.WriteByte(',')
		}
		quote(b, e)
	}
	b.WriteByte(']')
}

func isIdent(s string) bool {
	if s == "" || s[0] >= '0' && s[0] <= '9' {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !isWord(s[i]) {
			return false
		}
	}
	return true
}

func isWord(c byte) bool {
	return c == '_' || c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z'
}
