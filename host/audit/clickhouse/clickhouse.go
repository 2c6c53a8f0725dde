// Package clickhouse is the audit store on a ClickHouse server or cluster,
// through clickhouse-go's native protocol (its HTTP protocol sends settings
// that 18.16 does not know). It applies the schema from package schema,
// inserts rows one batch per call, and answers read-only analyst SQL.
//
// Delivery is at least once: a failed Insert may have written its rows
// (ClickHouse writes a block whole or not at all, but the answer can be
// lost), so the caller retries the same rows, and the schema makes a
// replay harmless (see package schema).
package clickhouse

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	ch "github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/tollgate-dev/tollgate/host/audit"
	"github.com/tollgate-dev/tollgate/host/audit/schema"
	"github.com/tollgate-dev/tollgate/host/audit/trail"
)

// Options say where the server is.
type Options struct {
	Addrs    []string // native protocol host:port, e.g. 127.0.0.1:9000
	Database string   // default "tollgate"
	User     string   // default "default"
	Password string
	TLS      *tls.Config // nil: plain TCP
	// Cluster, when set, is a cluster in the servers' remote_servers: ON
	// CLUSTER DDL, replicated tables behind Distributed ones, inserts
	// that wait for every shard (README, "Audit on a ClickHouse
	// cluster"). Addrs then lists its nodes, for failover.
	Cluster string
}

// Store writes audit rows to ClickHouse and reads them back for analysts.
type Store struct {
	o    Options
	conn driver.Conn
	db   string

	// The schema is applied once per process, by the first call that
	// finds the server up (Open at once; Connect's store at its first
	// use), so that a gateway can start while ClickHouse is down.
	mu      sync.Mutex
	ready   bool
	version string // the server's, from SELECT version()
	read    ch.Settings
	write   ch.Settings
}

