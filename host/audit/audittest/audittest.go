// Package audittest holds the test data both audit stores' tests share:
// sealed sessions whose columns exercise every type and escape, and a run
// of every analyst query in examples/queries.
package audittest

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tollgate-dev/tollgate/host/audit"
	"github.com/tollgate-dev/tollgate/host/audit/sqlparam"
	"github.com/tollgate-dev/tollgate/internal/testenv"
)

// UUID returns a random version 4 UUID.
func UUID() string { return audit.NewID() }

// SessionRows is one sealed session of n rows (n >= 2): open, n-2 steps
// with varied columns (and text that needs escaping), close.
func SessionRows(start time.Time, target string, runID string, n int) []audit.Row {
	sid := UUID()
	var chain audit.SessionChain
	rows := make([]audit.Row, n)
	for i := range rows {
		r := audit.Row{
			EventID: UUID(), Time: start.Add(time.Duration(i)*1234567*time.Nanosecond + 789*time.Nanosecond).Truncate(time.Microsecond),
			GatewayID: "gw-1", SessionID: sid, Seq: uint64(i + 1), Protocol: "http", Listener: "api",
			Target: target, Kind: "http.request", RemoteAddr: "10.0.0.7:5123",
			Issuer: "https://token.actions.githubusercontent.com", Subject: "repo:acme/app:ref:refs/heads/main",
			Groups: []string{"ci", "deployers", "tab\there", "it's"},
			Claims: map[string]string{"repository": "acme/app", "run_id": runID, "quote": "it's \"x\"", "esc": "a\\b\nc\r\x00d\t[',]"},
		}
		switch {
		case i == 0:
			r.Kind = audit.KindSessionOpen
		case i == n-1:
			r.Kind, r.Status, r.DurationMicro = audit.KindSessionClose, fmt.Sprintf("%d requests", n-2), r.Time.Sub(rows[0].Time).Microseconds()
		default:
			r.AccessRule = "ci-read"
			r.Request = map[string]string{"method": "GET", "path": fmt.Sprintf("/items/%d", i), "body": "card=****\n\tline2 ünïcødé \\N"}
			r.Verdict, r.Plugin = "allow", "mask"
			r.Annotations = map[string]string{"masked": "body.card"}
			r.Status, r.RequestBytes, r.ResponseBytes, r.DurationMicro = "200", 120, int64(4096*i), int64(1500+i)
			if i%3 == 0 {
				r.Verdict, r.Plugin, r.Reason, r.Status = "deny", "guard", "DELETE\tis not\nallowed \\ 'really'", "403"
				r.Annotations, r.Error = nil, "denied"
			}
			if i%4 == 0 {
				r.Kind, r.Verdict, r.ApprovalID, r.Approver = "approval", "allow", UUID(), "alice@example.com"
			}
		}
		chain.Seal(&r)
		rows[i] = r
	}
	return rows
}

// Querier is a store's read side.
type Querier interface {
	Query(ctx context.Context, sql string, args ...any) ([]string, [][]string, error)
}

// Query runs sql on s and fails the test on an error.
func Query(t testing.TB, s Querier, sql string, args ...any) [][]string {
	t.Helper()
	_, rows, err := s.Query(context.Background(), sql, args...)
	if err != nil {
		t.Fatalf("%v\n%s", err, sql)
	}
	return rows
}

// CheckSchema checks that a store's schema is in place and version (the
// schema package's, which cannot be imported here: its tests use this
// package) recorded once, however often the store was opened.
func CheckSchema(t *testing.T, s Querier, version int) {
	t.Helper()
	got := Query(t, s, "SELECT version, count() FROM schema_version FINAL GROUP BY version")
	if want := [][]string{{strconv.Itoa(version), "1"}}; !reflect.DeepEqual(got, want) {
		t.Fatalf("schema_version = %v, want %v", got, want)
	}
	for _, tbl := range []string{"events", "sessions", "schema_version", "recordings"} {
		if got := Query(t, s, "EXISTS TABLE "+tbl); got[0][0] != "1" {
			t.Errorf("table %s missing", tbl)
		}
	}
}

// RoundTripBatch is what the stores' round-trip tests insert: three
// sealed sessions that cross a month (a partition), and bare, one row with
// every optional column empty.
func RoundTripBatch() (batch []audit.Row, bare audit.Row) {
	start := time.Date(2026, 3, 31, 23, 59, 58, 0, time.UTC)
	for i, target := range []string{"orders-db", "billing-api", "orders-db"} {
		batch = append(batch, SessionRows(start.Add(time.Duration(i)*time.Second), target, "run-"+strconv.Itoa(i), 6+i)...)
	}
	bare = audit.Row{EventID: UUID(), Time: start.Add(time.Hour), SessionID: UUID(), Seq: 1, Kind: "http.request"}
	return append(batch, bare), bare
}

