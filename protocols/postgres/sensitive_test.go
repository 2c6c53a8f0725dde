package postgres_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/tollgate-dev/tollgate/host/audit"
	"github.com/tollgate-dev/tollgate/host/config"
	"github.com/tollgate-dev/tollgate/internal/testenv"
	"github.com/tollgate-dev/tollgate/protocols/postgres"
)

// ghToken is a value every mask detector set finds (a GitHub token).
const ghToken = "ghp_R2d2C3poBb8LukeLeiaHanChewie0123456"

const notesSQL = `CREATE TABLE notes (id int, body text);
INSERT INTO notes VALUES (1, '` + ghToken + `');
CREATE FUNCTION shout(t text) RETURNS int LANGUAGE plpgsql AS $$ BEGIN RAISE NOTICE 'value %', t; RETURN 1; END $$;`

func sensitiveTarget(derived string) func(*config.Target) {
	return func(t *config.Target) {
		targetOptions(t).Sensitive = []postgres.Sensitive{{Columns: []string{"public.api_keys.secret"}, Derived: derived}}
	}
}

// A column declared sensitive is masked by the source PostgreSQL reports
// for it, whatever the query calls it, in both protocols and in COPY:
// no plugin is configured, so only the gateway's own masking can do it.
func TestSensitiveColumnMaskedByOrigin(t *testing.T) {
	e := startEnv(t, envOptions{target: sensitiveTarget("mask")})
	e.pg.Exec(t, apiKeysSQL)
	ctx := context.Background()
	queries := []string{
		"SELECT secret FROM api_keys",
		"SELECT secret AS s FROM api_keys",
		"SELECT k.secret AS owner FROM api_keys k",
		"SELECT * FROM api_keys",
		"SELECT api_keys.* FROM api_keys",
		`SELECT "secret" AS "id" FROM public.api_keys ORDER BY 1`,
		"SELECT x.s FROM (SELECT secret AS s FROM api_keys) x",
		"WITH c AS (SELECT secret AS s FROM api_keys) SELECT s FROM c",
	}
	for _, mode := range []pgx.QueryExecMode{pgx.QueryExecModeSimpleProtocol, pgx.QueryExecModeExec, pgx.QueryExecModeCacheStatement} {
		c := e.connect(t, "", mode)
		for _, q := range queries {
			rows, err := c.Query(ctx, q)
			if err != nil {
				t.Fatalf("%v %s: %v", mode, q, err)
			}
			n := 0
			for rows.Next() {
				vals, err := rows.Values()
				if err != nil {
					t.Fatalf("%v %s: %v", mode, q, err)
				}
				for _, v := range vals {
					if s, _ := v.(string); strings.Contains(s, "sk_live_") {
						t.Fatalf("%v %s: secret in clear: %v", mode, q, vals)
					}
				}
				n++
			}
			if rows.Err() != nil || n != 2 {
				t.Fatalf("%v %s: %d rows, %v", mode, q, n, rows.Err())
			}
		}
	}
	// COPY of a query learns its columns' sources from a Describe.
	c := e.connect(t, "")
	var buf strings.Builder
	if _, err := c.PgConn().CopyTo(ctx, &buf, "COPY (SELECT id, secret AS s FROM api_keys) TO STDOUT"); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(buf.String(), "sk_live_") || !strings.Contains(buf.String(), "[masked]") {
		t.Fatalf("COPY: %q", buf.String())
	}
	r := e.rec.Wait(t, "with the masked column", func(r audit.Row) bool {
		return r.Kind == "pg.query" && r.Request["sql"] == "SELECT secret AS s FROM api_keys" && r.Annotations["mask.sensitive"] != ""
	})
	if r.Annotations["mask.sensitive"] != "public.api_keys.secret" {
		t.Fatalf("annotation: %q", r.Annotations["mask.sensitive"])
	}
}

