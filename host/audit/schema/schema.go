// Package schema is the audit schema for ClickHouse, as Go: the DDL, the
// events column list and the conversion of an audit.Row into that list's
// values. The ClickHouse store and the embedded (chDB) store share it, so
// the same analyst SQL works on both.
//
// Every type is one that every ClickHouse since 18.16 accepts (the server
// tests can install here) and current releases still accept: DateTime
// plus a microseconds column instead of DateTime64, parallel key/value
// arrays instead of Map, LowCardinality(String) (which needs a setting at
// CREATE time before 19.x), no CODEC, no TTL.
//
// Decisions:
//
//   - Absent values are ” and 0, never NULL: a Row has no pointer fields,
//     so its zero values round-trip exactly, and analysts compare with =
//     without three-valued logic. No column is Nullable.
//   - prev_hash and row_hash are String holding the Row's hex text, not
//     FixedString(32) of the raw bytes. The store must never refuse a row
//     for its content: a row it cannot convert would sit in the spool and
//     be retried forever. Hex also reads the same in SQL as in `gateway
//     audit verify` output. The cost is 64 bytes per row.
//   - events is a ReplacingMergeTree(ingested_at) whose sorting key holds
//     the event's identity (session_id, seq, event_id) and otherwise only
//     columns of the event itself (target, ts), so a replayed batch
//     (delivery is at least once) collapses at merge time and `FROM events
//     FINAL` shows each event once before that. Replays are identical, so
//     which copy survives does not matter; ingested_at records when it
//     arrived. A row that claims the same (session_id, seq) with another
//     event_id is NOT collapsed: the chain check must see the conflict.
//   - The sorting key leads with (target, ts) and that pair is the primary
//     index: most forensic questions are "on this target, in this window",
//     and a time window alone still prunes because target has few values.
//     A session's rows (whose close row has no target) are found by
//     session_id plus the session's time range from the sessions table.
//   - Checkpoints (audit.KindCheckpoint) are events rows too, with no
//     column of their own: session_id is the gateway run, seq the
//     checkpoint's number, status start/interval/final, and the list of
//     chains it covers sits in request_keys/request_values. So they share
//     the spool, the insert and 18.16's types, and the sessions view
//     (open and close rows only) never sees them.
//   - Replicated tables are sharded by the session (cityHash64 of its
//     text, 18.16 cannot hash a UUID): a session's rows and every replay
//     of them land on one shard, where they can collapse.
package schema

import (
	"crypto/sha256"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/tollgate-dev/tollgate/host/audit"
)

// Version is the schema version this code writes. Bump it with any
// change to the DDL and say here what changed.
//
//	1: events, sessions, schema_version
//	2: sessions_mv; the stores no longer write sessions themselves
//	3: recordings and recordings_mv (session recordings, in chunks)
const Version = 3

// Options select the DDL's variant.
type Options struct {
	Database string // default "tollgate"
	// Cluster, when set, creates ON CLUSTER replicated local tables
	// (<name>_local) and Distributed tables with the analyst-facing names.
	Cluster string
	// LowCardinalitySetting is for servers older than 19: the statements
	// then begin with the SET that lets CREATE use LowCardinality. Newer
	// servers reject that setting as unknown.
	LowCardinalitySetting bool
}

// LowCardinalitySet is the statement that Statements begins with when
// Options.LowCardinalitySetting is true. Run the statements in order on
// one session (or pass the setting with each one).
const LowCardinalitySet = "SET allow_experimental_low_cardinality_type = 1"

// identity columns shared by events and sessions.
const identityColumns = `    gateway_id LowCardinality(String),
    protocol LowCardinality(String),
    listener LowCardinality(String),
    target LowCardinality(String),
    remote_addr String,
    issuer LowCardinality(String),
    subject String,
    email String,
    groups Array(String),
    claim_keys Array(String),
    claim_values Array(String)`