// Open connects, applies the schema (idempotent) and records its version.
// It fails when the server does not answer: for the CLI, which has
// nothing to do without it.
func Open(ctx context.Context, o Options) (*Store, error) {
	s, err := Connect(o)
	if err != nil {
		return nil, err
	}
	if err := s.Ping(ctx); err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

// Connect returns a store without talking to the server: connections are
// dialled when used, and the schema is applied by the first Insert, Query
// or Ping that reaches the server. The gateway uses it so that it starts
// during an outage; its rows wait in the spool meanwhile.
func Connect(o Options) (*Store, error) {
	if len(o.Addrs) == 0 {
		return nil, errors.New("clickhouse: no server address")
	}
	if o.Database == "" {
		o.Database = "tollgate"
	}
	if o.User == "" {
		o.User = "default"
	}
	// Both go into DDL and queries as they are.
	if !trail.Identifier(o.Database) {
		return nil, fmt.Errorf("clickhouse: database %q is not a plain identifier ([A-Za-z_][A-Za-z0-9_]*)", o.Database)
	}
	if o.Cluster != "" && !trail.Identifier(o.Cluster) {
		return nil, fmt.Errorf("clickhouse: cluster %q is not a plain identifier ([A-Za-z_][A-Za-z0-9_]*)", o.Cluster)
	}
	// clickhouse-go dials lazily: this does not touch the network.
	conn, err := connect(o, o.Database)
	if err != nil {
		return nil, err
	}
	return &Store{o: o, conn: conn, db: o.Database}, nil
}

// Ping applies the schema if it was not yet, and checks that the server
// answers. An error means the server is unreachable or refused the DDL.
func (s *Store) Ping(ctx context.Context) error {
	if err := s.ensureSchema(ctx); err != nil {
		return err
	}
	if err := s.conn.Ping(ctx); err != nil {
		return fmt.Errorf("clickhouse: ping: %w", err)
	}
	return nil
}

// ensureSchema applies the DDL the first time the server answers.
func (s *Store) ensureSchema(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ready {
		return nil
	}
	// The database may not exist yet, and a connection that names a
	// missing database fails its handshake: apply the DDL on a first
	// connection to "default"; the store's own connections are dialled
	// afterwards.
	boot, err := connect(s.o, "default")
	if err != nil {
		return err
	}
	defer boot.Close()
	version, err := serverVersion(ctx, boot)
	if err != nil {
		return err
	}
	if err := migrate(ctx, boot, s.o, version); err != nil {
		return err
	}
	s.ready, s.version = true, version
	s.read, s.write = clusterSettings(s.o.Cluster, version)
	return nil
}

// clusterSettings are the settings of reads and inserts on a cluster.
//
// Inserts wait for every shard (insert_distributed_sync): an
// acknowledged batch is on the shards that own its sessions, not in a
// node's Distributed queue, so a row leaves the gateway's spool only once
// it is where analysts read it, and a shard that is down makes the batch
// wait in the spool (the part that reached the other shard collapses
// when the batch is replayed).
//
// Reads on 18.x go to every shard over the network
// (prefer_localhost_replica=0): 18.16 reading its own shard in-process
// with FINAL fails with "Cannot find column ... in source stream" unless
// the query selects every sorting key and version column.
func clusterSettings(cluster, version string) (read, write ch.Settings) {
	read, write = ch.Settings{"readonly": 1}, ch.Settings{}
	if cluster == "" {
		return read, write
	}
	write["insert_distributed_sync"] = 1
	if major(version) < 19 {
		read["prefer_localhost_replica"] = 0
	}
	return read, write
}

func connect(o Options, db string) (driver.Conn, error) {
	conn, err := ch.Open(&ch.Options{
		Addr:        o.Addrs,
		Protocol:    ch.Native,
		TLS:         o.TLS,
		Auth:        ch.Auth{Database: db, Username: o.User, Password: o.Password},
		Compression: &ch.Compression{Method: ch.CompressionLZ4},
		DialTimeout: 10 * time.Second,
	})
	if err != nil {
		return nil, fmt.Errorf("clickhouse: connect: %w", err)
	}
	return conn, nil
}

// ServerVersion is what the server answered to SELECT version(); empty
// until the store first reached the server.
func (s *Store) ServerVersion() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.version
}

func serverVersion(ctx context.Context, conn driver.Conn) (string, error) {
	var v string
	if err := conn.QueryRow(ctx, "SELECT version()").Scan(&v); err != nil {
		return "", fmt.Errorf("clickhouse: server version: %w", err)
	}
	return v, nil
}

// major is the first number of a version string ("18.16.1" -> 18).
func major(version string) int {
	n, _ := strconv.Atoi(strings.SplitN(version, ".", 2)[0])
	return n
}

