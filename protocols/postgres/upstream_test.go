package postgres_test

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/tollgate-dev/tollgate/host/config"
	"github.com/tollgate-dev/tollgate/host/identity"
	"github.com/tollgate-dev/tollgate/internal/testenv"
)

// The gateway reaches a TLS-only upstream with verify-full against the
// configured CA, logging in as an md5 user; application_name carries the
// session ID so that a DBA can correlate pg_stat_activity with the audit.
func TestUpstreamTLSAndMD5(t *testing.T) {
	pg := testenv.StartPostgres(t, testenv.PostgresOptions{TLS: true})
	pg.MD5User(t, "md5agent", pg.Password)
	e := startEnv(t, envOptions{pg: pg, target: func(tg *config.Target) {
		targetOptions(tg).SSLMode = "verify-full"
		tg.CAFile = pg.CAFile
		tg.Credential.Username = "md5agent"
	}})
	c := e.connect(t, "application_name=ci-job")
	var user, app string
	var ssl bool
	err := c.QueryRow(context.Background(), "SELECT current_user, current_setting('application_name'), (SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid())").Scan(&user, &app, &ssl)
	if err != nil {
		t.Fatal(err)
	}
	if user != "md5agent" || !ssl {
		t.Fatalf("upstream session: user %q ssl %v", user, ssl)
	}
	open := e.rec.Wait(t, "opening the session", func(r auditRow) bool { return r.Kind == "session.open" })
	if !strings.HasPrefix(app, "ci-job tollgate:") || !strings.HasSuffix(app, open.SessionID) {
		t.Fatalf("application_name %q, session %s", app, open.SessionID)
	}

	// A wrong CA: the gateway refuses the upstream, the client learns only
	// that the target did not take the connection.
	bad := startEnv(t, envOptions{pg: pg, target: func(tg *config.Target) {
		targetOptions(tg).SSLMode = "verify-full"
		tg.CAFile = bad0CA(t)
	}})
	_, err = pgx.Connect(context.Background(), bad.dsn(""))
	if err == nil || !strings.Contains(err.Error(), "did not accept the gateway's connection") {
		t.Fatalf("wrong CA: %v", err)
	}
	if strings.Contains(err.Error(), pg.Password) {
		t.Fatal("the credential reached the client")
	}
}