// Statements returns the idempotent DDL in the order it must run.
func Statements(o Options) []string {
	db := o.Database
	if db == "" {
		db = "tollgate"
	}
	var out []string
	if o.LowCardinalitySetting {
		out = append(out, LowCardinalitySet)
	}
	on := ""
	if o.Cluster != "" {
		on = " ON CLUSTER " + o.Cluster
	}
	out = append(out, fmt.Sprintf("CREATE DATABASE IF NOT EXISTS %s%s", db, on))

	// table emits one table: a plain one, or on a cluster a replicated
	// local table plus a Distributed one under the plain name.
	table := func(name, columns, engine, args, rest, shardBy, zkPath string) {
		if o.Cluster == "" {
			out = append(out, fmt.Sprintf("CREATE TABLE IF NOT EXISTS %s.%s\n(\n%s\n)\nENGINE = %s(%s)\n%s",
				db, name, columns, engine, args, rest))
			return
		}
		local := name + "_local"
		if shardBy == "" {
			local = name // not sharded: no Distributed table in front
		}
		if zkPath == "" {
			zkPath = fmt.Sprintf("/clickhouse/tables/{shard}/%s/%s", db, local)
		}
		rargs := fmt.Sprintf("'%s', '{replica}'", zkPath)
		if args != "" {
			rargs += ", " + args
		}
		out = append(out, fmt.Sprintf("CREATE TABLE IF NOT EXISTS %s.%s%s\n(\n%s\n)\nENGINE = Replicated%s(%s)\n%s",
			db, local, on, columns, engine, rargs, rest))
		if shardBy != "" {
			out = append(out, fmt.Sprintf("CREATE TABLE IF NOT EXISTS %s.%s%s AS %s.%s_local\nENGINE = Distributed(%s, %s, %s_local, %s)",
				db, name, on, db, name, o.Cluster, db, name, shardBy))
		}
	}

	// schema_version: one row per version applied. On a cluster every
	// node is a replica of one table (no {shard} in the path) under the
	// plain name, so each node sees the version without a Distributed
	// table.
	table("schema_version", `    version UInt32,
    applied_at DateTime DEFAULT now()`,
		"ReplacingMergeTree", "", "ORDER BY version", "",
		fmt.Sprintf("/clickhouse/tables/all/%s/schema_version", db))

	// events: one row per audit.Row, columns in Columns() order, then
	// ingested_at, which the server fills.
	table("events", `    ts DateTime,
    ts_us UInt32,
    event_id UUID,
    session_id UUID,
    seq UInt64,
    kind LowCardinality(String),
`+identityColumns+`,
    access_rule LowCardinality(String),
    request_keys Array(String),
    request_values Array(String),
    verdict LowCardinality(String),
    plugin LowCardinality(String),
    reason String,
    annotation_keys Array(String),
    annotation_values Array(String),
    status String,
    request_bytes Int64,
    response_bytes Int64,
    duration_us Int64,
    error String,
    approval_id String,
    approver String,
    prev_hash String,
    row_hash String,
    signature String,
    ingested_at DateTime DEFAULT now()`,
		"ReplacingMergeTree", "ingested_at",
		"PARTITION BY toYYYYMM(ts)\nPRIMARY KEY (target, ts)\nORDER BY (target, ts, session_id, seq, event_id)",
		"cityHash64(toString(session_id))", "")

	// sessions: one row per session, written at open and rewritten at
	// close, by the materialized view below. The version is the seq of the
	// row that wrote it, so a late replay of the open row cannot hide the
	// close. Unpartitioned: a session spans months, and replacing only
	// works within a partition; the table is small.
	table("sessions", `    session_id UUID,
`+identityColumns+`,
    opened_at DateTime,
    opened_us UInt32,
    closed UInt8,
    closed_at DateTime,
    closed_us UInt32,
    status String,
    duration_us Int64,
    last_seq UInt64`,
		"ReplacingMergeTree", "last_seq", "ORDER BY session_id",
		"cityHash64(toString(session_id))", "")

	// sessions_mv derives the sessions table from the open and close rows
	// as the server stores them, so a store's insert is one block and
	// never reads back (a read-merge-write cost a third of the insert
	// rate). It works because a close row repeats the open row's identity
	// and target (audit.CloseRow) and its duration is exact to the
	// microsecond: the opening time is ts minus duration_us. On a cluster
	// the view sits on each shard's events_local and writes that shard's
	// sessions_local: a session's rows share a shard. closed is a CAST
	// because on 18.16 comparing a LowCardinality column gives
	// LowCardinality(UInt8), which the UInt8 column refuses (toUInt8
	// keeps the LowCardinality).
	events, sessions := "events", "sessions"
	if o.Cluster != "" {
		events, sessions = "events_local", "sessions_local"
	}
	const isClose = "kind = 'session.close'"
	const openedMicros = "toInt64(toUInt32(ts)) * 1000000 + ts_us - if(" + isClose + ", duration_us, 0)"
	out = append(out, fmt.Sprintf(`CREATE MATERIALIZED VIEW IF NOT EXISTS %s.sessions_mv%s TO %s.%s
AS SELECT
    session_id,
    gateway_id, protocol, listener, target, remote_addr,
    issuer, subject, email, groups, claim_keys, claim_values,
    toDateTime(intDiv(%s, 1000000)) AS opened_at,
    toUInt32((%s) %% 1000000) AS opened_us,
    CAST(%s AS UInt8) AS closed,
    if(%s, ts, toDateTime(0)) AS closed_at,
    if(%s, ts_us, toUInt32(0)) AS closed_us,
    status,
    duration_us,
    seq AS last_seq
FROM %s.%s
WHERE kind IN ('session.open', 'session.close')`, db, on, db, sessions, openedMicros, openedMicros, isClose, isClose, isClose, db, events))

	// recordings: one row per chunk of a session's terminal recording
	// (audit.KindRecording rows; host/audit/cast), derived from events by
	// recordings_mv as sessions is. A session's chunks ordered by seq
	// concatenate to an asciicast v2 file: chunk 0 begins with the
	// header line. A chunk recorded in minimal form (the spool was full:
	// its events were cut) is left out, and its missing chunk number is
	// the gap replay reports. seq is the row's place in the session's
	// chain, as in events, where `audit verify` checks the chunk.
	table("recordings", `    session_id UUID,
    seq UInt64,
    chunk UInt32,
    ts DateTime,
    ts_us UInt32,
    events String`,
		"ReplacingMergeTree", "", "PARTITION BY toYYYYMM(ts)\nORDER BY (session_id, seq)",
		"cityHash64(toString(session_id))", "")
	recordings := "recordings"
	if o.Cluster != "" {
		recordings = "recordings_local"
	}
	out = append(out, fmt.Sprintf(`CREATE MATERIALIZED VIEW IF NOT EXISTS %s.recordings_mv%s TO %s.%s
AS SELECT
    session_id,
    seq,
    toUInt32OrZero(request_values[indexOf(request_keys, 'chunk')]) AS chunk,
    ts,
    ts_us,
    request_values[indexOf(request_keys, 'events')] AS events
FROM %s.%s
WHERE kind = '%s' AND NOT has(annotation_keys, '%s')`, db, on, db, recordings, db, events, audit.KindRecording, audit.AnnotationSpoolFull))
	return out
}