// migrate runs the DDL and records schema.Version once. SET statements
// become per-query settings: the pool may run each statement on a
// different connection, so a session SET would not reliably apply.
//
// On a cluster the DDL is skipped when schema_version (replicated to
// every node) already holds this version: ON CLUSTER DDL waits for every
// node (distributed_ddl_task_timeout, 180 s by default), so a gateway
// restarting while a shard is down would otherwise stall its first insert
// that long, where it can go on spooling and retrying at once.
func migrate(ctx context.Context, conn driver.Conn, o Options, version string) error {
	if o.Cluster != "" {
		var have uint32
		q := fmt.Sprintf("SELECT max(version) FROM %s.schema_version", o.Database)
		if err := conn.QueryRow(ctx, q).Scan(&have); err == nil && have == schema.Version {
			return nil
		}
	}
	settings := ch.Settings{}
	for _, stmt := range schema.Statements(schema.Options{
		Database: o.Database, Cluster: o.Cluster, LowCardinalitySetting: major(version) < 19,
	}) {
		if k, v, ok := parseSet(stmt); ok {
			if n, err := strconv.Atoi(v); err == nil {
				settings[k] = n // the driver sends a Go string as a String setting
			} else {
				settings[k] = v
			}
			continue
		}
		if err := conn.Exec(ch.Context(ctx, ch.WithSettings(settings)), stmt); err != nil {
			return fmt.Errorf("clickhouse: schema: %w\n%s", err, stmt)
		}
	}
	var have uint32
	q := fmt.Sprintf("SELECT max(version) FROM %s.schema_version", o.Database)
	if err := conn.QueryRow(ctx, q).Scan(&have); err != nil {
		return fmt.Errorf("clickhouse: schema version: %w", err)
	}
	switch {
	case have > schema.Version:
		return fmt.Errorf("clickhouse: the database holds schema version %d, newer than this gateway's %d; upgrade the gateway", have, schema.Version)
	case have == schema.Version:
		return nil
	}
	b, err := conn.PrepareBatch(ctx, fmt.Sprintf("INSERT INTO %s.schema_version (version, applied_at)", o.Database))
	if err == nil {
		err = b.Append(uint32(schema.Version), time.Now())
	}
	if err == nil {
		err = b.Send()
	}
	if err != nil {
		return fmt.Errorf("clickhouse: record schema version: %w", err)
	}
	return nil
}

func parseSet(stmt string) (key, value string, ok bool) {
	rest, ok := strings.CutPrefix(stmt, "SET ")
	if !ok {
		return "", "", false
	}
	key, value, ok = strings.Cut(rest, "=")
	return strings.TrimSpace(key), strings.TrimSpace(value), ok
}

// Insert writes rows as one block into events (all or none); the
// schema's materialized view derives the sessions table from them. An
// error means "retry these rows": a retry of rows that did arrive is
// collapsed.
func (s *Store) Insert(ctx context.Context, rows []audit.Row) error {
	if len(rows) == 0 {
		return nil
	}
	if err := s.ensureSchema(ctx); err != nil {
		return fmt.Errorf("clickhouse: insert: %w", err)
	}
	b, err := s.conn.PrepareBatch(ch.Context(ctx, ch.WithSettings(s.write)), schema.InsertEvents(s.db))
	if err != nil {
		return fmt.Errorf("clickhouse: insert: %w", err)
	}
	defer b.Abort()
	// Column by column: appending row by row boxed every value and cost
	// a third of the insert's CPU.
	var enc encoder
	types := b.Columns() // as the server declared them
	for i, col := range schema.Columnar(rows) {
		lowCard := i < len(types) && strings.HasPrefix(string(types[i].Type()), "LowCardinality(")
		if err := enc.appendColumn(b.Column(i), col, lowCard); err != nil {
			return fmt.Errorf("clickhouse: insert: column %s: %w", schema.Columns()[i], err)
		}
	}
	if err := b.Send(); err != nil {
		return fmt.Errorf("clickhouse: insert: %w", err)
	}
	return nil
}

// noStrings is an empty array, boxed once.
var noStrings any = []*string{}

// encoder hands one batch's columns to clickhouse-go with as few heap
// allocations as its API allows: clickhouse-go boxes every value it is
// given as a string (an allocation each), but not a pointer.
type encoder struct {
	ptrs  []*string      // carved per Array(String) row
	boxes map[string]any // LowCardinality values, boxed once per batch
}

// appendColumn appends one column of a batch.
//
// An Array(String) row is appended as []*string: clickhouse-go takes a
// []string element by element as a boxed string, a *string as it is,
// and a whole [][]string through reflect. A LowCardinality(String)
// column is appended value by value, each distinct value boxed once:
// the column's Append boxes every value through reflect, and its
// dictionary is keyed by the boxed value anyway.
func (e *encoder) appendColumn(c driver.BatchColumn, col any, lowCard bool) error {
	switch col := col.(type) {
	case [][]string:
		return e.appendArrays(c, col)
	case []string:
		if lowCard {
			return e.appendLowCardinality(c, col)
		}
	}
	return c.Append(col)
}

