package trail_test

import (
	"context"
	"errors"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/tollgate-dev/tollgate/host/audit"
	"github.com/tollgate-dev/tollgate/host/audit/audittest"
	"github.com/tollgate-dev/tollgate/host/audit/clickhouse"
	"github.com/tollgate-dev/tollgate/host/audit/embedded"
	"github.com/tollgate-dev/tollgate/host/audit/sqlparam"
	"github.com/tollgate-dev/tollgate/host/audit/trail"
	"github.com/tollgate-dev/tollgate/internal/testenv"
)

// store is a real audit store the tests write to and read back.
type store interface {
	trail.Store
	Insert(ctx context.Context, rows []audit.Row) error
}

// recorder is a Reader that keeps the SQL it was given.
type recorder struct {
	trail.Reader
	mu  sync.Mutex
	sql []string
}

func (r *recorder) Query(ctx context.Context, sql string, args ...any) ([]string, [][]string, error) {
	r.mu.Lock()
	r.sql = append(r.sql, sql)
	r.mu.Unlock()
	if len(args) > 0 {
		return nil, nil, errors.New("the trail passed args: its SQL must arrive bound")
	}
	return r.Reader.Query(ctx, sql)
}

func (r *recorder) last() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.sql[len(r.sql)-1]
}

// Each case runs on the ClickHouse 18.16 server and on chDB: the same
// SQL must mean the same on both.
var cases = []struct {
	name string
	run  func(t *testing.T, s store)
}{
	{"Sessions", testSessions},
	{"LiveSessions", testLiveSessions},
	{"Follow", testFollow},
	{"HostileValuesAreLiteral", testHostileValues},
	{"HostileSessionIDs", testHostileSessionIDs},
	{"VerifyRows", testVerifyRows},
}

func TestClickHouse(t *testing.T) {
	srv := testenv.StartClickHouse(t)
	s, err := clickhouse.Open(context.Background(), clickhouse.Options{Addrs: []string{srv.Addr()}, Database: "audit"})
	if err != nil {
		t.Fatalf("clickhouse: %v\n%s", err, srv.Output())
	}
	defer s.Close()
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) { c.run(t, s) })
	}
}

func TestEmbedded(t *testing.T) {
	s, err := embedded.Open(context.Background(), embedded.Options{Dir: t.TempDir(), Database: "audit"})
	if errors.Is(err, embedded.ErrNoLibrary) {
		t.Fatalf("libchdb.so is needed for these tests: run `make deps` (.ci/install-chdb): %v", err)
	}
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) { c.run(t, s) })
	}
}

func newTrail(t *testing.T, s store) (*trail.Trail, *recorder) {
	t.Helper()
	rec := &recorder{Reader: trail.FromStore(s)}
	tr, err := trail.New(rec, "audit")
	if err != nil {
		t.Fatal(err)
	}
	return tr, rec
}

// session is one sealed session of n rows at start, closed unless open,
// with the target and subject given.
func session(start time.Time, target, subject string, n int, open bool) []audit.Row {
	rows := audittest.SessionRows(start, target, "run-1", n)
	if open {
		rows = rows[:n-1]
	}
	var c audit.SessionChain
	for i := range rows {
		rows[i].Subject = subject
		c.Seal(&rows[i])
	}
	return rows
}

func insert(t *testing.T, s store, rows ...[]audit.Row) {
	t.Helper()
	for _, rs := range rows {
		if err := s.Insert(context.Background(), rs); err != nil {
			t.Fatal(err)
		}
	}
}

// column picks a named column of a table.
func column(t *testing.T, tb trail.Table, name string) int {
	t.Helper()
	i := slices.Index(tb.Columns, name)
	if i < 0 {
		t.Fatalf("no column %s in %v", name, tb.Columns)
	}
	return i
}

// Sessions lists those opened in the window, newest first, an unclosed
// one as open.
func testSessions(t *testing.T, s store) {
	tr, _ := newTrail(t, s)
	base := time.Now().UTC().Add(-30 * 24 * time.Hour).Truncate(time.Second)
	old := session(base.Add(-2*time.Hour), "sessions-db", "old", 3, false)
	first := session(base.Add(time.Minute), "sessions-db", "first", 4, false)
	second := session(base.Add(2*time.Minute), "sessions-db", "second", 3, true)
	insert(t, s, old, first, second)
	tb, err := tr.Sessions(context.Background(), base)
	if err != nil {
		t.Fatal(err)
	}
	sid, target, status, rows := column(t, tb, "session"), column(t, tb, "target"), column(t, tb, "status"), column(t, tb, "rows")
	var got []string
	for _, r := range tb.Rows {
		if r[target] == "sessions-db" {
			got = append(got, r[sid]+" "+r[status]+" "+r[rows])
		}
	}
	want := []string{second[0].SessionID + " open 1", first[0].SessionID + " 2 requests 4"}
	if !slices.Equal(got, want) {
		t.Errorf("Sessions = %q, want %q", got, want)
	}
	// A window longer than DateTime's past is all of it.
	if tb, err := tr.Sessions(context.Background(), time.Unix(0, 0).Add(-time.Hour)); err != nil || len(tb.Rows) < 3 {
		t.Errorf("Sessions since before 1970: %d rows, %v", len(tb.Rows), err)
	}
	ids, err := tr.SessionsOpenedSince(context.Background(), base)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(ids, first[0].SessionID) || !slices.Contains(ids, second[0].SessionID) || slices.Contains(ids, old[0].SessionID) {
		t.Errorf("SessionsOpenedSince = %v: want %s and %s, not %s", ids, first[0].SessionID, second[0].SessionID, old[0].SessionID)
	}
}

