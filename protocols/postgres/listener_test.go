package postgres_test

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/tollgate-dev/tollgate/host/audit"
	"github.com/tollgate-dev/tollgate/internal/testenv"
	"github.com/tollgate-dev/tollgate/protocols/postgres"
)

// connectFrom logs in through the gateway from the given local IP (any of
// 127.0.0.0/8 is this machine), so that tests can play several sources.
func (e *env) connectFrom(ctx context.Context, t *testing.T, localIP string) (*pgx.Conn, error) {
	t.Helper()
	cc, err := pgx.ParseConfig(e.dsn(""))
	if err != nil {
		t.Fatal(err)
	}
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(localIP)}}
	cc.DialFunc = d.DialContext
	c, err := pgx.ConnectConfig(ctx, cc)
	if err == nil {
		t.Cleanup(func() { c.Close(context.Background()) })
	}
	return c, err
}

// wantTooMany checks that err is the gateway's 53300 naming the cap.
func wantTooMany(t *testing.T, err error, capName string) {
	t.Helper()
	var pe *pgconn.PgError
	if !errors.As(err, &pe) || pe.Code != "53300" || pe.Severity != "FATAL" || !strings.Contains(pe.Message, capName) {
		t.Fatalf("want FATAL 53300 naming %s, got %v", capName, err)
	}
}

