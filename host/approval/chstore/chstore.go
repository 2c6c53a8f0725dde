// Package chstore keeps approval records in ClickHouse, on the server the
// audit trail uses, so that every gateway replica sees every approval and a
// decision made through any replica reaches the one holding the request
// (approval.Shared).
//
// Two tables in the audit database, in DDL every ClickHouse since 18.16
// accepts:
//
//   - approvals: one row per version of a record (the holder writes every
//     change), ReplacingMergeTree(version) ORDER BY id; reads use FINAL.
//   - approval_rulings: decisions submitted on a replica that does not
//     hold the request; the holder polls them for its pending approvals.
//
// The record itself is JSON in a String column: the approval's fields are
// for the console and the CLI; analysts query the audit events, where
// every approval's chain is.
package chstore

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"sync"
	"time"

	ch "github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/tollgate-dev/tollgate/host/approval"
)

// Options say where the server is (those of the audit store).
type Options struct {
	Addrs    []string
	Database string // default "tollgate"
	User     string // default "default"
	Password string
	TLS      *tls.Config
}

// Store is an approval.Shared on ClickHouse.
type Store struct {
	conn driver.Conn
	db   string

	mu    sync.Mutex
	last  uint64 // the last version written
	ready bool   // the tables exist (created by this process)
}

var _ approval.Shared = (*Store)(nil)

// Open connects and creates the tables (idempotent); it fails when the
// server does not answer.
func Open(ctx context.Context, o Options) (*Store, error) {
	s, err := Connect(o)
	if err != nil {
		return nil, err
	}
	if err := s.ensure(ctx); err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

// Connect returns a store without talking to the server: the tables are
// created by the first call that reaches it. While the server is down
// every call fails with an error that wraps ErrUnavailable, so the gateway
// starts during an outage and holds no request it could not record (see
// approval.Manager).
func Connect(o Options) (*Store, error) {
	if len(o.Addrs) == 0 {
		return nil, errors.New("chstore: no server address")
	}
	if o.Database == "" {
		o.Database = "tollgate"
	}
	if o.User == "" {
		o.User = "default"
	}
	if !ident.MatchString(o.Database) {
		return nil, fmt.Errorf("chstore: database name %q", o.Database)
	}
	// clickhouse-go dials when a connection is first needed.
	conn, err := ch.Open(&ch.Options{
		Addr: o.Addrs, Protocol: ch.Native, TLS: o.TLS,
		Auth:        ch.Auth{Database: "default", Username: o.User, Password: o.Password},
		DialTimeout: 10 * time.Second,
	})
	if err != nil {
		return nil, fmt.Errorf("chstore: connect: %w", err)
	}
	return &Store{conn: conn, db: o.Database}, nil
}

// ErrUnavailable is wrapped by every error of a store whose server did
// not answer (or refused the tables).
var ErrUnavailable = errors.New("chstore: the approval store (ClickHouse) is unavailable")

// ensure creates the tables the first time the server answers. Every
// operation calls it, so the tables appear as soon as an outage at start
// ends; afterwards it costs a mutex.
func (s *Store) ensure(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ready {
		return nil
	}
	for _, stmt := range Statements(s.db) {
		if err := s.conn.Exec(ctx, stmt); err != nil {
			return fmt.Errorf("%w: schema: %w", ErrUnavailable, err)
		}
	}
	s.ready = true
	return nil
}

// unavailable marks err as the server's (see ErrUnavailable).
func unavailable(op string, err error) error {
	return fmt.Errorf("%w: %s: %w", ErrUnavailable, op, err)
}

var ident = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// Statements is the DDL, in order.
func Statements(db string) []string {
	return []string{
		fmt.Sprintf("CREATE DATABASE IF NOT EXISTS %s", db),
		fmt.Sprintf(`CREATE TABLE IF NOT EXISTS %s.approvals
(
    id String,
    version UInt64,
    holder String,
    state String,
    created DateTime,
    record String
)
ENGINE = ReplacingMergeTree(version)
ORDER BY id`, db),
		fmt.Sprintf(`CREATE TABLE IF NOT EXISTS %s.approval_rulings
(
    approval_id String,
    ruling_id String,
    at DateTime,
    ruling String
)
ENGINE = ReplacingMergeTree
ORDER BY (approval_id, ruling_id)`, db),
	}
}

// version is strictly increasing per process; one process writes a record.
func (s *Store) version() uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	v := uint64(time.Now().UnixNano())
	if v <= s.last {
		v = s.last + 1
	}
	s.last = v
	return v
}

