package main_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/tollgate-dev/tollgate/internal/testenv"
)

// scrape reads the admin listener's /metrics as a scraper does, into
// `name{label="value",...}` (labels sorted) → value; a histogram's
// _count and _sum are series of their own.
func scrape(t *testing.T, admin string) (map[string]float64, map[string]*dto.MetricFamily) {
	t.Helper()
	resp, err := http.Get("http://" + admin + "/metrics")
	if err != nil {
		t.Fatalf("GET /metrics: %v", err)
	}
	defer resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/plain; version=0.0.4") {
		t.Errorf("/metrics content type %q", ct)
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := parser.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("/metrics is not the Prometheus text format: %v", err)
	}
	out := map[string]float64{}
	for name, f := range fams {
		for _, m := range f.Metric {
			var ls []string
			for _, l := range m.Label {
				ls = append(ls, fmt.Sprintf("%s=%q", l.GetName(), l.GetValue()))
			}
			sort.Strings(ls)
			key := func(n string) string {
				if len(ls) == 0 {
					return n
				}
				return n + "{" + strings.Join(ls, ",") + "}"
			}
			switch {
			case m.Counter != nil:
				out[key(name)] = m.Counter.GetValue()
			case m.Gauge != nil:
				out[key(name)] = m.Gauge.GetValue()
			case m.Histogram != nil:
				out[key(name+"_count")] = float64(m.Histogram.GetSampleCount())
				out[key(name+"_sum")] = m.Histogram.GetSampleSum()
			case m.Untyped != nil:
				out[key(name)] = m.Untyped.GetValue()
			}
		}
	}
	return out, fams
}

