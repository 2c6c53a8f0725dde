package postgres_test

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/tollgate-dev/tollgate/host/audit"
	"github.com/tollgate-dev/tollgate/internal/testenv"
)

const apiKeysSQL = `CREATE TABLE api_keys (id int PRIMARY KEY, owner text, secret text);
INSERT INTO api_keys VALUES (1, 'ci', 'sk_live_0123456789abcdef'), (2, 'ops', 'sk_live_fedcba9876543210');
CREATE TABLE victims (id int);
INSERT INTO victims VALUES (1), (2);`

// The real guard and mask plugins: DROP TABLE and DELETE without WHERE
// are denied with 42501 in both protocols and the connection goes on;
// api_keys.secret comes back masked; every verdict is in the audit trail.
func TestGuardAndMask(t *testing.T) {
	e := startEnv(t, envOptions{plugins: defaultPlugins(t)})
	e.pg.Exec(t, apiKeysSQL)
	ctx := context.Background()
	for _, mode := range []pgx.QueryExecMode{pgx.QueryExecModeSimpleProtocol, pgx.QueryExecModeExec, pgx.QueryExecModeCacheStatement} {
		t.Run(mode.String(), func(t *testing.T) {
			c := e.connect(t, "", mode)
			for _, sql := range []string{"DROP TABLE victims", "DELETE FROM victims"} {
				_, err := c.Exec(ctx, sql)
				var pe *pgconn.PgError
				if !errors.As(err, &pe) || pe.Code != "42501" {
					t.Fatalf("%s: want 42501, got %v", sql, err)
				}
				if !containsAny(pe.Message, "DDL is not allowed", "need a WHERE") {
					t.Errorf("%s: reason %q", sql, pe.Message)
				}
			}
			var n int
			if err := c.QueryRow(ctx, "SELECT count(*) FROM victims WHERE id > $1", 0).Scan(&n); err != nil || n != 2 {
				t.Fatalf("after the denies: %d %v", n, err)
			}
			rows, err := c.Query(ctx, "SELECT id, owner, secret FROM api_keys ORDER BY id")
			if err != nil {
				t.Fatal(err)
			}
			var secrets []string
			for rows.Next() {
				var id int
				var owner, secret string
				if err := rows.Scan(&id, &owner, &secret); err != nil {
					t.Fatal(err)
				}
				if owner != "ci" && owner != "ops" {
					t.Errorf("owner %q changed", owner)
				}
				secrets = append(secrets, secret)
			}
			if rows.Err() != nil || len(secrets) != 2 {
				t.Fatalf("rows: %v %v", secrets, rows.Err())
			}
			for _, s := range secrets {
				if strings.Contains(s, "sk_live") {
					t.Fatalf("secret not masked: %q", s)
				}
			}
		})
	}
	// COPY TO STDOUT is masked by column name too; a form whose columns
	// the gateway cannot name is refused rather than passed unmasked.
	var buf strings.Builder
	cc := e.connect(t, "").PgConn()
	if _, err := cc.CopyTo(ctx, &buf, "COPY (SELECT owner, secret FROM api_keys) TO STDOUT WITH (FORMAT csv)"); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(buf.String(), "sk_live") || !strings.Contains(buf.String(), "ci,") {
		t.Fatalf("COPY csv: %q", buf.String())
	}
	for _, q := range []string{"COPY api_keys TO STDOUT (DELIMITER '|')", "COPY api_keys TO STDOUT (FORMAT binary)"} {
		buf.Reset()
		_, err := cc.CopyTo(ctx, &buf, q)
		var pe *pgconn.PgError
		if !errors.As(err, &pe) || pe.Code != "42501" || strings.Contains(buf.String(), "sk_live") {
			t.Fatalf("%s: %v %q", q, err, buf.String())
		}
	}
	var one int
	if err := cc.ExecParams(ctx, "SELECT 1", nil, nil, nil, nil).Read().Err; err != nil {
		t.Fatalf("after a withheld COPY: %v %d", err, one)
	}

	// A deny inside a pipeline: the statements before it run, the rest up
	// to Sync is skipped, and the next Sync's statements run.
	pc := e.connect(t, "").PgConn()
	p := pc.StartPipeline(ctx)
	p.SendQueryParams("INSERT INTO victims VALUES (10)", nil, nil, nil, nil)
	p.SendQueryParams("DROP TABLE victims", nil, nil, nil, nil)
	p.SendQueryParams("INSERT INTO victims VALUES (11)", nil, nil, nil, nil)
	p.Sync()
	p.SendQueryParams("SELECT count(*) FROM victims", nil, nil, nil, nil)
	p.Sync()
	got := pipelineResults(t, p)
	p.Close()
	if got != "INSERT 0 1 E42501 sync 3 sync" {
		t.Fatalf("pipeline with a deny: %s", got)
	}
	e.pg.Exec(t, "DELETE FROM victims WHERE id = 10")

	// In binary format a masked value cannot be rewritten: it is NULL.
	c := e.connect(t, "")
	rr := c.PgConn().ExecParams(ctx, "SELECT owner, secret FROM api_keys WHERE id = 1", nil, nil, nil, []int16{1})
	if !rr.NextRow() || string(rr.Values()[0]) != "ci" || rr.Values()[1] != nil {
		t.Fatalf("binary masked row: %q", rr.Values())
	}
	rr.Close()
	e.rec.Wait(t, "saying the binary value became NULL", func(r audit.Row) bool {
		return r.Kind == "pg.query" && r.Annotations["masked_binary_as_null"] == "1"
	})
	if n := e.pg.Exec(t, "SELECT count(*) FROM victims"); n != "2" {
		t.Fatalf("victims has %s rows: a denied statement ran", n)
	}
	deny := e.rec.Wait(t, "for the DROP", func(r audit.Row) bool {
		return r.Kind == "pg.query" && strings.Contains(r.Request["sql"], "DROP TABLE") && r.Verdict == "deny"
	})
	if deny.Plugin != "guard" || deny.Subject != "agent" {
		t.Errorf("deny row: %+v", deny)
	}
	masked := e.rec.Wait(t, "for the masked select", func(r audit.Row) bool {
		return r.Kind == "pg.query" && strings.Contains(r.Request["sql"], "api_keys") && r.Annotations["mask.columns"] != ""
	})
	if masked.Annotations["pg.rows"] != "2" || masked.Status != "SELECT 2" {
		t.Errorf("masked row: %+v", masked)
	}
}