// Errors, notices and notifications carry values back too: the mask
// plugin masks them; and when the statement reads a sensitive column,
// the gateway withholds the server's words and keeps the SQLSTATE.
func TestErrorsNoticesNotificationsMasked(t *testing.T) {
	e := startEnv(t, envOptions{plugins: defaultPlugins(t), target: sensitiveTarget("mask")})
	e.pg.Exec(t, apiKeysSQL+";"+notesSQL)
	ctx := context.Background()
	var notices []string
	cc, err := pgx.ParseConfig(e.dsn(""))
	if err != nil {
		t.Fatal(err)
	}
	cc.OnNotice = func(_ *pgconn.PgConn, n *pgconn.Notice) { notices = append(notices, n.Message) }
	c, err := pgx.ConnectConfig(ctx, cc)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(ctx)

	// An error that quotes a value.
	_, err = c.Exec(ctx, "SELECT body::int FROM notes")
	var pe *pgconn.PgError
	if !errors.As(err, &pe) || pe.Code != "22P02" || strings.Contains(pe.Message, ghToken) || !strings.Contains(pe.Message, "invalid input syntax") {
		t.Fatalf("error: %v", err)
	}
	// A notice raised with a value.
	if _, err := c.Exec(ctx, "SELECT shout(body) FROM notes"); err != nil {
		t.Fatal(err)
	}
	if len(notices) != 1 || strings.Contains(notices[0], ghToken) || !strings.HasPrefix(notices[0], "value ") {
		t.Fatalf("notices: %q", notices)
	}
	// A notification carrying a value, to the same session.
	if _, err := c.Exec(ctx, "LISTEN c"); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Exec(ctx, "SELECT pg_notify('c', body) FROM notes"); err != nil {
		t.Fatal(err)
	}
	n, err := c.WaitForNotification(ctx)
	if err != nil || strings.Contains(n.Payload, ghToken) || n.Channel != "c" || n.Payload == "" {
		t.Fatalf("notification: %+v %v", n, err)
	}
	// The error of a statement that reads a sensitive column: withheld.
	_, err = c.Exec(ctx, "SELECT secret::int FROM api_keys")
	if !errors.As(err, &pe) || pe.Code != "22P02" || strings.Contains(pe.Message, "sk_live_") || !strings.Contains(pe.Message, "withheld") {
		t.Fatalf("sensitive error: %v", err)
	}
	r := e.rec.Wait(t, "for the withheld error", func(r audit.Row) bool {
		return r.Kind == "pg.query" && r.Request["sql"] == "SELECT secret::int FROM api_keys"
	})
	if strings.Contains(r.Error, "sk_live_") || !strings.HasPrefix(r.Error, "22P02") {
		t.Fatalf("the row's error: %q", r.Error)
	}
	for _, r := range e.rec.Rows() {
		if strings.Contains(r.Error, ghToken) || strings.Contains(r.Error, "sk_live_") {
			t.Fatalf("a value in an audit row's error: %+v", r)
		}
	}
}

