package postgres_test

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/tollgate-dev/tollgate/host/audit"
	"github.com/tollgate-dev/tollgate/internal/testenv"
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
	cfg := binaryConfig(issuer, pg, listen, "", fmt.Sprintf(`
[[plugins]]
name = "guard"
path = %q
timeout = "2s"
[plugins.config]
rules = [ { name = "no-ddl", kinds = ["pg.query"], sql = ["ddl"], reason = "no DDL through the gateway" } ]
`, guard))
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

// The attacks of issue 11 against the gateway binary, as an operator
// runs it: a column declared sensitive stays masked under an alias and
// its expressions are refused; a refused Parse does not swap a prepared
// statement; an encoding switch pipelined before a statement that would
// read differently under it ends the session; each leaves its row.
func TestGatewayBinaryAttacks(t *testing.T) {
	testenv.RequireCommand(t, "psql")
	pg := testenv.StartPostgres(t, testenv.PostgresOptions{})
	pg.Exec(t, apiKeysSQL)
	guard := testenv.BuildWasm(t, "plugins/guard")
	listen, issuer := testenv.FreeAddr(t), testenv.FreeAddr(t)
	cfg := binaryConfig(issuer, pg, listen, `[[targets.sensitive]]
columns = ["public.api_keys.secret"]
`, fmt.Sprintf(`
[[plugins]]
name = "guard"
path = %q
[plugins.config]
rules = [ { name = "no-ddl", kinds = ["pg.query"], sql = ["ddl"], reason = "no DDL through the gateway" } ]
`, guard))
	gw := testenv.StartGateway(t, testenv.GatewayOptions{Config: cfg, Dev: true, Env: []string{"APP_DB_PASSWORD=" + pg.Password}, Wait: []string{listen, issuer}})
	tok, errOut, code := gw.Run("token", "-c", "gateway.toml", "--sub", "ci-agent")
	if code != 0 {
		t.Fatalf("gateway token: %s", errOut)
	}
	host, port, _ := net.SplitHostPort(listen)
	dsn := fmt.Sprintf("host=%s port=%s dbname=app user=ci sslmode=require password=%s", host, port, strings.TrimSpace(tok))
	psql := func(sql string) (string, error) {
		out, err := exec.Command("psql", "-X", "-A", "-t", "-c", sql, dsn).CombinedOutput()
		return string(out), err
	}
	if out, err := psql("SELECT secret AS s FROM api_keys ORDER BY id"); err != nil || strings.TrimSpace(out) != "[masked]\n[masked]" {
		t.Fatalf("aliased sensitive column: %v %q", err, out)
	}
	if out, err := psql("SELECT upper(secret) FROM api_keys"); err == nil || !strings.Contains(out, "public.api_keys.secret") || strings.Contains(out, "SK_LIVE") {
		t.Fatalf("expression of a sensitive column: %v %q", err, out)
	}

	ctx := context.Background()
	raw := func() *pgconn.PgConn {
		c, err := pgconn.Connect(ctx, dsn)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close(ctx) })
		return c
	}
	// The prepared-statement swap.
	c := raw()
	fe := c.Frontend()
	send := func(msgs ...pgproto3.FrontendMessage) string {
		for _, m := range msgs {
			fe.Send(m)
		}
		if err := fe.Flush(); err != nil {
			return "EOF"
		}
		var got []string
		for {
			m, err := fe.Receive()
			if err != nil {
				return strings.Join(append(got, "EOF"), " ")
			}
			switch m := m.(type) {
			case *pgproto3.ErrorResponse:
				got = append(got, m.Severity+":"+m.Code)
			case *pgproto3.ReadyForQuery:
				return strings.Join(append(got, "Z"), " ")
			}
		}
	}
	send(&pgproto3.Parse{Name: "s1", Query: "DROP TABLE victims"}, &pgproto3.Sync{})
	send(&pgproto3.Parse{Name: "s1", Query: "SELECT 1"}, &pgproto3.Sync{})
	if got := send(&pgproto3.Bind{PreparedStatement: "s1"}, &pgproto3.Execute{}, &pgproto3.Sync{}); got != "ERROR:42501 Z" {
		t.Fatalf("the swapped statement: %q", got)
	}
	if strings.TrimSpace(pg.Exec(t, "SELECT count(*) FROM pg_class WHERE relname = 'victims'")) != "1" {
		t.Fatal("victims was dropped by the swap")
	}
	// The encoding switch, pipelined before the statement it would hide.
	c = raw()
	fe = c.Frontend()
	got := send(&pgproto3.Query{String: "SELECT set_config('client_' || 'encoding', 'SJ' || 'IS', false)"},
		&pgproto3.Query{String: "select E'\x95\x5c'; drop table victims; -- '"})
	if !strings.Contains(got, "FATAL:0A000") {
		t.Fatalf("the encoding switch: %q", got)
	}
	if strings.TrimSpace(pg.Exec(t, "SELECT count(*) FROM pg_class WHERE relname = 'victims'")) != "1" {
		raw, _ := os.ReadFile(gw.Dir + "/data/audit.jsonl")
		t.Fatalf("victims was dropped; got %q; audit:\n%s", got, raw)
	}
	gw.WaitAudit("data/audit.jsonl", "for the swapped statement, denied as the DROP it is", func(r audit.Row) bool {
		return r.Kind == "pg.query" && r.Verdict == "deny" && r.Request["sql"] == "DROP TABLE victims" && r.Request["statement"] == "s1"
	})
	gw.WaitAudit("data/audit.jsonl", "for the refused expression", func(r audit.Row) bool {
		return r.Kind == "pg.query" && r.Verdict == "deny" && strings.Contains(r.Error, "public.api_keys.secret")
	})
	gw.WaitAudit("data/audit.jsonl", "for the session the encoding ended", func(r audit.Row) bool {
		return r.Kind == audit.KindSessionClose && strings.Contains(r.Error, "client_encoding became SJIS")
	})
}

// binaryConfig is gateway.toml for the tests of the gateway binary: a dev
// issuer, target "app" on pg with its password from APP_DB_PASSWORD, a
// postgres listener and an access rule for everyone. targetExtra is
// added to the target's table (after its credential), rest at the end.
func binaryConfig(issuer string, pg *testenv.Postgres, listen, targetExtra, rest string) string {
	return fmt.Sprintf(`
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
%s
[[listeners]]
name = "pg"
protocol = "postgres"
listen = %q

[[access]]
name = "agents"
targets = ["app"]
%s`, issuer, pg.Addr(), pg.User, targetExtra, listen, rest)
}