// CheckRoundTrip checks that a store gave back exactly the rows sent, each
// once, equal column for column (times as the same instant: the zone may
// differ), and that every session but bare's verifies as complete.
func CheckRoundTrip(t *testing.T, sent, back []audit.Row, bare audit.Row) {
	t.Helper()
	if len(back) != len(sent) {
		t.Fatalf("the store gave back %d rows for %d sent (each event once)", len(back), len(sent))
	}
	byID := map[string]audit.Row{}
	sessions := map[string]bool{}
	for _, r := range sent {
		byID[r.EventID] = r
		sessions[r.SessionID] = r.SessionID != bare.SessionID
	}
	for _, r := range back {
		want := byID[r.EventID]
		if !r.Time.Equal(want.Time) {
			t.Errorf("event %s: time %v, want %v", r.EventID, r.Time, want.Time)
		}
		r.Time = want.Time
		if !reflect.DeepEqual(r, want) {
			t.Errorf("round trip differs:\n got %#v\nwant %#v", r, want)
		}
	}
	complete := 0
	for _, f := range audit.Verify(back) {
		if !sessions[f.SessionID] {
			continue
		}
		if f.Status != audit.StatusComplete {
			t.Errorf("session %s: %s %s", f.SessionID, f.Status, f.Detail)
			continue
		}
		complete++
	}
	want := 0
	for _, sealed := range sessions {
		if sealed {
			want++
		}
	}
	if complete != want {
		t.Errorf("Verify found %d complete sessions, want %d", complete, want)
	}
}

// CheckSessions checks the sessions table of a store holding the rows of
// n sessions made by SessionRows: one row per session, with the open
// row's target and time, closed, with the close row's status.
func CheckSessions(t *testing.T, s Querier, rows []audit.Row, n int) {
	t.Helper()
	sess := Query(t, s, "SELECT toString(session_id), target, closed, status, opened_at, opened_us FROM sessions FINAL ORDER BY opened_at, opened_us")
	if len(sess) != n {
		t.Fatalf("sessions: %v, want %d", sess, n)
	}
	for i, v := range sess {
		var open audit.Row
		for _, r := range rows {
			if r.SessionID == v[0] && r.Kind == audit.KindSessionOpen {
				open = r
			}
		}
		ts, _ := time.Parse(time.RFC3339, v[4])
		us, _ := strconv.Atoi(v[5])
		if open.SessionID == "" || v[1] != open.Target || v[2] != "1" || !strings.HasSuffix(v[3], "requests") ||
			!ts.Add(time.Duration(us)*time.Microsecond).Equal(open.Time) {
			t.Errorf("session %d: %v (open row %+v)", i, v, open)
		}
	}
}

// RunExampleQueries runs every examples/queries/*.sql, its parameters
// bound as `gateway audit query` binds them, against s, whose data was
// inserted with SessionRows(start, "orders-db", "run-42", n), and fails
// the test when one errors. What each answers is checked on realistic
// rows by examples/queries' own test, on both stores.
func RunExampleQueries(t *testing.T, s Querier, start time.Time) {
	t.Helper()
	files, _ := filepath.Glob(filepath.Join(testenv.ModuleRoot(t), "examples", "queries", "*.sql"))
	if len(files) < 5 {
		t.Fatalf("want at least 5 example queries, found %v", files)
	}
	values := map[string]string{
		"target":    "orders-db",
		"from":      start.Add(-time.Hour).Format(time.RFC3339),
		"to":        start.Add(time.Hour).Format(time.RFC3339),
		"run_id":    "run-42",
		"principal": "repo:acme/app:ref:refs/heads/main",
	}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		ps, err := sqlparam.Params(string(b))
		if err != nil {
			t.Errorf("%s: %v", filepath.Base(f), err)
			continue
		}
		used := map[string]string{}
		for _, p := range ps {
			used[p.Name] = values[p.Name]
		}
		sql, err := sqlparam.Bind(string(b), used, start)
		if err != nil {
			t.Errorf("%s: %v", filepath.Base(f), err)
			continue
		}
		_, rows, err := s.Query(context.Background(), strings.TrimRight(strings.TrimSpace(sql), ";"))
		if err != nil {
			t.Errorf("%s: %v", filepath.Base(f), err)
			continue
		}
		t.Logf("%s: %d rows", filepath.Base(f), len(rows))
	}
}