// A listener's max_connections refuses the connection over the cap with
// FATAL 53300 that pgx and psql show, an audit row and a log line; a
// CancelRequest still gets through at the cap (as PostgreSQL serves it),
// and a slot frees when a session ends.
func TestMaxConnections(t *testing.T) {
	testenv.RequireCommand(t, "psql")
	e := startEnv(t, envOptions{listener: func(l *postgres.ListenerOptions) { l.MaxConnections, l.MaxConnectionsPerSource = 2, 2 }})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	a := e.connect(t, "")
	b := e.connect(t, "")
	_, err := pgx.Connect(ctx, e.dsn(""))
	wantTooMany(t, err, "max_connections = 2")

	cmd := exec.Command("psql", "-X", "-c", "SELECT 1")
	cmd.Env = e.psqlEnv()
	out, err := cmd.CombinedOutput()
	if err == nil || !strings.Contains(string(out), "too many connections") || !strings.Contains(string(out), "max_connections = 2") {
		t.Fatalf("psql over the cap: %v %s", err, out)
	}
	row := e.rec.Wait(t, "for the refused connection", func(r auditRow) bool {
		return r.Kind == audit.KindSessionOpen && r.Verdict == "deny" && strings.Contains(r.Error, "53300")
	})
	if row.Request["user"] != "agent" || row.Request["database"] != "app" || row.RemoteAddr == "" {
		t.Errorf("refusal row: %+v", row)
	}
	e.rec.Wait(t, "closing the refused session", func(r auditRow) bool {
		return r.Kind == audit.KindSessionClose && r.SessionID == row.SessionID && strings.Contains(r.Error, "53300")
	})

	// At the cap, Ctrl-C still works: the cancel's connection is over the
	// cap, and is served all the same.
	done := execAsync(a, "SELECT pg_sleep(60)")
	waitActive(t, e, "SELECT pg_sleep(60)")
	if err := a.PgConn().CancelRequest(ctx); err != nil {
		t.Fatal(err)
	}
	var pe *pgconn.PgError
	if err := <-done; !errors.As(err, &pe) || pe.Code != "57014" {
		t.Fatalf("pg_sleep after a cancel at the cap: %v", err)
	}

	// A session that ends gives its slot back.
	b.Close(ctx)
	for {
		c, err := pgx.Connect(ctx, e.dsn(""))
		if err == nil {
			c.Close(ctx)
			break
		}
		wantTooMany(t, err, "max_connections")
		if ctx.Err() != nil {
			t.Fatal("no slot after a session ended")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// max_connections_per_source caps one client IP; another IP still gets in.
func TestMaxConnectionsPerSource(t *testing.T) {
	e := startEnv(t, envOptions{listener: func(l *postgres.ListenerOptions) { l.MaxConnections, l.MaxConnectionsPerSource = 10, 1 }})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := e.connectFrom(ctx, t, "127.0.0.1"); err != nil {
		t.Fatal(err)
	}
	_, err := e.connectFrom(ctx, t, "127.0.0.1")
	wantTooMany(t, err, "max_connections_per_source = 1")
	if _, err := e.connectFrom(ctx, t, "127.0.0.2"); err != nil {
		t.Fatalf("another source: %v", err)
	}
	row := e.rec.Wait(t, "for the refused connection", func(r auditRow) bool {
		return r.Kind == audit.KindSessionOpen && r.Verdict == "deny" && strings.Contains(r.Error, "max_connections_per_source")
	})
	if !strings.HasPrefix(row.RemoteAddr, "127.0.0.1:") {
		t.Errorf("refusal row from %q", row.RemoteAddr)
	}
}

// waitActive waits until the upstream runs sql for some session.
func waitActive(t *testing.T, e *env, sql string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		n := strings.TrimSpace(e.pg.Exec(t, fmt.Sprintf("SELECT count(*) FROM pg_stat_activity WHERE state = 'active' AND query = '%s'", sql)))
		if n == "1" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%q is not running upstream (%s)", sql, n)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// A connection that does not log in within auth_timeout is closed: one
// that never spoke is just closed (as PostgreSQL does), one that stalls
// at the password gets FATAL 08P01 naming auth_timeout first. Both leave
// an audit row.
func TestAuthTimeout(t *testing.T) {
	e := startEnv(t, envOptions{listener: func(l *postgres.ListenerOptions) { l.AuthTimeout.Duration = 300 * time.Millisecond }})
	// The guard deadline is far beyond auth_timeout (and below the 30s
	// the gateway once allowed): only a gateway that never closes fails.
	guard := time.Now().Add(20 * time.Second)

	silent, err := net.Dial("tcp", e.l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()
	silent.SetDeadline(guard)
	if n, err := silent.Read(make([]byte, 1)); n != 0 || !errors.Is(err, io.EOF) {
		t.Fatalf("a silent connection: read %d bytes, %v; want it closed", n, err)
	}

	nc, err := net.Dial("tcp", e.l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	nc.SetDeadline(guard)
	if _, err := nc.Write([]byte{0, 0, 0, 8, 4, 210, 22, 47}); err != nil {
		t.Fatal(err)
	}
	var b [1]byte
	if _, err := io.ReadFull(nc, b[:]); err != nil || b[0] != 'S' {
		t.Fatalf("SSLRequest: %q %v", b, err)
	}
	tc := tls.Client(nc, &tls.Config{InsecureSkipVerify: true})
	fe := pgproto3.NewFrontend(tc, tc)
	fe.Send(&pgproto3.StartupMessage{ProtocolVersion: pgproto3.ProtocolVersion30, Parameters: map[string]string{"user": "slow", "database": "app"}})
	if err := fe.Flush(); err != nil {
		t.Fatal(err)
	}
	msg, err := fe.Receive()
	if _, ok := msg.(*pgproto3.AuthenticationCleartextPassword); !ok {
		t.Fatalf("after startup: %T %v", msg, err)
	}
	msg, err = fe.Receive()
	er, ok := msg.(*pgproto3.ErrorResponse)
	if !ok || er.Code != "08P01" || er.Severity != "FATAL" || !strings.Contains(er.Message, "auth_timeout") {
		t.Fatalf("stalled at the password: %#v %v", msg, err)
	}
	if _, err := fe.Receive(); err == nil {
		t.Fatal("the connection stays open after its FATAL")
	}

	rows := func(user string) bool {
		for _, r := range e.rec.Rows() {
			if r.Kind == audit.KindSessionOpen && r.Verdict == "deny" && strings.Contains(r.Error, "auth_timeout") && r.Request["user"] == user {
				return true
			}
		}
		return false
	}
	e.rec.Wait(t, "for both timed-out connections", func(auditRow) bool { return rows("slow") && rows("") })
}

// After accept fails with EMFILE the listener keeps accepting: the real
// gateway binary, limited to a few more file descriptors than it holds,
// is flooded with connections until accept fails; once they are gone, a
// psql login works.
func TestGatewayBinaryAcceptAfterEMFILE(t *testing.T) {
	testenv.RequireCommand(t, "psql")
	testenv.RequireCommand(t, "prlimit")
	pg := testenv.StartPostgres(t, testenv.PostgresOptions{})
	listen, issuer := testenv.FreeAddr(t), testenv.FreeAddr(t)
	cfg := binaryConfig(issuer, pg, listen, "", "")
	env := []string{"APP_DB_PASSWORD=" + pg.Password}
	gw := testenv.StartGateway(t, testenv.GatewayOptions{Config: cfg, Dev: true, Env: env, Wait: []string{listen, issuer}})
	tok, errOut, code := gw.Run("token", "-c", "gateway.toml", "--sub", "ci-agent")
	if code != 0 {
		t.Fatalf("gateway token: %s", errOut)
	}
	host, port, _ := net.SplitHostPort(listen)
	psql := func() (string, error) {
		cmd := exec.Command("psql", "-X", "-A", "-t", "-c", "SELECT 41+1",
			fmt.Sprintf("host=%s port=%s dbname=app user=ci sslmode=require connect_timeout=15", host, port))
		cmd.Env = append(os.Environ(), "PGPASSWORD="+strings.TrimSpace(tok))
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	// One login first: the issuer's keys are fetched and cached, the
	// audit file is open; what is left to open is per connection.
	if out, err := psql(); err != nil || strings.TrimSpace(out) != "42" {
		t.Fatalf("before the flood: %v %s", err, out)
	}

	fdDir := fmt.Sprintf("/proc/%d/fd", gw.PID())
	ents, err := os.ReadDir(fdDir)
	if err != nil {
		t.Fatal(err)
	}
	open := map[int]bool{}
	for _, de := range ents {
		if n, err := strconv.Atoi(de.Name()); err == nil {
			open[n] = true
		}
	}
	// The kernel hands out the lowest free number and refuses numbers at
	// or above the limit: leave exactly 8 free numbers below it.
	limit, free := 0, 0
	for ; free < 8; limit++ {
		if !open[limit] {
			free++
		}
	}
	if out, err := exec.Command("prlimit", "--pid", strconv.Itoa(gw.PID()), fmt.Sprintf("--nofile=%d:%d", limit, limit)).CombinedOutput(); err != nil {
		t.Fatalf("prlimit: %v %s", err, out)
	}
	// Connections the gateway cannot accept wait in the kernel's backlog;
	// the dial succeeds all the same.
	var flood []net.Conn
	for range 40 {
		c, err := net.DialTimeout("tcp", listen, 5*time.Second)
		if err != nil {
			t.Fatalf("flood: %v", err)
		}
		flood = append(flood, c)
	}
	gw.WaitOutput("too many open files", 1)
	for _, c := range flood {
		c.Close()
	}
	if out, err := psql(); err != nil || strings.TrimSpace(out) != "42" {
		t.Fatalf("after the flood: %v %s\n%s", err, out, gw.Output())
	}
}