func (e *encoder) appendArrays(c driver.BatchColumn, arrays [][]string) error {
	n := 0
	for _, a := range arrays {
		n += len(a)
	}
	if cap(e.ptrs)-len(e.ptrs) < n {
		e.ptrs = make([]*string, 0, n)
	}
	// A row whose array equals the row before's (the same request keys,
	// a session's claims) passes that row's box again: boxing a slice
	// allocates.
	var (
		prev    []string
		prevBox any = noStrings
	)
	for _, a := range arrays {
		if !slices.Equal(a, prev) {
			at := len(e.ptrs)
			for j := range a {
				e.ptrs = append(e.ptrs, &a[j])
			}
			prev, prevBox = a, e.ptrs[at:len(e.ptrs):len(e.ptrs)]
		}
		if err := c.AppendRow(prevBox); err != nil {
			return err
		}
	}
	return nil
}

func (e *encoder) appendLowCardinality(c driver.BatchColumn, values []string) error {
	if e.boxes == nil {
		e.boxes = make(map[string]any)
	}
	var (
		prev    string
		prevBox any
	)
	for i, v := range values {
		if i == 0 || v != prev {
			box, ok := e.boxes[v]
			if !ok {
				box = v
				e.boxes[v] = box
			}
			prev, prevBox = v, box
		}
		if err := c.AppendRow(prevBox); err != nil {
			return err
		}
	}
	return nil
}

// Close releases the connections.
func (s *Store) Close() error { return s.conn.Close() }

// readOnlyPrefixes are the statements Query runs; the server enforces
// the rest with readonly=1.
// ErrNotReadOnly is returned by Query for anything but a read.
var ErrNotReadOnly = errors.New("clickhouse: query: only SELECT, SHOW, DESCRIBE, EXISTS and WITH are allowed")

// Query runs one read-only analyst statement and returns its result as
// text: times in UTC RFC 3339, arrays as JSON, NULL as "NULL".
func (s *Store) Query(ctx context.Context, sql string, args ...any) (cols []string, rows [][]string, err error) {
	if !schema.ReadOnly(sql) {
		return nil, nil, ErrNotReadOnly
	}
	if err := s.ensureSchema(ctx); err != nil {
		return nil, nil, err
	}
	r, err := s.conn.Query(ch.Context(ctx, ch.WithSettings(s.read)), sql, args...)
	if err != nil {
		return nil, nil, fmt.Errorf("clickhouse: query: %w", err)
	}
	defer r.Close()
	cols = r.Columns()
	types := r.ColumnTypes()
	dest := make([]any, len(types))
	for r.Next() {
		for i, t := range types {
			dest[i] = reflect.New(t.ScanType()).Interface()
		}
		if err := r.Scan(dest...); err != nil {
			return nil, nil, fmt.Errorf("clickhouse: query: %w", err)
		}
		row := make([]string, len(dest))
		for i, d := range dest {
			row[i] = text(reflect.ValueOf(d).Elem().Interface())
		}
		rows = append(rows, row)
	}
	if err := r.Err(); err != nil {
		return nil, nil, fmt.Errorf("clickhouse: query: %w", err)
	}
	return cols, rows, nil
}

func text(v any) string {
	rv := reflect.ValueOf(v)
	if rv.Kind() == reflect.Pointer {
		if rv.IsNil() {
			return "NULL"
		}
		return text(rv.Elem().Interface())
	}
	switch x := v.(type) {
	case string:
		return x
	case time.Time:
		return x.UTC().Format(time.RFC3339)
	case fmt.Stringer:
		return x.String()
	case []byte:
		return string(x)
	}
	if rv.Kind() == reflect.Slice || rv.Kind() == reflect.Map {
		b, err := json.Marshal(v)
		if err == nil {
			return string(b)
		}
	}
	return fmt.Sprint(v)
}
