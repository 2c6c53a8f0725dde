package postgres_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/tollgate-dev/tollgate/host/access"
	"github.com/tollgate-dev/tollgate/host/approval"
	"github.com/tollgate-dev/tollgate/host/audit"
	"github.com/tollgate-dev/tollgate/host/config"
	"github.com/tollgate-dev/tollgate/host/event"
	"github.com/tollgate-dev/tollgate/host/gate"
	"github.com/tollgate-dev/tollgate/host/identity"
	"github.com/tollgate-dev/tollgate/host/plugin"
	"github.com/tollgate-dev/tollgate/internal/testenv"
	"github.com/tollgate-dev/tollgate/protocols/postgres"
)

type env struct {
	pg     *testenv.Postgres
	l      *postgres.Listener
	rec    *testenv.Recorder
	tok    string
	iss    *identity.DevIssuer
	caFile string
	dir    string
}

type envOptions struct {
	plugins   []*plugin.Plugin
	chain     event.Chain
	listener  func(*postgres.ListenerOptions)
	target    func(*config.Target)
	pg        *testenv.Postgres
	approvals *approval.Manager
	// recorder replaces the in-memory recorder (a benchmark records
	// through the production pipeline).
	recorder audit.Recorder
}

var (
	hostOnce sync.Once
	host     *plugin.Host
)

// loadPlugin loads a built-in plugin from this tree, compiled to Wasm.
func loadPlugin(t testing.TB, name string, cfg map[string]any) *plugin.Plugin {
	t.Helper()
	hostOnce.Do(func() {
		h, err := plugin.NewHost(plugin.Options{CacheDir: filepath.Join(os.TempDir(), "tollgate-test-wazero-cache"), MaskKey: []byte("k")})
		if err != nil {
			t.Fatal(err)
		}
		host = h
	})
	p, err := host.Load(context.Background(), config.Plugin{Name: name, Config: cfg}, testenv.WasmBytes(t, "plugins/"+name),
		plugin.Limits{MemoryPages: 512, Timeout: 2 * time.Second, Instances: 2})
	if err != nil {
		t.Fatalf("load %s: %v", name, err)
	}
	t.Cleanup(func() { p.Close(context.Background()) })
	return p
}

// defaultPlugins are guard (DROP and DELETE without WHERE denied) and
// mask (api_keys.secret masked by name, detectors on every value).
func defaultPlugins(t testing.TB) []*plugin.Plugin {
	return []*plugin.Plugin{
		loadPlugin(t, "guard", map[string]any{"allow_unknown_sql": false, "rules": []map[string]any{
			{"name": "no-drop", "kinds": []string{"pg.query"}, "sql": []string{"ddl"}, "reason": "DDL is not allowed for agents"},
			{"name": "no-unbounded-delete", "kinds": []string{"pg.query"}, "without_where": true, "reason": "DELETE and UPDATE need a WHERE"},
		}}),
		loadPlugin(t, "mask", map[string]any{"columns": []string{"secret"}}),
	}
}

// startEnv runs PostgreSQL (unless given), a dev issuer and one postgres
// listener in this process, TLS with a self-signed certificate.
func startEnv(t testing.TB, o envOptions) *env {
	t.Helper()
	e := &env{rec: &testenv.Recorder{}, dir: t.TempDir()}
	e.pg = o.pg
	if e.pg == nil {
		e.pg = testenv.StartPostgres(t, testenv.PostgresOptions{})
	}
	issLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	e.iss, err = identity.NewDevIssuer(&config.Dev{IssuerListen: issLn.Addr().String(), Audience: "tollgate"}, e.dir)
	if err != nil {
		t.Fatal(err)
	}
	issSrv := &http.Server{Handler: e.iss.Handler()}
	go issSrv.Serve(issLn)
	t.Cleanup(func() { issSrv.Close() })
	e.tok = e.mint(t, "agent")

	certPEM, keyPEM, err := testenv.SelfSigned("127.0.0.1", "localhost")
	if err != nil {
		t.Fatal(err)
	}
	e.caFile = filepath.Join(e.dir, "gw.crt")
	os.WriteFile(e.caFile, certPEM, 0o600)
	os.WriteFile(filepath.Join(e.dir, "gw.key"), keyPEM, 0o600)
	t.Setenv("PG_TARGET_PASSWORD", e.pg.Password)
	cfg, err := config.Parse("t.toml", []byte(fmt.Sprintf(`
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

[[listeners]]
name = "pg"
protocol = "postgres"
listen = "127.0.0.1:0"
tls_cert = %q
tls_key = %q

[[access]]
name = "agents"
targets = ["app"]
`, e.pg.Addr(), e.pg.User, e.caFile, filepath.Join(e.dir, "gw.key"))), e.dir)
	if err != nil {
		t.Fatal(err)
	}
	if err := cfg.ResolveSecrets(); err != nil {
		t.Fatal(err)
	}
	if o.listener != nil {
		o.listener(cfg.Listeners[0].Options.(*postgres.ListenerOptions))
	}
	if o.target != nil {
		o.target(&cfg.Targets[0])
	}
	chain := o.chain
	if chain == nil {
		if o.plugins != nil {
			chain = plugin.NewChain(o.plugins...)
		} else {
			chain = plugin.Empty{}
		}
	}
	var recorder audit.Recorder = e.rec
	if o.recorder != nil {
		recorder = o.recorder
	}
	e.l, err = postgres.New(cfg.Listeners[0], map[string]*config.Target{"app": &cfg.Targets[0]}, gate.Deps{
		GatewayID: "test",
		Auth:      identity.NewVerifier([]config.Issuer{e.iss.IssuerConfig()}, 10, identity.Options{}),
		Policy:    access.New(cfg.Access), Chain: chain, Recorder: recorder,
		Approvals: o.approvals,
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := e.l.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		e.l.Shutdown(ctx)
	})
	return e
}