// A statement's whole text is in its row, with its length and hash,
// however it is padded; one over max_statement_bytes is refused and
// never runs.
func TestStatementRecordedWhole(t *testing.T) {
	e := startEnv(t, envOptions{plugins: defaultPlugins(t), listener: func(l *postgres.ListenerOptions) { l.MaxStatementBytes = 64 << 10 }})
	e.pg.Exec(t, apiKeysSQL)
	ctx := context.Background()
	c := e.connect(t, "", pgx.QueryExecModeSimpleProtocol)

	padded := "SELECT 1 /*" + strings.Repeat(" ", 40<<10) + "*/; DELETE FROM victims WHERE id = 1"
	if _, err := c.Exec(ctx, padded); err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256([]byte(padded))
	r := e.rec.Wait(t, "for the padded statement", func(r audit.Row) bool {
		return r.Kind == "pg.query" && strings.HasSuffix(r.Request["sql"], "DELETE FROM victims WHERE id = 1")
	})
	if r.Request["sql"] != padded || r.Request["sql_bytes"] != strconv.Itoa(len(padded)) || r.Request["sql_sha256"] != hex.EncodeToString(sum[:]) {
		t.Fatalf("row: %d bytes of sql, sql_bytes %s", len(r.Request["sql"]), r.Request["sql_bytes"])
	}

	over := "SELECT 1 /*" + strings.Repeat("x", 70<<10) + "*/; DELETE FROM victims"
	_, err := c.Exec(ctx, over)
	var pe *pgconn.PgError
	if !errors.As(err, &pe) || pe.Code != "54000" {
		t.Fatalf("over the cap: %v", err)
	}
	if got := strings.TrimSpace(e.pg.Exec(t, "SELECT count(*) FROM victims")); got != "1" {
		t.Fatalf("victims left: %s", got)
	}
	// The extended protocol: a parameter counts.
	_, err = c.Exec(ctx, "SELECT length($1::text)", pgx.QueryExecModeExec, strings.Repeat("p", 70<<10))
	if !errors.As(err, &pe) || pe.Code != "54000" {
		t.Fatalf("parameter over the cap: %v", err)
	}
	sum = sha256.Sum256([]byte(over))
	r = e.rec.Wait(t, "for the refused statement", func(r audit.Row) bool {
		return r.Kind == "pg.query" && r.Request["sql_sha256"] == hex.EncodeToString(sum[:])
	})
	if r.Verdict != "deny" || r.Request["sql_bytes"] != strconv.Itoa(len(over)) || len(r.Request["sql"]) > 4<<10 {
		t.Fatalf("refused row: verdict %s, sql_bytes %s, %d bytes kept", r.Verdict, r.Request["sql_bytes"], len(r.Request["sql"]))
	}
}

// fullRecorder is the in-memory recorder with an audit trail that can be
// made full, as the pipeline's Admit reports a full spool.
type fullRecorder struct {
	*testenv.Recorder
	full atomic.Bool
}

func (f *fullRecorder) Admit() error {
	if f.full.Load() {
		return audit.ErrFull
	}
	return nil
}

// A session that was admitted keeps running statements only while the
// audit trail can take their rows.
func TestAuditFullPerStatement(t *testing.T) {
	rec := &fullRecorder{Recorder: &testenv.Recorder{}}
	e := startEnv(t, envOptions{recorder: rec})
	ctx := context.Background()
	c := e.connect(t, "")
	if _, err := c.Exec(ctx, "SELECT 1"); err != nil {
		t.Fatal(err)
	}
	rec.full.Store(true)
	_, err := c.Exec(ctx, "CREATE TABLE ran_unrecorded (id int)")
	var pe *pgconn.PgError
	if !errors.As(err, &pe) || pe.Code != "53000" {
		t.Fatalf("with the trail full: %v", err)
	}
	if e.tableExists(t, "ran_unrecorded") {
		t.Fatal("a statement ran while the audit trail was full")
	}
	rec.full.Store(false)
	if _, err := c.Exec(ctx, "SELECT 1"); err != nil {
		t.Fatalf("after the trail drained: %v", err)
	}
}

// A table created after the catalog was read is covered as soon as the
// DDL that made it has run: the gateway reads the catalog again.
func TestSensitiveCatalogFollowsDDL(t *testing.T) {
	e := startEnv(t, envOptions{target: func(t *config.Target) {
		targetOptions(t).Sensitive = []postgres.Sensitive{{Columns: []string{"public.*_keys.secret"}}}
	}})
	ctx := context.Background()
	c := e.connect(t, "", pgx.QueryExecModeSimpleProtocol)
	for _, sql := range []string{"SELECT 1", "CREATE TABLE new_keys (id int, secret text)", "INSERT INTO new_keys VALUES (1, 'sk_live_new')"} {
		if _, err := c.Exec(ctx, sql); err != nil {
			t.Fatalf("%s: %v", sql, err)
		}
	}
	var v string
	if err := c.QueryRow(ctx, "SELECT secret AS x FROM new_keys").Scan(&v); err != nil || v != "[masked]" {
		t.Fatalf("the new table's secret: %q %v", v, err)
	}
	if _, err := c.Exec(ctx, "SELECT upper(secret) FROM new_keys"); err == nil {
		t.Fatal("an expression of the new table's secret ran")
	}
}