// waitMetric scrapes until cond holds for the series (rows reach the
// store in batches, sessions close after the client's Terminate).
func waitMetric(t *testing.T, admin, series string, cond func(float64) bool) map[string]float64 {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		m, _ := scrape(t, admin)
		if v, ok := m[series]; ok && cond(v) {
			return m
		}
		if time.Now().After(deadline) {
			t.Fatalf("metrics: %s = %v (present %v) after 30 s", series, m[series], func() bool { _, ok := m[series]; return ok }())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// After HTTP and PostgreSQL traffic through a real gateway (allowed
// requests, a DROP the guard denies, a POST the approve plugin holds and
// a person then denies, a request without a token, a plugin that
// crashes, a target that is down), /metrics shows each under its own labels: sessions and requests
// by protocol, target and verdict, plugin calls, approvals, the audit
// pipeline. Every metric the shipped alert rules use is among them.
func TestMetricsAfterTraffic(t *testing.T) {
	pg := testenv.StartPostgres(t, testenv.PostgresOptions{})
	ch := testenv.StartClickHouse(t)
	guard := testenv.BuildWasm(t, "plugins/guard")
	approve := testenv.BuildWasm(t, "plugins/approve")
	// Crashes on the path /panic (and lets the others through).
	faulty := testenv.BuildWasm(t, "host/plugin/testdata/guests/faulty")
	addrs := map[string]string{}
	for _, k := range []string{"issuer", "echo", "http", "pg", "admin", "down"} {
		addrs[k] = testenv.FreeAddr(t)
	}
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, ".tollgate"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, ".tollgate", "demo-token"), []byte("demo-credential-xyz\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := fmt.Sprintf(`
[gateway]
id = "metrics-gw"
data_dir = ".tollgate"

[dev]
issuer_listen = %q
audience = "tollgate"
echo_listen = %q
echo_token = "file:.tollgate/demo-token"

[[targets]]
name = "demo"
protocol = "http"
upstream = "http://%s"
[targets.credential]
type = "bearer"
token = "file:.tollgate/demo-token"

[[targets]]
name = "app"
protocol = "postgres"
upstream = %q
database = "postgres"
sslmode = "disable"
[targets.credential]
type = "password"
username = %q
password = "env:PG_TARGET_PASSWORD"

# Nothing listens there: every session to it is an upstream error.
[[targets]]
name = "down"
protocol = "postgres"
upstream = %q
database = "postgres"
sslmode = "disable"
[targets.credential]
type = "password"
username = "nobody"
password = "env:PG_TARGET_PASSWORD"

[[listeners]]
name = "http"
protocol = "http"
listen = %q
[[listeners.routes]]
target = "demo"
path_prefix = "/demo"

[[listeners]]
name = "pg"
protocol = "postgres"
listen = %q
allow_plaintext = true

[[access]]
name = "dev-tokens"
issuers = ["dev"]
targets = ["demo", "app", "down"]

[[plugins]]
name = "faulty"
path = %q

[[plugins]]
name = "guard"
path = %q
[plugins.config]
rules = [{ name = "no-ddl", kinds = ["pg.query"], sql = ["ddl"], reason = "no DDL here" }]

[[plugins]]
name = "approve"
path = %q
[plugins.config]
rules = [{ name = "deploys", kinds = ["http.request"], methods = ["POST"], paths = ["/deploy"], approvers = ["dba"], reason = "deploys need a person" }]

[admin]
listen = %q
groups = ["auditors"]

[approvals]
store = "file"
http_wait = "0s"

[audit]
store = "clickhouse"
batch_age = "100ms"
[audit.clickhouse]
addrs = [%q]
database = "metrics"
`, addrs["issuer"], addrs["echo"], addrs["echo"], pg.Addr(), pg.User, addrs["down"], addrs["http"], addrs["pg"],
		faulty, guard, approve, addrs["admin"], ch.Addr())
	gw := testenv.StartGateway(t, testenv.GatewayOptions{Config: cfg, Dir: dir, Dev: true, Env: []string{"PG_TARGET_PASSWORD=" + pg.Password},
		Wait: []string{addrs["issuer"], addrs["echo"], addrs["http"], addrs["pg"], addrs["admin"]},
		// Three plugins compile at start: on shared, busy cores that takes a while.
		ReadyTimeout: 2 * time.Minute})
	token := func(args ...string) string {
		out, errOut, code := gw.Run(append([]string{"token", "-c", gw.Config}, args...)...)
		if code != 0 {
			t.Fatalf("token: %s", errOut)
		}
		return strings.TrimSpace(out)
	}
	agent := token("--sub", "agent@example.com")

	// HTTP: two allowed requests on one connection, one without a token,
	// one held (http_wait 0s: 202 at once).
	do := func(method, path, tok string) (int, []byte) {
		req, _ := http.NewRequest(method, "http://"+addrs["http"]+path, nil)
		if tok != "" {
			req.Header.Set("Authorization", "Bearer "+tok)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatalf("%s %s: %v", method, path, err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, b
	}
	for range 2 {
		if code, b := do("GET", "/demo/hello", agent); code != 200 {
			t.Fatalf("GET /demo/hello: %d %s", code, b)
		}
	}
	if code, _ := do("GET", "/demo/hello", ""); code != 401 {
		t.Fatalf("no token: %d", code)
	}
	if code, b := do("GET", "/demo/panic", agent); code != 403 {
		t.Fatalf("a crashing plugin: %d %s", code, b)
	}
	code, b := do("POST", "/demo/deploy", agent)
	var pending struct {
		ApprovalID string `json:"approval_id"`
	}
	if code != 202 || json.Unmarshal(b, &pending) != nil || pending.ApprovalID == "" {
		t.Fatalf("held POST: %d %s", code, b)
	}
	m := waitMetric(t, addrs["admin"], "tollgate_approvals_pending", func(v float64) bool { return v == 1 })
	if v := m["tollgate_approvals_oldest_pending_seconds"]; v <= 0 {
		t.Errorf("tollgate_approvals_oldest_pending_seconds = %v with one pending", v)
	}

	// PostgreSQL: a SELECT, a DROP the guard denies; a session to a
	// target that is down.
	host, port, _ := net.SplitHostPort(addrs["pg"])
	conn, err := pgx.Connect(context.Background(), fmt.Sprintf("postgres://agent:%s@%s:%s/app?sslmode=disable", agent, host, port))
	if err != nil {
		t.Fatalf("connect through the gateway: %v\n%s", err, gw.Output())
	}
	var one int
	if err := conn.QueryRow(context.Background(), "SELECT 1").Scan(&one); err != nil || one != 1 {
		t.Fatalf("SELECT 1: %v", err)
	}
	if _, err := conn.Exec(context.Background(), "DROP TABLE IF EXISTS nothing"); err == nil || !strings.Contains(err.Error(), "no DDL here") {
		t.Fatalf("DROP: %v, want the guard's deny", err)
	}
	m = waitMetric(t, addrs["admin"], `tollgate_sessions_open{protocol="postgres",target="app"}`, func(v float64) bool { return v == 1 })
	conn.Close(context.Background())
	if c, err := pgx.Connect(context.Background(), fmt.Sprintf("postgres://agent:%s@%s:%s/down?sslmode=disable", agent, host, port)); err == nil {
		c.Close(context.Background())
		t.Fatal("a session to a target that is down connected")
	}

	// A person denies the held deploy.
	dba := token("--sub", "dba@example.com", "--group", "dba")
	req, _ := http.NewRequest("POST", "http://"+addrs["admin"]+"/v1/approvals/"+pending.ApprovalID+"/deny", strings.NewReader(`{"reason":"not now"}`))
	req.Header.Set("Authorization", "Bearer "+dba)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("deny: %d", resp.StatusCode)
	}

	m = waitMetric(t, addrs["admin"], `tollgate_sessions_open{protocol="postgres",target="app"}`, func(v float64) bool { return v == 0 })
	m = waitMetric(t, addrs["admin"], "tollgate_audit_batch_duration_seconds_count", func(v float64) bool { return v > 0 })
	for series, want := range map[string]float64{
		`tollgate_requests_total{protocol="http",target="demo",verdict="allow"}`:    2,
		`tollgate_requests_total{protocol="http",target="demo",verdict="hold"}`:     1,
		`tollgate_requests_total{protocol="http",target="demo",verdict="error"}`:    1,
		`tollgate_plugin_failures_total{plugin="faulty"}`:                           1,
		`tollgate_requests_total{protocol="postgres",target="app",verdict="allow"}`: 1,
		`tollgate_requests_total{protocol="postgres",target="app",verdict="deny"}`:  1,
		`tollgate_sessions_total{protocol="postgres",target="app"}`:                 1,
		`tollgate_sessions_open{protocol="postgres",target="app"}`:                  0,
		`tollgate_auth_failures_total{reason="no_token"}`:                           1,
		`tollgate_upstream_errors_total{protocol="postgres",target="down"}`:         1,
		`tollgate_approvals_pending`:                                                0,
		`tollgate_approval_decision_seconds_count{outcome="denied"}`:                1,
		`tollgate_plugin_failures_total{plugin="guard"}`:                            0,
		`tollgate_plugin_pool_exhausted_total{plugin="approve"}`:                    0,
		`tollgate_audit_rows_refused_total`:                                         0,
		`tollgate_audit_rows_dropped_total`:                                         0,
		`tollgate_audit_store_reachable`:                                            1,
	} {
		if got, ok := m[series]; !ok || got != want {
			t.Errorf("%s = %v (present %v), want %v", series, got, ok, want)
		}
	}
	for _, series := range []string{
		`tollgate_sessions_total{protocol="http",target="demo"}`,
		`tollgate_plugin_call_duration_seconds_count{plugin="guard"}`,
		`tollgate_plugin_call_duration_seconds_count{plugin="approve"}`,
		`tollgate_audit_rows_shipped_total`,
		`tollgate_go_goroutines`,
	} {
		if m[series] <= 0 {
			t.Errorf("%s = %v, want > 0", series, m[series])
		}
	}
	// No series is labelled by who or what: a principal, a statement or a
	// path would make a series per value.
	_, fams := scrape(t, addrs["admin"])
	for name, f := range fams {
		for _, mm := range f.Metric {
			for _, l := range mm.Label {
				if !slices.Contains([]string{"protocol", "target", "verdict", "reason", "plugin", "outcome", "le"}, l.GetName()) {
					t.Errorf("%s has label %s=%q", name, l.GetName(), l.GetValue())
				}
			}
		}
	}
	checkAlertMetrics(t, fams)
}

// checkAlertMetrics: every metric the shipped alert rules name is one the gateway exports (a
// histogram's _bucket, _sum and _count included).
func checkAlertMetrics(t *testing.T, fams map[string]*dto.MetricFamily) {
	t.Helper()
	exported := map[string]bool{}
	for name, f := range fams {
		exported[name] = true
		if f.GetType() == dto.MetricType_HISTOGRAM {
			for _, s := range []string{"_bucket", "_sum", "_count"} {
				exported[name+s] = true
			}
		}
	}
	b, err := os.ReadFile(filepath.Join("..", "..", "examples", "monitoring", "alerts.yml"))
	if err != nil {
		t.Fatal(err)
	}
	used := regexp.MustCompile(`\btollgate_[a-z_]+`).FindAllString(string(b), -1)
	if len(used) < 4 {
		t.Fatalf("alerts.yml names %d metrics", len(used))
	}
	for _, name := range used {
		if !exported[name] {
			t.Errorf("examples/monitoring/alerts.yml uses %s, which the gateway does not export", name)
		}
	}
}
