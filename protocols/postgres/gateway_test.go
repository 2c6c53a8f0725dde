package postgres_test

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/tollgate-dev/tollgate/host/audit"
	"github.com/tollgate-dev/tollgate/host/testenv"
)

// The gateway binary with a postgres listener and target from
// gateway.toml: `gateway check` accepts the config, `serve --dev` makes
// the listener's certificate, psql logs in with a dev token, the guard
// plugin denies a DROP, and the audit file holds the session.
func TestGatewayBinaryPostgres(t *testing.T) {
	testenv.RequireCommand(t, "psql")
	pg := testenv.StartPostgres(t, testenv.PostgresOptions{})
	pg.Exec(t, apiKeysSQL)
	guard := testenv.BuildWasm(t, "plugins/guard")
	listen, issuer := testenv.FreeAddr(t), testenv.FreeAddr(t)
	cfg := fmt.Sprintf(`
[gateway]
data_dir = "data"
shutdown_grace = "5s"
[dev]
issuer_listen = %q

[[targets]]
name = "app"
protocol = "postgres"
upstream = %q
sslmode = "disable"
[targets.credential]
type = "password"
username = %q
password = "env:APP_DB_PASSWORD"

[[listeners]]
name = "pg"
protocol = "postgres"
listen = %q

[[access]]
name = "agents"
targets = ["app"]

[[plugins]]
name = "guard"
path = %q
timeout = "2s"
[plugins.config]
rules = [ { name = "no-ddl", kinds = ["pg.query"], sql = ["ddl"], reason = "no DDL through the gateway" } ]
`, issuer, pg.Addr(), pg.User, listen, guard)
	env := []string{"APP_DB_PASSWORD=" + pg.Password}
	dir := t.TempDir()
	os.WriteFile(dir+"/gateway.toml", []byte(cfg), 0o600)
	if out, errOut, code := testenv.RunGateway(t, dir, env, "check", "--dev", "-c", "gateway.toml"); code != 0 {
		t.Fatalf("gateway check: %s %s", out, errOut)
	}
	gw := testenv.StartGateway(t, testenv.GatewayOptions{Config: cfg, Dev: true, Env: env, Wait: []string{listen, issuer}})
	tok, errOut, code := gw.Run("token", "-c", "gateway.toml", "--sub", "ci-agent", "--claim", "repository=acme/app")
	if code != 0 {
		t.Fatalf("gateway token: %s", errOut)
	}
	host, port, _ := net.SplitHostPort(listen)
	psql := func(sql string) (string, error) {
		cmd := exec.Command("psql", "-X", "-A", "-t", "-c", sql,
			fmt.Sprintf("host=%s port=%s dbname=app user=ci sslmode=require", host, port))
		cmd.Env = append(os.Environ(), "PGPASSWORD="+strings.TrimSpace(tok))
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	out, err := psql("SELECT owner FROM api_keys ORDER BY id")
	if err != nil || strings.TrimSpace(out) != "ci\nops" {
		t.Fatalf("select: %v %q", err, out)
	}
	out, err = psql("DROP TABLE api_keys")
	if err == nil || !strings.Contains(out, "no DDL through the gateway") {
		t.Fatalf("drop: %v %q", err, out)
	}
	out, _ = psql("SELECT 1")
	if !strings.Contains(out, "1") {
		t.Fatalf("after deny: %q", out)
	}
	// Without TLS the token is refused before it is sent.
	cmd := exec.Command("psql", "-X", "-c", "SELECT 1", fmt.Sprintf("host=%s port=%s dbname=app user=ci sslmode=disable", host, port))
	cmd.Env = append(os.Environ(), "PGPASSWORD=x")
	b, _ := cmd.CombinedOutput()
	if !strings.Contains(string(b), "TLS is required") {
		t.Fatalf("plaintext login: %s", b)
	}
	row := gw.WaitAudit("data/audit.jsonl", "for the denied DROP", func(r audit.Row) bool {
		return r.Kind == "pg.query" && r.Verdict == "deny" && strings.Contains(r.Request["sql"], "DROP")
	})
	if row.Subject != "ci-agent" || row.Claims["repository"] != "acme/app" || row.Plugin != "guard" {
		t.Errorf("deny row: %+v", row)
	}
	gw.WaitAudit("data/audit.jsonl", "closing a session", func(r audit.Row) bool { return r.Kind == audit.KindSessionClose })
	if err := gw.Stop(); err != nil {
		t.Fatal(err)
	}
	raw, _ := os.ReadFile(gw.Dir + "/data/audit.jsonl")
	if strings.Contains(string(raw), pg.Password) || strings.Contains(string(raw), strings.TrimSpace(tok)) {
		t.Fatal("a credential is in the audit file")
	}
	if strings.Contains(gw.Output(), pg.Password) || strings.Contains(gw.Output(), strings.TrimSpace(tok)) {
		t.Fatal("a credential is in the gateway's log")
	}
	if _, errOut, code := gw.Run("audit", "verify", "-c", "gateway.toml"); code != 0 {
		t.Fatalf("audit verify: %s", errOut)
	}
}