// LiveSessions shows the sessions of the last day without a close row.
func testLiveSessions(t *testing.T, s store) {
	tr, _ := newTrail(t, s)
	now := time.Now().UTC()
	open := session(now.Add(-time.Hour), "live-db", "live", 3, true)
	closed := session(now.Add(-time.Hour), "live-db", "closed", 3, false)
	stale := session(now.Add(-25*time.Hour), "live-db", "stale", 3, true)
	insert(t, s, open, closed, stale)
	tb, err := tr.LiveSessions(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	sid, subject, client := column(t, tb, "session"), column(t, tb, "subject"), column(t, tb, "client")
	var got []string
	for _, r := range tb.Rows {
		if slices.Contains([]string{open[0].SessionID, closed[0].SessionID, stale[0].SessionID}, r[sid]) {
			got = append(got, r[subject]+" "+r[client])
		}
	}
	if want := []string{"live 10.0.0.7:5123"}; !slices.Equal(got, want) {
		t.Errorf("LiveSessions = %q, want %q", got, want)
	}
}

// A Follower returns each row once, in order, and then only what lands.
func testFollow(t *testing.T, s store) {
	tr, _ := newTrail(t, s)
	ctx := context.Background()
	start := time.Now().UTC().Add(-time.Minute)
	a := session(start, "follow-db", "follow-a", 4, false)
	insert(t, s, a)
	f := tr.Follow(start.Add(-time.Second), trail.Filter{Target: "follow-db"})
	got, err := f.Next(ctx)
	if err != nil {
		t.Fatal(err)
	}
	checkEvents(t, "first read", got, a)
	if got, err = f.Next(ctx); err != nil || len(got) != 0 {
		t.Fatalf("second read: %d rows (%v), want none", len(got), err)
	}
	// A batch lands late, with rows inside the window of the last read.
	b := session(start.Add(time.Millisecond), "follow-db", "follow-b", 3, false)
	insert(t, s, b)
	got, err = f.Next(ctx)
	if err != nil {
		t.Fatal(err)
	}
	checkEvents(t, "late batch", got, b)
	if e := got[1]; e.Method != "GET" || e.Path != "/items/1" || e.Request() != "GET /items/1" || e.Verdict != "allow" || e.Status != "200" {
		t.Errorf("event = %+v", e)
	}
	// The principal filter.
	f = tr.Follow(start.Add(-time.Second), trail.Filter{Principal: "follow-b"})
	if got, err = f.Next(ctx); err != nil {
		t.Fatal(err)
	}
	checkEvents(t, "principal", got, b)
}

func checkEvents(t *testing.T, what string, got []trail.Event, want []audit.Row) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: %d events, want %d: %+v", what, len(got), len(want), got)
	}
	for i, e := range got {
		w := want[i]
		// The embedded store renders text through JSON, where bytes
		// that are not UTF-8 become U+FFFD: the row is still the one.
		text := !utf8.ValidString(w.Target+w.Subject) || e.Target == w.Target && e.Subject == w.Subject
		if e.EventID != w.EventID || e.SessionID != w.SessionID || !e.Time.Equal(w.Time) || e.Kind != w.Kind || !text {
			t.Errorf("%s: event %d = %+v, want row %+v", what, i, e, w)
		}
	}
}

// hostile are values an agent or an analyst could put in a target, a
// subject or a filter.
var hostile = []string{
	`it's`, `a\b`, `a\'b`, `\`, `'`, `' OR 1=1 --`, `x' OR '1'='1`, "' OR 1=1 /*", `'); DROP TABLE audit.events; --`,
	"nul\x00byte", "ünïcødé 🦀", "\xff\xfe not UTF-8", "{target:String}", "?", "line\nbreak\ttab", `\'\\'`,
}