func (e *env) mint(t testing.TB, sub string) string {
	t.Helper()
	tok, err := e.iss.Mint(identity.MintOptions{Subject: sub, Claims: map[string]any{"repository": "acme/app"}})
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// dsn is a libpq keyword/value string for the gateway, database = target.
func (e *env) dsn(extra string) string {
	host, port, _ := net.SplitHostPort(e.l.Addr().String())
	return fmt.Sprintf("host=%s port=%s user=agent dbname=app password=%s sslmode=verify-full sslrootcert=%s %s",
		host, port, e.tok, e.caFile, extra)
}

func (e *env) connect(t *testing.T, extra string, mode ...pgx.QueryExecMode) *pgx.Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cc, err := pgx.ParseConfig(e.dsn(extra))
	if err != nil {
		t.Fatal(err)
	}
	if len(mode) > 0 {
		cc.DefaultQueryExecMode = mode[0]
	}
	c, err := pgx.ConnectConfig(ctx, cc)
	if err != nil {
		t.Fatalf("connect through the gateway: %v", err)
	}
	t.Cleanup(func() { c.Close(context.Background()) })
	return c
}

// psqlEnv is the environment for psql and pgbench through the gateway.
func (e *env) psqlEnv() []string {
	host, port, _ := net.SplitHostPort(e.l.Addr().String())
	return append(os.Environ(), "PGHOST="+host, "PGPORT="+port, "PGUSER=agent", "PGDATABASE=app",
		"PGPASSWORD="+e.tok, "PGSSLMODE=verify-full", "PGSSLROOTCERT="+e.caFile, "PGCONNECT_TIMEOUT=10")
}

// checkNoLeak waits until the goroutine count is back at base.
func checkNoLeak(t *testing.T, base int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		n := runtime.NumGoroutine()
		if n <= base {
			return
		}
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<20)
			buf = buf[:runtime.Stack(buf, true)]
			t.Fatalf("goroutines: %d, baseline %d:\n%s", n, base, buf)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func rowsOf(rows []audit.Row, kind string) []audit.Row {
	var out []audit.Row
	for _, r := range rows {
		if r.Kind == kind {
			out = append(out, r)
		}
	}
	return out
}

func containsAny(s string, subs ...string) bool {
	for _, x := range subs {
		if strings.Contains(s, x) {
			return true
		}
	}
	return false
}

type auditRow = audit.Row

func writeFile(t *testing.T, path string, b []byte) {
	t.Helper()
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

// pipelineResults reads a pipeline's results to its end, a word each: a
// result's first value (its command tag when it has no rows), E<SQLSTATE>
// for an error, "sync" for a Sync. It stops at 20 words, so a gateway
// that answers too much cannot hang the test.
func pipelineResults(t *testing.T, p *pgconn.Pipeline) string {
	t.Helper()
	var got []string
	for len(got) < 20 {
		r, err := p.GetResults()
		var pe *pgconn.PgError
		switch {
		case errors.As(err, &pe):
			got = append(got, "E"+pe.Code)
			continue
		case err != nil:
			t.Fatalf("pipeline after %q: %v", got, err)
		case r == nil:
			return strings.Join(got, " ")
		}
		switch r := r.(type) {
		case *pgconn.ResultReader:
			res := r.Read()
			switch {
			case errors.As(res.Err, &pe):
				got = append(got, "E"+pe.Code)
			case res.Err != nil:
				t.Fatalf("pipeline after %q: %v", got, res.Err)
			case len(res.Rows) > 0:
				got = append(got, string(res.Rows[0][0]))
			default:
				got = append(got, res.CommandTag.String())
			}
		case *pgconn.PipelineSync:
			got = append(got, "sync")
		}
	}
	return strings.Join(got, " ")
}

// targetOptions are the postgres keys of a target the env parsed.
func targetOptions(t *config.Target) *postgres.TargetOptions {
	return t.Options.(*postgres.TargetOptions)
}