// columns is the events insert list; Values follows it.
var columns = []string{
	"ts", "ts_us", "event_id", "session_id", "seq", "kind",
	"gateway_id", "protocol", "listener", "target", "remote_addr",
	"issuer", "subject", "email", "groups", "claim_keys", "claim_values",
	"access_rule", "request_keys", "request_values",
	"verdict", "plugin", "reason", "annotation_keys", "annotation_values",
	"status", "request_bytes", "response_bytes", "duration_us", "error",
	"approval_id", "approver", "prev_hash", "row_hash", "signature",
}

// Columns is the events column list in insert order (ingested_at is left
// to its default).
func Columns() []string { return append([]string(nil), columns...) }

// InsertEvents is the INSERT head for db.events with the explicit column
// list (clickhouse-go needs it).
func InsertEvents(db string) string {
	return fmt.Sprintf("INSERT INTO %s.events (%s)", db, strings.Join(columns, ", "))
}

// Values is r as Append arguments in Columns() order. Maps become sorted
// parallel arrays, so a replay of a row stores identical arrays.
func Values(r audit.Row) []any {
	ck, cv := Pairs(r.Claims)
	rk, rv := Pairs(r.Request)
	ak, av := Pairs(r.Annotations)
	ts, us := Split(r.Time)
	return []any{
		ts, us, uuidColumn(r.EventID), uuidColumn(r.SessionID), r.Seq, r.Kind,
		r.GatewayID, r.Protocol, r.Listener, r.Target, r.RemoteAddr,
		r.Issuer, r.Subject, r.Email, nonNil(r.Groups), ck, cv,
		r.AccessRule, rk, rv,
		r.Verdict, r.Plugin, r.Reason, ak, av,
		r.Status, r.RequestBytes, r.ResponseBytes, r.DurationMicro, r.Error,
		r.ApprovalID, r.Approver, r.PrevHash, r.RowHash, r.Signature,
	}
}