// A column masked by name is masked whatever its length: a long value
// that no detector recognizes (prose) must not pass.
func TestMaskedColumnLongValue(t *testing.T) {
	e := startEnv(t, envOptions{plugins: defaultPlugins(t)})
	e.pg.Exec(t, `CREATE TABLE notes (id int, secret text); INSERT INTO notes VALUES (1, repeat('lorem ipsum ', 100)), (2, 'short one')`)
	c := e.connect(t, "")
	rows, err := c.Query(context.Background(), "SELECT id, secret FROM notes ORDER BY id")
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for rows.Next() {
		var id int
		var secret string
		if err := rows.Scan(&id, &secret); err != nil {
			t.Fatal(err)
		}
		if strings.Contains(secret, "lorem") || strings.Contains(secret, "short") {
			t.Errorf("row %d: the secret column passed unmasked (%d bytes)", id, len(secret))
		}
		n++
	}
	if rows.Err() != nil || n != 2 {
		t.Fatalf("%d rows, %v", n, rows.Err())
	}
}

// psql, scripted: \d, \copy both ways, a transaction, an error inside
// one, the masked column, and a cancelled pg_sleep (SIGINT, as Ctrl-C).
func TestPsqlSession(t *testing.T) {
	testenv.RequireCommand(t, "psql")
	e := startEnv(t, envOptions{plugins: defaultPlugins(t)})
	e.pg.Exec(t, apiKeysSQL)
	dir := t.TempDir()
	script := `\set ON_ERROR_STOP 0
\d api_keys
SELECT owner, secret FROM api_keys ORDER BY id;
BEGIN;
INSERT INTO victims VALUES (3);
SELECT 1/0;
ROLLBACK;
BEGIN;
INSERT INTO victims VALUES (4);
COMMIT;
\copy victims to '` + dir + `/out.txt'
\copy victims from '` + dir + `/out.txt'
\copy api_keys to '` + dir + `/keys.txt'
SELECT count(*) AS victims FROM victims;
`
	cmd := exec.Command("psql", "-X", "-f", "-")
	cmd.Env = e.psqlEnv()
	cmd.Stdin = strings.NewReader(script)
	out, err := cmd.CombinedOutput()
	s := string(out)
	if err != nil {
		t.Fatalf("psql: %v\n%s", err, s)
	}
	for _, want := range []string{`Table "public.api_keys"`, "secret", "division by zero", "COMMIT", "COPY 3", "victims", " 6\n"} {
		if !strings.Contains(s, want) {
			t.Errorf("psql output lacks %q:\n%s", want, s)
		}
	}
	if strings.Contains(s, "sk_live") {
		t.Errorf("psql printed an unmasked secret:\n%s", s)
	}
	// \copy is COPY TO STDOUT: the secret column is masked by name there too.
	keys, _ := os.ReadFile(dir + "/keys.txt")
	if strings.Contains(string(keys), "sk_live") || !strings.Contains(string(keys), "ci\t") {
		t.Errorf("\\copy api_keys wrote:\n%s", keys)
	}

	// Cancel: SIGINT makes psql send a CancelRequest on a new connection.
	cmd = exec.Command("psql", "-X", "-c", "SELECT pg_sleep(30)")
	cmd.Env = e.psqlEnv()
	var buf strings.Builder
	cmd.Stdout, cmd.Stderr = &buf, &buf
	start := time.Now()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	e.rec.Wait(t, "for pg_sleep to start", func(r audit.Row) bool {
		return r.Kind == audit.KindSessionOpen && r.Time.After(start)
	})
	time.Sleep(300 * time.Millisecond)
	cmd.Process.Signal(syscall.SIGINT)
	cmd.Wait()
	if time.Since(start) > 15*time.Second || !strings.Contains(buf.String(), "canceling statement due to user request") {
		t.Fatalf("cancel: after %v: %s", time.Since(start), buf.String())
	}
}

