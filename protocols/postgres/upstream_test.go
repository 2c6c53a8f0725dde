package postgres_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/tollgate-dev/tollgate/host/config"
	"github.com/tollgate-dev/tollgate/host/identity"
	"github.com/tollgate-dev/tollgate/host/testenv"
)

// The gateway reaches a TLS-only upstream with verify-full against the
// configured CA, logging in as an md5 user; application_name carries the
// session ID so that a DBA can correlate pg_stat_activity with the audit.
func TestUpstreamTLSAndMD5(t *testing.T) {
	pg := testenv.StartPostgres(t, testenv.PostgresOptions{TLS: true})
	pg.MD5User(t, "md5agent", pg.Password)
	e := startEnv(t, envOptions{pg: pg, target: func(tg *config.Target) {
		tg.SSLMode = "verify-full"
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
		tg.SSLMode = "verify-full"
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