// Save writes a new version of r.
func (s *Store) Save(r approval.Record) error {
	b, err := json.Marshal(r)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := s.ensure(ctx); err != nil {
		return err
	}
	batch, err := s.conn.PrepareBatch(ctx, fmt.Sprintf("INSERT INTO %s.approvals (id, version, holder, state, created, record)", s.db))
	if err != nil {
		return unavailable("save", err)
	}
	defer batch.Abort()
	if err := batch.Append(r.ID, s.version(), r.Holder, string(r.State), r.Created, string(b)); err != nil {
		return fmt.Errorf("chstore: save: %w", err)
	}
	if err := batch.Send(); err != nil {
		return unavailable("save", err)
	}
	return nil
}

// Load reads every record of the retention window (approval.FileRetention).
func (s *Store) Load() ([]approval.Record, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	return s.records(ctx, fmt.Sprintf("SELECT record FROM %s.approvals FINAL WHERE created >= now() - %d ORDER BY created",
		s.db, int64(approval.FileRetention.Seconds())))
}

// Get reads the latest version of id.
func (s *Store) Get(ctx context.Context, id string) (approval.Record, bool, error) {
	if !uuid.MatchString(id) {
		return approval.Record{}, false, nil
	}
	rs, err := s.records(ctx, fmt.Sprintf("SELECT record FROM %s.approvals FINAL WHERE id = '%s'", s.db, id))
	if err != nil || len(rs) == 0 {
		return approval.Record{}, false, err
	}
	return rs[0], true, nil
}

// Recent reads the newest records.
func (s *Store) Recent(ctx context.Context, limit int) ([]approval.Record, error) {
	return s.records(ctx, fmt.Sprintf("SELECT record FROM %s.approvals FINAL ORDER BY created DESC LIMIT %d", s.db, limit))
}

func (s *Store) records(ctx context.Context, q string) ([]approval.Record, error) {
	if err := s.ensure(ctx); err != nil {
		return nil, err
	}
	rows, err := s.conn.Query(ctx, q)
	if err != nil {
		return nil, unavailable("read", err)
	}
	defer rows.Close()
	var out []approval.Record
	for rows.Next() {
		var text string
		if err := rows.Scan(&text); err != nil {
			return nil, fmt.Errorf("chstore: read: %w", err)
		}
		var r approval.Record
		if err := json.Unmarshal([]byte(text), &r); err != nil {
			continue
		}
		out = append(out, r)
	}
	return out, rows.Err()
}

// Submit stores a ruling for the holder to apply.
func (s *Store) Submit(ctx context.Context, r approval.Ruling) error {
	b, err := json.Marshal(r)
	if err != nil {
		return err
	}
	if err := s.ensure(ctx); err != nil {
		return err
	}
	batch, err := s.conn.PrepareBatch(ctx, fmt.Sprintf("INSERT INTO %s.approval_rulings (approval_id, ruling_id, at, ruling)", s.db))
	if err != nil {
		return unavailable("submit", err)
	}
	defer batch.Abort()
	if err := batch.Append(r.ApprovalID, r.ID, r.At, string(b)); err != nil {
		return fmt.Errorf("chstore: submit: %w", err)
	}
	if err := batch.Send(); err != nil {
		return unavailable("submit", err)
	}
	return nil
}

// uuid is the form of approval IDs; anything else never reaches SQL.
var uuid = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$`)

// Rulings reads the rulings for the given approvals.
func (s *Store) Rulings(ctx context.Context, ids []string) ([]approval.Ruling, error) {
	quoted := make([]string, 0, len(ids))
	for _, id := range ids {
		if uuid.MatchString(id) {
			quoted = append(quoted, "'"+id+"'")
		}
	}
	if len(quoted) == 0 {
		return nil, nil
	}
	if err := s.ensure(ctx); err != nil {
		return nil, err
	}
	q := fmt.Sprintf("SELECT ruling FROM %s.approval_rulings FINAL WHERE approval_id IN (%s)", s.db, strings.Join(quoted, ", "))
	rows, err := s.conn.Query(ctx, q)
	if err != nil {
		return nil, unavailable("rulings", err)
	}
	defer rows.Close()
	var out []approval.Ruling
	for rows.Next() {
		var text string
		if err := rows.Scan(&text); err != nil {
			return nil, fmt.Errorf("chstore: rulings: %w", err)
		}
		var r approval.Ruling
		if json.Unmarshal([]byte(text), &r) == nil {
			out = append(out, r)
		}
	}
	return out, rows.Err()
}

// Close releases the connection.
func (s *Store) Close() error { return s.conn.Close() }
