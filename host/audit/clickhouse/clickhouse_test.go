package clickhouse

import (
	"context"
	"encoding/json"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tollgate-dev/tollgate/host/audit"
	"github.com/tollgate-dev/tollgate/host/audit/audittest"
	"github.com/tollgate-dev/tollgate/host/audit/schema"
	"github.com/tollgate-dev/tollgate/internal/testenv"
)

func openStore(t testing.TB, srv *testenv.ClickHouse) *Store {
	t.Helper()
	s, err := Open(context.Background(), Options{Addrs: []string{srv.Addr()}, Database: "audit"})
	if err != nil {
		t.Fatalf("Open: %v\n%s", err, srv.Output())
	}
	t.Cleanup(func() { s.Close() })
	return s
}

var query = audittest.Query

func TestSchemaAppliesTwice(t *testing.T) {
	srv := testenv.StartClickHouse(t)
	s := openStore(t, srv)
	if major(s.ServerVersion()) != 18 {
		t.Logf("server %s (the tests are written for 18.16)", s.ServerVersion())
	}
	openStore(t, srv) // idempotent: every statement again, the version once
	audittest.CheckSchema(t, s, schema.Version)
}

func TestQueryIsReadOnly(t *testing.T) {
	srv := testenv.StartClickHouse(t)
	s := openStore(t, srv)
	for _, q := range []string{"INSERT INTO events (seq) VALUES (1)", "DROP TABLE events", "SELECTX 1", "  optimize table events"} {
		if _, _, err := s.Query(context.Background(), q); err == nil {
			t.Errorf("%q ran", q)
		}
	}
	// The prefix check passes this; readonly=1 on the server stops it.
	if _, _, err := s.Query(context.Background(), "SELECT 1; DROP TABLE events"); err == nil {
		t.Error("multi-statement ran")
	}
	// The server runs analyst SQL with readonly=1: not even a setting
	// may change.
	if _, _, err := s.Query(context.Background(), "SELECT 1 SETTINGS max_threads = 1"); err == nil || !strings.Contains(err.Error(), "readonly") {
		t.Errorf("readonly=1 not in force: %v", err)
	}
	if got := query(t, s, "SELECT count() FROM system.tables WHERE database = 'audit' AND name = 'events'"); got[0][0] != "1" {
		t.Fatal("events was dropped")
	}
}

const selectAll = `SELECT event_id, ts, ts_us, gateway_id, session_id, seq, protocol, listener, target, kind,
	remote_addr, issuer, subject, email, groups, claim_keys, claim_values, access_rule,
	request_keys, request_values, verdict, plugin, reason, annotation_keys, annotation_values,
	status, request_bytes, response_bytes, duration_us, error, approval_id, approver, prev_hash, row_hash
FROM events FINAL`

