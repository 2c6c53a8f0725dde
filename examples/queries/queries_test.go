package queries_test

import (
	"context"
	"errors"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tollgate-dev/tollgate/examples/queries"
	"github.com/tollgate-dev/tollgate/host/audit"
	"github.com/tollgate-dev/tollgate/host/audit/clickhouse"
	"github.com/tollgate-dev/tollgate/host/audit/embedded"
	"github.com/tollgate-dev/tollgate/host/audit/spool"
	"github.com/tollgate-dev/tollgate/host/audit/sqlparam"
	"github.com/tollgate-dev/tollgate/internal/testenv"
)

type store interface {
	audit.Store
	Query(ctx context.Context, sql string, args ...any) ([]string, [][]string, error)
}

// result is a query's answer, read by column name.
type result struct {
	cols []string
	rows [][]string
}

func (r result) col(t *testing.T, name string) []string {
	t.Helper()
	i := slices.Index(r.cols, name)
	if i < 0 {
		t.Fatalf("no column %q in %v", name, r.cols)
	}
	out := make([]string, len(r.rows))
	for k, row := range r.rows {
		out[k] = row[i]
	}
	return out
}

// fill writes the seeded trail, the same rows to each store, through the
// production pipeline (spool, batches, the store's insert) and waits
// until each store holds it.
func fill(t *testing.T, t0 time.Time, stores ...store) {
	t.Helper()
	var pipes tee
	for _, s := range stores {
		p, err := audit.OpenPipeline(audit.PipelineOptions{Store: keepOpen{s}, Spool: spool.Options{Dir: t.TempDir()}, BatchAge: 50 * time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		pipes = append(pipes, p)
	}
	seed(t, pipes, t0)
	for _, p := range pipes {
		if err := p.Close(); err != nil {
			t.Fatalf("pipeline close: %v", err)
		}
		if st := p.Stats(); st.Shipped != st.Accepted || st.Accepted == 0 {
			t.Fatalf("pipeline shipped %d of %d rows", st.Shipped, st.Accepted)
		}
	}
}

// tee records each row in every pipeline.
type tee []*audit.Pipeline

func (ps tee) Record(r audit.Row) error {
	for _, p := range ps {
		if err := p.Record(r); err != nil {
			return err
		}
	}
	return nil
}

func (ps tee) Close() error { return nil }

// keepOpen is the store for a pipeline whose Close must not close it:
// the queries read it afterwards.
type keepOpen struct{ audit.Store }

func (keepOpen) Close() error { return nil }

// run answers every shipped query on s with the test's parameters.
func run(t *testing.T, s store, t0 time.Time) map[string]result {
	t.Helper()
	values := map[string]string{
		"from":      t0.Add(-time.Hour).Format(time.RFC3339),
		"to":        t0.Add(time.Hour).Format(time.RFC3339),
		"run_id":    "42",
		"target":    "orders-db",
		"principal": "repo:acme/app:ref:refs/heads/main",
	}
	out := map[string]result{}
	for _, name := range queries.Names() {
		sql, err := queries.Get(name)
		if err != nil {
			t.Fatal(err)
		}
		ps, err := sqlparam.Params(sql)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		given := map[string]string{}
		for _, p := range ps {
			v, ok := values[p.Name]
			if !ok {
				t.Fatalf("%s: parameter %s has no test value", name, p.Name)
			}
			given[p.Name] = v
		}
		bound, err := sqlparam.Bind(sql, given, t0)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		cols, rows, err := s.Query(context.Background(), bound)
		if err != nil {
			t.Fatalf("%s: %v\n%s", name, err, bound)
		}
		out[name] = result{cols, rows}
	}
	return out
}

// Every shipped query, with its parameters bound as the CLI binds them,
// answers the incident trail the same on the embedded store (chDB, a
// current ClickHouse) and on a ClickHouse 18.16 server, and the answer is
// the right one.
func TestShippedQueriesOnBothStores(t *testing.T) {
	if n := len(queries.Names()); n < 10 {
		t.Fatalf("%d shipped queries, want at least 10", n)
	}
	t0 := time.Now().UTC().Truncate(time.Second).Add(-10 * time.Minute)

	emb, err := embedded.Open(context.Background(), embedded.Options{Dir: t.TempDir(), Database: "tollgate", LibPath: testenv.ChDBLib(t)})
	if errors.Is(err, embedded.ErrNoLibrary) {
		t.Fatalf("libchdb.so is needed: run `make deps`: %v", err)
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { emb.Close() })
	srv := testenv.StartClickHouse(t)
	ch, err := clickhouse.Open(context.Background(), clickhouse.Options{Addrs: []string{srv.Addr()}, Database: "tollgate"})
	if err != nil {
		t.Fatalf("clickhouse: %v\n%s", err, srv.Output())
	}
	t.Cleanup(func() { ch.Close() })

	answers := map[string]map[string]result{}
	fill(t, t0, emb, ch)
	for name, s := range map[string]store{"embedded": emb, "clickhouse": ch} {
		answers[name] = run(t, s, t0)
	}
	for q, want := range answers["embedded"] {
		if got := answers["clickhouse"][q]; !reflect.DeepEqual(got, want) {
			t.Errorf("%s: the stores disagree\nclickhouse 18.16: %v\n%v\nembedded:         %v\n%v", q, got.cols, got.rows, want.cols, want.rows)
		}
	}
	// ci_run finds a GitLab pipeline by its pipeline_id, and names its
	// project as the repository.
	sql, _ := queries.Get("ci_run")
	bound, err := sqlparam.Bind(sql, map[string]string{"run_id": "1172", "from": "-24h", "to": "now"}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	for name, s := range map[string]store{"embedded": emb, "clickhouse": ch} {
		cols, rows, err := s.Query(context.Background(), bound)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		r := result{cols, rows}
		if got := r.col(t, "repository"); !reflect.DeepEqual(got, []string{"acme/app", "acme/app", "acme/app"}) {
			t.Errorf("%s: ci_run of GitLab pipeline 1172: repository %q", name, got)
		}
	}

	// A value is data on both engines: quotes, backslashes and comment
	// marks in it find nothing instead of widening the query.
	sql, _ = queries.Get("principal")
	for _, evil := range []string{`x' OR 1=1 OR '`, `x\' OR 1=1 --`, "x'\n) OR (1=1"} {
		bound, err := sqlparam.Bind(sql, map[string]string{"principal": evil, "from": "-24h", "to": "now"}, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		for name, s := range map[string]store{"embedded": emb, "clickhouse": ch} {
			if _, rows, err := s.Query(context.Background(), bound); err != nil || len(rows) != 0 {
				t.Errorf("%s: principal %q: %d rows, %v", name, evil, len(rows), err)
			}
		}
	}
	for store, a := range answers {
		t.Run(store, func(t *testing.T) { checkAnswers(t, a, t0) })
	}
}

func checkAnswers(t *testing.T, a map[string]result, t0 time.Time) {
	eq := func(q, col string, want ...string) {
		t.Helper()
		if got := a[q].col(t, col); !reflect.DeepEqual(got, want) {
			t.Errorf("%s.%s =\n  %q\nwant\n  %q", q, col, got, want)
		}
	}
	ts := func(s float64) string {
		return t0.Add(time.Duration(s * float64(time.Second))).Truncate(time.Second).Format(time.RFC3339)
	}

	// ci_run: both sessions of run 42 and their approvals, in time order
	// across sessions; not the other repository's run, not the old session.
	eq("ci_run", "kind", "session.open", "http.request", "http.request", "http.request", "approval.request", "approval.decision", "session.close",
		"session.open", "pg.query", "pg.query", "pg.query", "approval.request", "approval.decision")
	eq("ci_run", "request", "", "GET /hello", "GET /users", "POST /deploy", "POST /deploy", "POST /deploy", "",
		"", "SELECT name, api_key, ssn FROM customers", "DROP TABLE customers", "DELETE FROM customers WHERE id = 7",
		"DELETE FROM customers WHERE id = 7", "DELETE FROM customers WHERE id = 7")
	eq("ci_run", "target", "demo", "demo", "demo", "demo", "demo", "demo", "demo",
		"orders-db", "orders-db", "orders-db", "orders-db", "orders-db", "orders-db")
	eq("ci_run", "ts", ts(0), ts(1), ts(2), ts(2.5), ts(2.6), ts(4.6), ts(5), ts(6), ts(7), ts(8), ts(9), ts(9.1), ts(39.1))

	// denied_or_held: the held deploy and its denial, the DROP, the held
	// DELETE, the 401 and the 403, each with why.
	eq("denied_or_held", "kind", "http.request", "approval.request", "approval.decision", "pg.query", "pg.query", "approval.request",
		"http.request", "http.request")
	eq("denied_or_held", "outcome", "hold", "hold", "deny", "deny", "hold", "hold", "refused", "refused")
	eq("denied_or_held", "status", "403", "pending", "denied", "", "DELETE 1", "pending", "401", "403")
	eq("denied_or_held", "why", "deploys need a person", "deploys need a person", "not during the freeze", "DDL is not allowed",
		"DELETE needs a person", "DELETE needs a person",
		"unauthenticated: an OIDC token is required: Authorization: Bearer <token>",
		"access_denied: no access rule grants target demo to repo:evil/fork:ref:refs/heads/main")
	eq("denied_or_held", "subject", acme.Subject, acme.Subject, acme.Subject, acme.Subject, acme.Subject, acme.Subject, "", fork.Subject)

	// masked: where each masking happened and which detector fired.
	eq("masked", "masked_where", "field body", "column api_key", "columns ssn")
	eq("masked", "detectors", "email=2", "github-pat=1", "by name (mask.columns)")
	eq("masked", "values_masked", "3", "3", "3")
	eq("masked", "target", "demo", "orders-db", "orders-db")

	// principal: everything acme's job did in the window, on both targets
	// (the three-hour-old session is outside it).
	eq("principal", "target", "demo", "demo", "demo", "demo", "demo", "demo", "demo",
		"orders-db", "orders-db", "orders-db", "orders-db", "orders-db", "orders-db")
	eq("principal", "run_id", slices.Repeat([]string{"42"}, 13)...)

	// open_sessions: only the PostgreSQL session; the old open one is
	// outside the window, the others closed.
	eq("open_sessions", "session_target", "orders-db")
	eq("open_sessions", "opened_at", ts(6))
	eq("open_sessions", "last_seen", ts(9))
	eq("open_sessions", "row_count", "4")
	eq("open_sessions", "principal", acme.Subject)
	eq("open_sessions", "ci_run_id", "42")

	// who_ran_what on orders-db: the statements and the approval, in order.
	eq("who_ran_what", "kind", "pg.query", "pg.query", "pg.query", "approval.request", "approval.decision")
	eq("who_ran_what", "repository", "acme/app", "acme/app", "acme/app", "acme/app", "acme/app")

	// activity: acme's job (both sessions), then the three with one
	// action each: the 401 (no principal), the GitLab pipeline, the fork's 403.
	eq("activity", "repository", "acme/app", "", "acme/app", "evil/fork")
	eq("activity", "principal", acme.Subject, "", gitlab.Subject, fork.Subject)
	eq("activity", "actions", "6", "1", "1", "1")
	eq("activity", "refused", "1", "1", "0", "1")
	eq("activity", "held", "2", "0", "0", "0")
	eq("activity", "targets", "2", "1", "1", "1")
	eq("activity", "first_seen", ts(1), ts(10), ts(12.1), ts(11.2))

	// masking_by_detector: the email detector on demo's body, the mask
	// plugin's ssn column by name, the GitHub token in api_key.
	eq("masking_by_detector", "target", "demo", "orders-db", "orders-db")
	eq("masking_by_detector", "detector", "email", "by name (mask.columns)", "github-pat")
	eq("masking_by_detector", "places", "1", "1", "1")
	eq("masking_by_detector", "values_found", "2", "1", "1")

	// top_statements: GET /hello three times (allowed, 401, 403), then
	// each other request once.
	eq("top_statements", "request", "GET /hello", "GET /status", "GET /users", "POST /deploy",
		"DELETE FROM customers WHERE id = 7", "DROP TABLE customers", "SELECT name, api_key, ssn FROM customers")
	eq("top_statements", "target", "demo", "demo", "demo", "demo", "orders-db", "orders-db", "orders-db")
	eq("top_statements", "runs", "3", "1", "1", "1", "1", "1", "1")
	eq("top_statements", "refused", "2", "0", "0", "0", "0", "1", "0")
	eq("top_statements", "held", "0", "0", "0", "1", "1", "0", "0")

	// slowest_approvals: alice's 30 s approval before bob's 2 s denial.
	eq("slowest_approvals", "waited_s", "30", "2")
	eq("slowest_approvals", "verdict", "allow", "deny")
	eq("slowest_approvals", "status", "approved", "denied")
	eq("slowest_approvals", "approver", "alice@example.com", "bob@example.com")
	if got := a["slowest_approvals"].col(t, "request"); !strings.HasPrefix(got[0], "DELETE") || got[1] != "POST /deploy" {
		t.Errorf("slowest_approvals.request = %q", got)
	}
}
