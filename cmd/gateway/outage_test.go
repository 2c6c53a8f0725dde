package main_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tollgate-dev/tollgate/host/audit/clickhouse"
	"github.com/tollgate-dev/tollgate/internal/testenv"
)

// outageConfig is a gateway on the ClickHouse store (audit and approvals)
// at chAddr, with the dev issuer and the demo upstream.
func outageConfig(t *testing.T, chAddr string, extraAudit string) (cfg, dir string, addrs map[string]string) {
	t.Helper()
	addrs = map[string]string{}
	for _, k := range []string{"issuer", "echo", "http", "admin"} {
		addrs[k] = testenv.FreeAddr(t)
	}
	dir = t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, ".tollgate"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, ".tollgate", "demo-token"), []byte("demo-credential-xyz\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg = fmt.Sprintf(`
[gateway]
id = "outage-gw"
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

[[listeners]]
name = "http"
protocol = "http"
listen = %q
[[listeners.routes]]
target = "demo"
path_prefix = "/demo"

[[access]]
name = "dev-tokens-reach-demo"
issuers = ["dev"]
targets = ["demo"]

[admin]
listen = %q
groups = ["auditors"]

[approvals]
store = "clickhouse"

[audit]
store = "clickhouse"
batch_age = "100ms"
%s
[audit.clickhouse]
addrs = [%q]
database = "outage"
`, addrs["issuer"], addrs["echo"], addrs["echo"], addrs["http"], addrs["admin"], extraAudit, chAddr)
	return cfg, dir, addrs
}

// metric reads one figure of the admin /metrics page.
func metric(t *testing.T, admin, name string) string {
	t.Helper()
	resp, err := http.Get("http://" + admin + "/metrics")
	if err != nil {
		t.Fatalf("metrics: %v", err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, name+" "); ok {
			return v
		}
	}
	t.Fatalf("metrics: no %s in\n%s", name, b)
	return ""
}

// get sends one request through the gateway and returns its status.
func get(t *testing.T, c *http.Client, url, token string) int {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, url, nil)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

// The gateway starts while ClickHouse is down (nothing listens on its
// port), says so in its log and its metrics, answers requests meanwhile,
// and once a real ClickHouse starts on that port it applies the schema
// (audit and approval tables) and ships every spooled row: each answered
// request has exactly one row, and the trail verifies.
func TestServeThroughClickHouseOutage(t *testing.T) {
	ch := testenv.NewClickHouse(t) // configured, not started
	cfg, dir, addrs := outageConfig(t, ch.Addr(), "")
	gw := testenv.StartGateway(t, testenv.GatewayOptions{Config: cfg, Dir: dir, Dev: true,
		Wait: []string{addrs["issuer"], addrs["echo"], addrs["http"], addrs["admin"]}})
	gw.WaitOutput("audit: the audit store is unreachable", 1)
	if !strings.Contains(gw.Output(), "approval: the shared approval store is unavailable") {
		t.Errorf("no log line says the approval store is down:\n%s", gw.Output())
	}
	if v := metric(t, addrs["admin"], "tollgate_audit_store_reachable"); v != "0" {
		t.Errorf("tollgate_audit_store_reachable = %s during the outage, want 0", v)
	}

	tok, errOut, code := gw.Run("token", "-c", gw.Config, "--sub", "agent@example.com")
	if code != 0 {
		t.Fatalf("token: %s", errOut)
	}
	token := strings.TrimSpace(tok)
	const n = 40
	// A new connection every few requests: several sessions, each with
	// its open and close rows.
	answered := map[string]int{}
	for i := range n {
		c := &http.Client{Transport: &http.Transport{DisableKeepAlives: i%4 == 0}}
		path := fmt.Sprintf("/hello/%d", i)
		answered[path] = get(t, c, "http://"+addrs["http"]+"/demo"+path, token)
		if answered[path] != http.StatusOK {
			t.Errorf("GET %s during the outage: %d, want 200 (the spool carries it)", path, answered[path])
		}
		c.CloseIdleConnections()
	}

	ch.Start(t)
	store, err := clickhouse.Open(context.Background(), clickhouse.Options{Addrs: []string{ch.Addr()}, Database: "outage"})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	// Exactly once, as analysts read it (FINAL) and as stored (no FINAL:
	// the outage was a refused connection, so no batch was half sent).
	const q = "SELECT request_values[indexOf(request_keys, 'path')] AS p, count() FROM outage.events%s WHERE kind = 'http.request' GROUP BY p ORDER BY p"
	var got map[string]string
	for deadline := time.Now().Add(60 * time.Second); ; {
		_, rows, err := store.Query(context.Background(), fmt.Sprintf(q, " FINAL"))
		got = map[string]string{}
		for _, r := range rows {
			got[r[0]] = r[1]
		}
		if err == nil && len(got) >= len(answered) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("rows shipped after ClickHouse started: %v (err %v), want %d paths\n%s", got, err, len(answered), gw.Output())
		}
		time.Sleep(200 * time.Millisecond)
	}
	_, raw, err := store.Query(context.Background(), fmt.Sprintf(q, ""))
	if err != nil {
		t.Fatal(err)
	}
	rawCount := map[string]string{}
	for _, r := range raw {
		rawCount[r[0]] = r[1]
	}
	for path := range answered {
		if got[path] != "1" || rawCount[path] != "1" {
			t.Errorf("%s: %s rows (FINAL), %s stored, want exactly 1", path, got[path], rawCount[path])
		}
	}
	if len(got) != len(answered) {
		t.Errorf("rows for %d paths, %d requests answered: %v", len(got), len(answered), got)
	}
	gw.WaitOutput("audit: the audit store answers again", 1)
	if v := metric(t, addrs["admin"], "tollgate_audit_store_reachable"); v != "1" {
		t.Errorf("tollgate_audit_store_reachable = %s after ClickHouse started, want 1", v)
	}
	// The approval store created its tables once the server answered.
	for deadline := time.Now().Add(30 * time.Second); ; {
		_, rows, err := store.Query(context.Background(), "EXISTS TABLE outage.approvals")
		if err == nil && len(rows) == 1 && rows[0][0] == "1" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("approval tables not created after ClickHouse started: %v %v\n%s", rows, err, gw.Output())
		}
		time.Sleep(200 * time.Millisecond)
	}

	// Every session was opened and closed in the trail: verify exits 0.
	if err := gw.Stop(); err != nil {
		t.Fatal(err)
	}
	out, errOut, code := gw.Run("audit", "verify", "-c", gw.Config)
	if code != 0 || !strings.Contains(out, "\tcomplete\t") || strings.Contains(out, "\topen\t") {
		t.Fatalf("audit verify: exit %d\n%s%s", code, out, errOut)
	}
}

// With a small spool and ClickHouse down, requests fill the spool until
// the gateway refuses them (503); every answer, 200 or 503, has its row
// once ClickHouse is back (the refusals in minimal form, from the spool's
// reserve), every session is opened and closed in the trail, and `audit
// verify` exits 0 and calls it an outage.
func TestRefusalsHaveRowsWhenTheSpoolIsFull(t *testing.T) {
	ch := testenv.NewClickHouse(t)
	cfg, dir, addrs := outageConfig(t, ch.Addr(), "[audit.spool]\nmax_bytes = 1048576\n")
	gw := testenv.StartGateway(t, testenv.GatewayOptions{Config: cfg, Dir: dir, Dev: true,
		Wait: []string{addrs["issuer"], addrs["echo"], addrs["http"], addrs["admin"]}})
	tok, errOut, code := gw.Run("token", "-c", gw.Config, "--sub", "agent@example.com")
	if code != 0 {
		t.Fatalf("token: %s", errOut)
	}
	token := strings.TrimSpace(tok)
	pad := strings.Repeat("p", 4000) // about 4 KiB a row: the spool fills in a few hundred requests
	status := map[string]int{}
	refused := 0
	c := &http.Client{Transport: &http.Transport{}}
	for i := 0; refused < 20; i++ {
		if i == 5000 {
			t.Fatalf("no request refused after %d with a 1 MiB spool", i)
		}
		if i%10 == 0 { // a new session every ten requests
			c.CloseIdleConnections()
		}
		path := fmt.Sprintf("/r/%d", i)
		status[path] = get(t, c, "http://"+addrs["http"]+"/demo"+path+"?pad="+pad, token)
		switch status[path] {
		case http.StatusOK:
		case http.StatusServiceUnavailable:
			refused++
		default:
			t.Fatalf("GET %s: %d", path, status[path])
		}
	}
	c.CloseIdleConnections()
	if v := metric(t, addrs["admin"], "tollgate_audit_rows_reserved_total"); v == "0" {
		t.Errorf("tollgate_audit_rows_reserved_total = 0 after %d refusals", refused)
	}
	// Each refusal counts once as a request the full trail refused.
	if v := metric(t, addrs["admin"], "tollgate_audit_admit_refused_total"); v != strconv.Itoa(refused) {
		t.Errorf("tollgate_audit_admit_refused_total = %s after %d refusals", v, refused)
	}

	ch.Start(t)
	store, err := clickhouse.Open(context.Background(), clickhouse.Options{Addrs: []string{ch.Addr()}, Database: "outage"})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	const q = `SELECT request_values[indexOf(request_keys, 'path')] AS p, status,
		annotation_values[indexOf(annotation_keys, 'audit.spool_full')] AS full, count()
		FROM outage.events FINAL WHERE kind = 'http.request' GROUP BY p, status, full`
	type got struct {
		status, full string
		n            int
	}
	var rows map[string][]got
	for deadline := time.Now().Add(90 * time.Second); ; {
		_, rs, err := store.Query(context.Background(), q)
		rows = map[string][]got{}
		total := 0
		for _, r := range rs {
			var n int
			fmt.Sscan(r[3], &n)
			rows[r[0]] = append(rows[r[0]], got{r[1], r[2], n})
			total += n
		}
		if err == nil && total >= len(status) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d request rows in ClickHouse (err %v)\n%s", total, len(status), err, gw.Output())
		}
		time.Sleep(200 * time.Millisecond)
	}
	for path, st := range status {
		g := rows[path]
		if st == http.StatusServiceUnavailable {
			// Refused before routing: the row has the path as the
			// client sent it.
			g = rows["/demo"+path]
		}
		if len(g) != 1 || g[0].n != 1 || g[0].status != fmt.Sprint(st) {
			t.Errorf("%s answered %d: rows %+v, want exactly one with that status", path, st, g)
			continue
		}
		if st == http.StatusServiceUnavailable && g[0].full == "" {
			t.Errorf("%s refused: its row is not marked audit.spool_full: %+v", path, g)
		}
	}
	// Every session opened in the trail is closed there.
	const sq = "SELECT countIf(kind = 'session.open'), countIf(kind = 'session.close') FROM outage.events FINAL WHERE protocol = 'http'"
	for deadline := time.Now().Add(60 * time.Second); ; {
		_, rs, err := store.Query(context.Background(), sq)
		if err == nil && len(rs) == 1 && rs[0][0] == rs[0][1] && rs[0][0] != "0" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("session open/close rows: %v (err %v)", rs, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
	if err := gw.Stop(); err != nil {
		t.Fatal(err)
	}
	out, errOut, code := gw.Run("audit", "verify", "-c", gw.Config)
	if code != 0 || strings.Contains(out, "\tgap\t") || strings.Contains(out, "\topen\t") || !strings.Contains(errOut, "an outage") {
		t.Fatalf("audit verify: exit %d\n%s%s", code, out, errOut)
	}
}