// rowFromText rebuilds a Row from a selectAll result, the way an analyst
// tool reading Query's text would.
func rowFromText(t *testing.T, v []string) audit.Row {
	t.Helper()
	arr := func(s string) []string {
		var out []string
		if err := json.Unmarshal([]byte(s), &out); err != nil {
			t.Fatalf("array %q: %v", s, err)
		}
		return out
	}
	kv := func(k, v string) map[string]string {
		ks, vs := arr(k), arr(v)
		if len(ks) == 0 {
			return nil
		}
		m := map[string]string{}
		for i := range ks {
			m[ks[i]] = vs[i]
		}
		return m
	}
	num := func(s string) int64 {
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	ts, err := time.Parse(time.RFC3339, v[1])
	if err != nil {
		t.Fatal(err)
	}
	r := audit.Row{
		EventID: v[0], Time: schema.Join(ts, uint32(num(v[2]))), GatewayID: v[3], SessionID: v[4], Seq: uint64(num(v[5])),
		Protocol: v[6], Listener: v[7], Target: v[8], Kind: v[9], RemoteAddr: v[10], Issuer: v[11], Subject: v[12], Email: v[13],
		Groups: arr(v[14]), Claims: kv(v[15], v[16]), AccessRule: v[17], Request: kv(v[18], v[19]),
		Verdict: v[20], Plugin: v[21], Reason: v[22], Annotations: kv(v[23], v[24]), Status: v[25],
		RequestBytes: num(v[26]), ResponseBytes: num(v[27]), DurationMicro: num(v[28]), Error: v[29],
		ApprovalID: v[30], Approver: v[31], PrevHash: v[32], RowHash: v[33],
	}
	if len(r.Groups) == 0 {
		r.Groups = nil
	}
	return r
}

func TestRoundTripAndReplay(t *testing.T) {
	srv := testenv.StartClickHouse(t)
	s := openStore(t, srv)
	ctx := context.Background()
	batch, bare := audittest.RoundTripBatch()
	if err := s.Insert(ctx, batch); err != nil {
		t.Fatal(err)
	}
	if err := s.Insert(ctx, batch); err != nil { // a replay of the whole batch
		t.Fatal(err)
	}
	got := query(t, s, selectAll+" ORDER BY session_id, seq")
	if n := query(t, s, "SELECT count() FROM events")[0][0]; n != strconv.Itoa(2*len(batch)) {
		t.Logf("before merging the table holds %s rows (both copies)", n)
	}
	var back []audit.Row
	for _, v := range got {
		back = append(back, rowFromText(t, v))
	}
	// FINAL shows each event once, and the chains survive the trip.
	audittest.CheckRoundTrip(t, batch, back, bare)

	audittest.CheckSessions(t, s, batch, 3)
}

// A close row delivered before its open row still ends as one closed
// session: the open row's later arrival (a lower seq) does not replace it.
func TestSessionsOutOfOrder(t *testing.T) {
	srv := testenv.StartClickHouse(t)
	s := openStore(t, srv)
	rows := audittest.SessionRows(time.Now(), "orders-db", "r", 3)
	ctx := context.Background()
	if err := s.Insert(ctx, rows[2:]); err != nil {
		t.Fatal(err)
	}
	if err := s.Insert(ctx, rows[:2]); err != nil {
		t.Fatal(err)
	}
	got := query(t, s, "SELECT target, closed, last_seq FROM sessions FINAL")
	if want := [][]string{{"orders-db", "1", "3"}}; !reflect.DeepEqual(got, want) {
		t.Fatalf("sessions = %v, want %v", got, want)
	}
}

// Every example query runs on the server as written, placeholders
// replaced.
func TestExampleQueries(t *testing.T) {
	srv := testenv.StartClickHouse(t)
	s := openStore(t, srv)
	start := time.Now().UTC().Add(-time.Minute)
	if err := s.Insert(context.Background(), audittest.SessionRows(start, "orders-db", "run-42", 9)); err != nil {
		t.Fatal(err)
	}
	audittest.RunExampleQueries(t, s, start)
}

// A server crash between two inserts: the same Store carries on after the
// restart and nothing acknowledged before is lost.
func TestKillRestart(t *testing.T) {
	srv := testenv.StartClickHouse(t)
	s := openStore(t, srv)
	ctx := context.Background()
	first := audittest.SessionRows(time.Now(), "orders-db", "a", 50)
	if err := s.Insert(ctx, first); err != nil {
		t.Fatal(err)
	}
	srv.Kill()
	srv.Restart(t)
	second := audittest.SessionRows(time.Now(), "orders-db", "b", 50)
	// The pool's connection died with the server; the driver redials.
	// One retry covers a dead connection found at the first use.
	if err := s.Insert(ctx, second); err != nil {
		t.Logf("first insert after restart: %v (retrying, as the spool would)", err)
		if err := s.Insert(ctx, second); err != nil {
			t.Fatal(err)
		}
	}
	got := query(t, s, "SELECT count() FROM events FINAL")
	if got[0][0] != "100" {
		t.Fatalf("after restart FINAL counts %s events, want 100", got[0][0])
	}
}

// A row whose IDs are not UUIDs is still stored (a row refused for its
// content would be retried forever and fill the spool), under IDs derived
// from their text, and a replay of it still collapses.
func TestRowWithMalformedIDsIsStored(t *testing.T) {
	srv := testenv.StartClickHouse(t)
	s := openStore(t, srv)
	rows := audittest.SessionRows(time.Now(), "orders-db", "r", 3)
	rows[1].EventID, rows[2].SessionID = "", "not-a-uuid"
	ctx := context.Background()
	if err := s.Insert(ctx, rows); err != nil {
		t.Fatalf("insert: %v", err)
	}
	if err := s.Insert(ctx, rows); err != nil { // a replay collapses
		t.Fatalf("replay: %v", err)
	}
	got := query(t, s, "SELECT count() FROM events FINAL")
	if got[0][0] != "3" {
		t.Fatalf("events: %v, want 3", got)
	}
}

// Attacks made in the store itself (ALTER ... DELETE and UPDATE on 18.16)
// each show with their own verdict; a request with bytes that are not
// UTF-8 comes back exactly.
func TestCheckpointsExposeTamperingInTheStore(t *testing.T) {
	srv := testenv.StartClickHouse(t)
	s := openStore(t, srv)
	ctx := context.Background()
	audittest.CheckStoreTampering(t, "audit",
		func(rows []audit.Row) error { return s.Insert(ctx, rows) },
		func(sql string) error { return s.conn.Exec(ctx, sql) },
		func() ([]audit.Row, error) { return s.Rows(ctx, "") })
}

// Session recordings land in the recordings table (ClickHouse 18.16) and
// read back whole.
func TestRecordings(t *testing.T) {
	srv := testenv.StartClickHouse(t)
	audittest.CheckRecording(t, openStore(t, srv), "audit")
}

// The insert reuses what it appended for the row before (an equal array,
// a LowCardinality value): neighbouring rows that differ only a little
// (one element more, the same elements in another column, an empty
// array between equal ones, a value that comes back) are each stored as
// they were sent.
func TestNeighbouringRowsStoredAsSent(t *testing.T) {
	srv := testenv.StartClickHouse(t)
	s := openStore(t, srv)
	ctx := context.Background()
	sid := audittest.UUID()
	at := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
	requests := []map[string]string{
		{"a": "1"}, {"a": "1", "b": "2"}, {"a": "1", "b": "2"}, nil, {"a": "1", "b": "2"},
		{"a": "2", "b": "1"}, {"b": "2"}, {}, {"a": ""}, {"a": "1"},
	}
	kinds := []string{"x", "y", "y", "x", "", "x", "z", "z", "y", "x"}
	var rows []audit.Row
	var chain audit.SessionChain
	for i, req := range requests {
		r := audit.Row{EventID: audittest.UUID(), Time: at.Add(time.Duration(i) * time.Millisecond), SessionID: sid,
			Seq: uint64(i + 1), Kind: kinds[i], Target: kinds[(i+3)%len(kinds)], Request: req, Annotations: req}
		if i%2 == 0 {
			r.Groups = []string{"g", kinds[i]}
		}
		if len(req) == 0 {
			r.Request, r.Annotations = nil, nil
		}
		chain.Seal(&r)
		rows = append(rows, r)
	}
	if err := s.Insert(ctx, rows); err != nil {
		t.Fatal(err)
	}
	back, err := s.Rows(ctx, "session_id = toUUID(?)", sid)
	if err != nil {
		t.Fatal(err)
	}
	if len(back) != len(rows) {
		t.Fatalf("got %d rows back, want %d", len(back), len(rows))
	}
	for i := range rows {
		got, want := back[i], rows[i]
		if len(got.Groups) == 0 {
			got.Groups = nil
		}
		if !got.Time.Equal(want.Time) {
			t.Errorf("row %d: time %v, want %v", i, got.Time, want.Time)
		}
		got.Time = want.Time
		if !reflect.DeepEqual(got, want) {
			t.Errorf("row %d differs:\n got %#v\nwant %#v", i, got, want)
		}
	}
}