// Every hostile target and subject is matched literally: the rows it
// names and no others, and the SQL differs from a plain value's only
// inside the one literal.
func testHostileValues(t *testing.T, s store) {
	tr, rec := newTrail(t, s)
	ctx := context.Background()
	start := time.Now().UTC().Add(-time.Minute)
	victim := session(start, "victim-db", "victim", 3, false)
	insert(t, s, victim)
	sessions := map[string][]audit.Row{}
	for i, v := range hostile {
		sessions[v] = session(start.Add(time.Duration(i)*time.Millisecond), "hostile:"+v, "hostile:"+v, 3, false)
		insert(t, s, sessions[v])
	}
	plain := func(filter trail.Filter) string {
		if _, err := tr.Follow(start.Add(-time.Second), filter).Next(ctx); err != nil {
			t.Fatal(err)
		}
		return rec.last()
	}
	plainTarget, plainSubject := plain(trail.Filter{Target: "plain"}), plain(trail.Filter{Principal: "plain"})
	for _, v := range hostile {
		for _, f := range []trail.Filter{{Target: "hostile:" + v}, {Principal: "hostile:" + v}} {
			got, err := tr.Follow(start.Add(-time.Second), f).Next(ctx)
			if err != nil {
				t.Errorf("%q: %v", v, err)
				continue
			}
			checkEvents(t, "filter "+strings.ToValidUTF8(v, "?"), got, sessions[v])
			want := plainTarget
			if f.Principal != "" {
				want = plainSubject
			}
			if sql := strings.Replace(rec.last(), sqlparam.Quote("hostile:"+v), sqlparam.Quote("plain"), 1); sql != want {
				t.Errorf("%q changed the query:\n%s\nwant\n%s", v, rec.last(), want)
			}
		}
		// The bare value names nothing: no row's target is the injection.
		if got, err := tr.Follow(start.Add(-time.Second), trail.Filter{Target: v}).Next(ctx); err != nil || len(got) != 0 {
			t.Errorf("target %q: %d rows (%v), want none", v, len(got), err)
		}
	}
}

// A session ID is a UUID or nothing is read.
func testHostileSessionIDs(t *testing.T, s store) {
	tr, _ := newTrail(t, s)
	ctx := context.Background()
	rows := session(time.Now().UTC(), "ids-db", "ids", 3, false)
	insert(t, s, rows)
	r := trail.FromStore(s)
	got, err := r.SessionRows(ctx, strings.ToUpper(rows[0].SessionID))
	if err != nil || len(got) != 3 || got[0].EventID != rows[0].EventID {
		t.Fatalf("SessionRows(upper case) = %d rows, %v", len(got), err)
	}
	for _, v := range append(hostile, rows[0].SessionID+"' OR 1=1 --", rows[0].SessionID+"\x00") {
		if got, err := r.SessionRows(ctx, v); err == nil || !strings.Contains(err.Error(), "not a UUID") {
			t.Errorf("SessionRows(%q) = %d rows, %v; want a refusal", v, len(got), err)
		}
		if got, err := tr.VerifyRows(ctx, trail.Scope{Session: v}); err == nil {
			t.Errorf("VerifyRows(%q) = %d rows; want a refusal", v, len(got))
		}
	}
}

// The trail as verify reads it: all of it, one session, or the sessions
// opened since a time, each with every checkpoint.
func testVerifyRows(t *testing.T, s store) {
	tr, _ := newTrail(t, s)
	ctx := context.Background()
	gw := audittest.NewTrail(t, "gw-"+strings.ReplaceAll(t.Name(), "/", "-"), nil)
	insert(t, s, gw.Rows)
	old := session(time.Now().UTC().Add(-48*time.Hour), "verify-db", "old", 3, false)
	insert(t, s, old)

	all, err := tr.VerifyRows(ctx, trail.Scope{})
	if err != nil {
		t.Fatal(err)
	}
	rep := trail.Verify(all, trail.Scope{}, nil)
	checkFindings(t, "all", rep, gw.Want())
	checkFindings(t, "all", rep, map[string]string{old[0].SessionID: audit.StatusComplete})

	one, err := tr.VerifyRows(ctx, trail.Scope{Session: gw.Closed})
	if err != nil {
		t.Fatal(err)
	}
	rep = trail.Verify(one, trail.Scope{Session: gw.Closed}, nil)
	checkFindings(t, "one session", rep, map[string]string{gw.Closed: audit.StatusComplete, gw.Run1: audit.StatusComplete, gw.Run2: audit.StatusOpen})
	if f := finding(rep, gw.Other); f != nil {
		t.Errorf("one session: %s is shown: %+v", gw.Other, f)
	}

	since := time.Now().Add(-24 * time.Hour)
	part, err := tr.VerifyRows(ctx, trail.Scope{Since: since})
	if err != nil {
		t.Fatal(err)
	}
	rep = trail.Verify(part, trail.Scope{Since: since}, nil)
	checkFindings(t, "since", rep, gw.Want())
	if f := finding(rep, old[0].SessionID); f != nil {
		t.Errorf("since: the session of two days ago is read: %+v", f)
	}
}

func finding(rep trail.Report, id string) *audit.Finding {
	for i := range rep.Findings {
		if rep.Findings[i].SessionID == id {
			return &rep.Findings[i]
		}
	}
	return nil
}

func checkFindings(t *testing.T, what string, rep trail.Report, want map[string]string) {
	t.Helper()
	for id, status := range want {
		if f := finding(rep, id); f == nil || f.Status != status {
			t.Errorf("%s: %s is %+v, want %s", what, id, f, status)
		}
	}
}