// Columnar is rows as one slice per column, in Columns() order, for a
// driver's column-wise append: it boxes nothing per value, which row-wise
// Values does (35 interface values per row). Each element equals the
// corresponding element of Values.
func Columnar(rows []audit.Row) []any {
	n := len(rows)
	var (
		ts                            = make([]time.Time, n)
		us                            = make([]uint32, n)
		seq                           = make([]uint64, n)
		str                           [24][]string
		arr                           [9][][]string
		reqBytes, respBytes, duration = make([]int64, n), make([]int64, n), make([]int64, n)
	)
	for i := range str {
		str[i] = make([]string, n)
	}
	for i := range arr {
		arr[i] = make([][]string, n)
	}
	// Every map's keys and values are carved from one arena: a batch
	// allocates it once instead of two slices per map per row.
	size := 0
	for i := range rows {
		size += 2 * (len(rows[i].Claims) + len(rows[i].Request) + len(rows[i].Annotations))
	}
	arena := make([]string, 0, size)
	for i := range rows {
		r := &rows[i]
		ts[i], us[i] = Split(r.Time)
		seq[i] = r.Seq
		for j, v := range [...]string{uuidColumn(r.EventID), uuidColumn(r.SessionID), r.Kind, r.GatewayID, r.Protocol, r.Listener, r.Target, r.RemoteAddr,
			r.Issuer, r.Subject, r.Email, r.AccessRule, r.Verdict, r.Plugin, r.Reason, r.Status, r.Error,
			r.ApprovalID, r.Approver, r.PrevHash, r.RowHash, r.Signature} {
			str[j][i] = v
		}
		arr[0][i] = nonNil(r.Groups)
		arr[1][i], arr[2][i], arena = appendPairs(arena, r.Claims)
		arr[3][i], arr[4][i], arena = appendPairs(arena, r.Request)
		arr[5][i], arr[6][i], arena = appendPairs(arena, r.Annotations)
		reqBytes[i], respBytes[i], duration[i] = r.RequestBytes, r.ResponseBytes, r.DurationMicro
	}
	return []any{
		ts, us, str[0], str[1], seq, str[2],
		str[3], str[4], str[5], str[6], str[7],
		str[8], str[9], str[10], arr[0], arr[1], arr[2],
		str[11], arr[3], arr[4],
		str[12], str[13], str[14], arr[5], arr[6],
		str[15], reqBytes, respBytes, duration, str[16],
		str[17], str[18], str[19], str[20], str[21],
	}
}

// uuidColumn is s for a UUID column. A row must never be refused for its
// content (it would sit in the spool, retried forever, until the spool
// fills and the gateway refuses all work), so an ID that is not a UUID is
// stored as one derived from its text: stable, so replays still collapse.
// Protocols always write UUIDs; this guards the trail against a bug.
func uuidColumn(s string) string {
	if audit.IsID(s) {
		return s
	}
	h := sha256.Sum256([]byte(s))
	h[6] = h[6]&0x0f | 0x50
	h[8] = h[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", h[0:4], h[4:6], h[6:8], h[8:10], h[10:16])
}

// Split is t as (whole seconds, microseconds) for ts and ts_us.
func Split(t time.Time) (time.Time, uint32) {
	return t.Truncate(time.Second), uint32(t.Nanosecond() / 1000)
}

// Join reverses Split.
func Join(ts time.Time, us uint32) time.Time {
	return ts.Add(time.Duration(us) * time.Microsecond)
}

// Pairs is m as parallel key and value arrays, by key.
func Pairs(m map[string]string) (keys, values []string) {
	keys, values, _ = appendPairs(make([]string, 0, 2*len(m)), m)
	return keys, values
}

// appendPairs is Pairs with keys and values carved from arena, which
// must have room for 2*len(m) more strings.
func appendPairs(arena []string, m map[string]string) (keys, values, rest []string) {
	at := len(arena)
	for k := range m {
		arena = append(arena, k)
	}
	keys = arena[at:len(arena):len(arena)]
	sort.Strings(keys)
	for _, k := range keys {
		arena = append(arena, m[k])
	}
	values = arena[at+len(keys) : len(arena) : len(arena)]
	return keys, values, arena
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}