// pgbench initializes and runs its select-only and simple-update loads
// through the gateway (default plugins) without a failed transaction.
func TestPgbench(t *testing.T) {
	testenv.RequireCommand(t, "pgbench")
	bare := startEnv(t, envOptions{})
	e := startEnv(t, envOptions{plugins: defaultPlugins(t), pg: bare.pg})
	run := func(args ...string) string {
		t.Helper()
		cmd := exec.Command("pgbench", args...)
		cmd.Env = e.psqlEnv()
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("pgbench %v: %v\n%s", args, err, out)
		}
		return string(out)
	}
	// Initialization is DDL, which the guard denies: it goes through a
	// listener without plugins (COPY FROM STDIN, VACUUM, ALTER TABLE).
	cmd := exec.Command("pgbench", "-i", "-s", "1", "-q")
	cmd.Env = bare.psqlEnv()
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("pgbench -i: %v\n%s", err, out)
	}
	for _, args := range [][]string{{"-S", "-T", "3", "-c", "4", "-j", "2"}, {"-N", "-T", "3", "-c", "4", "-j", "2"}, {"-S", "-M", "prepared", "-T", "2", "-c", "2"}} {
		out := run(args...)
		if !strings.Contains(out, "number of failed transactions: 0") {
			t.Errorf("pgbench %v:\n%s", args, out)
		}
		t.Logf("pgbench %v: %s", args, tpsLine(out))
	}
}

func tpsLine(out string) string {
	for _, l := range strings.Split(out, "\n") {
		if strings.HasPrefix(l, "tps") {
			return l
		}
	}
	return ""
}