func bad0CA(t *testing.T) string {
	cert, _, err := testenv.SelfSigned("127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	p := t.TempDir() + "/other-ca.pem"
	writeFile(t, p, cert)
	return p
}

// A session does not outlive its token: the first statement after the
// token's exp ends it with 28P01 and a reason, and the close row says why.
func TestSessionEndsWhenTokenExpires(t *testing.T) {
	e := startEnv(t, envOptions{})
	tok, err := e.iss.Mint(identity.MintOptions{Subject: "short", TTL: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	e.tok = tok
	c := e.connect(t, "")
	var n int
	if err := c.QueryRow(context.Background(), "SELECT 1").Scan(&n); err != nil {
		t.Fatal(err)
	}
	time.Sleep(time.Until(time.Now().Truncate(time.Second).Add(3 * time.Second)))
	err = c.QueryRow(context.Background(), "SELECT 1").Scan(&n)
	var pe *pgconn.PgError
	if !errors.As(err, &pe) || pe.Code != "28P01" || !strings.Contains(pe.Message, "expired") {
		t.Fatalf("after expiry: %v", err)
	}
	e.rec.Wait(t, "closing the expired session", func(r auditRow) bool {
		return r.Kind == "session.close" && r.Error == "the token expired" && r.Subject == "short"
	})
}

// Startup settings, from PGOPTIONS or as parameters of their own: those on
// the gateway's list take effect upstream, the rest do not, and the client
// is told which with a notice, as the session.open row records.
func TestStartupSettings(t *testing.T) {
	pg := testenv.StartPostgres(t, testenv.PostgresOptions{})
	pg.Exec(t, `CREATE SCHEMA app; CREATE SCHEMA "my schema"`)
	pg.Exec(t, "CREATE DATABASE ro")
	pg.Exec(t, "ALTER DATABASE ro SET default_transaction_read_only = on")
	e := startEnv(t, envOptions{pg: pg})
	ctx := context.Background()

	// psql with PGOPTIONS gets the same session through the gateway as
	// from the server directly: the gateway splits options as it does.
	psql := func(t *testing.T, env []string, options string) (string, string) {
		t.Helper()
		cmd := exec.Command(testenv.RequireCommand(t, "psql"), "-X", "-A", "-t", "-c",
			"SELECT current_setting('search_path'), current_setting('statement_timeout'), current_setting('lock_timeout'), current_setting('work_mem'), current_setting('DateStyle'), current_setting('standard_conforming_strings'), current_user")
		cmd.Env = append(env, "PGOPTIONS="+options)
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		if err := cmd.Run(); err != nil {
			t.Fatalf("psql: %v\n%s", err, stderr.String())
		}
		return strings.TrimSpace(stdout.String()), stderr.String()
	}
	direct := append(os.Environ(), "PGHOST="+pg.Host(), "PGPORT="+pg.Port(), "PGUSER="+pg.User, "PGPASSWORD="+pg.Password,
		"PGDATABASE=postgres", "PGSSLMODE=disable")
	t.Run("psql PGOPTIONS", func(t *testing.T) {
		for _, opts := range []string{
			`-c search_path="my\ schema",app --statement-timeout=5s`,
			"\t-csearch_path=app\t\t-c lock_timeout=1s --work-mem=8MB ",
			`-c DateStyle=German,\ DMY -c search_path=\"my\ schema\"`,
		} {
			want, _ := psql(t, direct, opts)
			got, notice := psql(t, e.psqlEnv(), opts)
			if got != want || notice != "" {
				t.Errorf("PGOPTIONS=%q: through the gateway %q, directly %q; stderr %q", opts, got, want, notice)
			}
		}
		got, notice := psql(t, e.psqlEnv(), `-c search_path=app -c standard_conforming_strings=off -c role=md5users -e`)
		if want := "app|0|0|4MB|ISO, MDY|on|" + pg.User; got != want {
			t.Errorf("with dropped settings: %q, want %q", got, want)
		}
		if !containsAll(notice, "NOTICE", "standard_conforming_strings (", "role (", "-e (") || strings.Contains(notice, "search_path (") {
			t.Errorf("psql's stderr: %q", notice)
		}
	})

	t.Run("pgx RuntimeParams", func(t *testing.T) {
		var notices []*pgconn.Notice
		c := connectWith(t, e.dsn(""), func(cc *pgx.ConnConfig) {
			cc.RuntimeParams = map[string]string{"search_path": "app", "LOCK_TIMEOUT": "3s", "client_encoding": "SJIS",
				"standard_conforming_strings": "off", "role": "md5users", "application_name": "settings-test"}
			cc.OnNotice = func(_ *pgconn.PgConn, n *pgconn.Notice) { notices = append(notices, n) }
		})
		var path, lock, enc, scs, user string
		err := c.QueryRow(ctx, "SELECT current_setting('search_path'), current_setting('lock_timeout'), current_setting('client_encoding'), current_setting('standard_conforming_strings'), current_user").
			Scan(&path, &lock, &enc, &scs, &user)
		if err != nil {
			t.Fatal(err)
		}
		if path != "app" || lock != "3s" || enc != "UTF8" || scs != "on" || user != pg.User {
			t.Errorf("upstream session: search_path %q lock_timeout %q client_encoding %q standard_conforming_strings %q user %q", path, lock, enc, scs, user)
		}
		if len(notices) != 1 || notices[0].Severity != "NOTICE" || notices[0].Code != "01000" ||
			!containsAll(notices[0].Message, "client_encoding (", "role (", "standard_conforming_strings (") ||
			strings.Contains(notices[0].Message, "search_path") || !strings.Contains(notices[0].Hint, "statement_timeout") {
			t.Fatalf("notices: %+v", notices)
		}
		open := e.rec.Wait(t, "the session.open row", func(r auditRow) bool {
			return r.Kind == "session.open" && r.Request["set.lock_timeout"] == "3s"
		})
		if open.Request["set.search_path"] != "app" || !containsAll(open.Request["dropped_params"], "role (", "standard_conforming_strings (", "client_encoding (") ||
			strings.Contains(open.Request["dropped_params"], "md5users") || open.Request["set.role"] != "" {
			t.Errorf("session.open: %v", open.Request)
		}
	})

	t.Run("read-only only towards on", func(t *testing.T) {
		var notices []*pgconn.Notice
		c := connectWith(t, e.dsn(""), func(cc *pgx.ConnConfig) {
			cc.RuntimeParams = map[string]string{"options": "-c default_transaction_read_only=on"}
			cc.OnNotice = func(_ *pgconn.PgConn, n *pgconn.Notice) { notices = append(notices, n) }
		})
		_, err := c.Exec(ctx, "CREATE TABLE t (id int)")
		var pe *pgconn.PgError
		if !errors.As(err, &pe) || pe.Code != "25006" || len(notices) != 0 {
			t.Fatalf("read-only session: %v, notices %v", err, notices)
		}

		// A database the DBA made read-only stays so.
		ro := startEnv(t, envOptions{pg: pg, target: func(tg *config.Target) { targetOptions(tg).Database = "ro" }})
		notices = nil
		c = connectWith(t, ro.dsn(""), func(cc *pgx.ConnConfig) {
			cc.RuntimeParams = map[string]string{"default_transaction_read_only": "off", "options": "-c default_transaction_read_only=of"}
			cc.OnNotice = func(_ *pgconn.PgConn, n *pgconn.Notice) { notices = append(notices, n) }
		})
		var v string
		if err := c.QueryRow(ctx, "SHOW default_transaction_read_only").Scan(&v); err != nil || v != "on" {
			t.Fatalf("default_transaction_read_only %q %v", v, err)
		}
		if len(notices) != 1 || !strings.Contains(notices[0].Message, "default_transaction_read_only (only on") {
			t.Fatalf("notices: %+v", notices)
		}
	})

	t.Run("a value the server rejects", func(t *testing.T) {
		cc, err := pgx.ParseConfig(e.dsn(""))
		if err != nil {
			t.Fatal(err)
		}
		cc.RuntimeParams = map[string]string{"statement_timeout": "soon"}
		_, err = pgx.ConnectConfig(ctx, cc)
		var pe *pgconn.PgError
		if !errors.As(err, &pe) || pe.Code != "22023" || !strings.Contains(pe.Message, "statement_timeout") {
			t.Fatalf("statement_timeout=soon: %v", err)
		}
	})
}

// connectWith connects through the gateway with a config adjusted by set.
func connectWith(t *testing.T, dsn string, set func(*pgx.ConnConfig)) *pgx.Conn {
	t.Helper()
	cc, err := pgx.ParseConfig(dsn)
	if err != nil {
		t.Fatal(err)
	}
	set(cc)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := pgx.ConnectConfig(ctx, cc)
	if err != nil {
		t.Fatalf("connect through the gateway: %v", err)
	}
	t.Cleanup(func() { c.Close(context.Background()) })
	return c
}

func containsAll(s string, subs ...string) bool {
	for _, x := range subs {
		if !strings.Contains(s, x) {
			return false
		}
	}
	return true
}
