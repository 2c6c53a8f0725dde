package main_test

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/tollgate-dev/tollgate/host/audit/embedded"
	"github.com/tollgate-dev/tollgate/internal/pgcluster"
	"github.com/tollgate-dev/tollgate/internal/testenv"
)

// The quick start as `make run` starts it (the whole shipped gateway.toml
// under serve --dev, its ports moved): every command it prints is run as
// printed, with the real psql, and each does what the printout says. The
// demo database is checked directly as well, so that "refused" and
// "waits" mean the statement did not run, and "masked" means no secret
// came back.
func TestQuickStartPrintedCommands(t *testing.T) {
	testenv.RequireCommand(t, "psql")
	testenv.RequireCommand(t, "bash")
	if err := pgcluster.Installed(); err != nil {
		t.Fatalf("%v: the demo database needs it; run `make deps`", err)
	}
	cfg, dir, addrs := quickStartConfig(t)
	// Runs last: should the test stop between the gateway's SIGKILL and
	// the restart, the database that outlived it does not linger.
	t.Cleanup(func() { killPostmaster(filepath.Join(dir, ".tollgate", "demo-postgres", "data")) })
	env := []string{embedded.EnvLibPath + "=" + testenv.ChDBLib(t)}
	start := func() *testenv.Gateway {
		return testenv.StartGateway(t, testenv.GatewayOptions{Config: cfg, Dir: dir, Dev: true, Env: env, ReadyTimeout: 3 * time.Minute,
			Wait: []string{addrs["127.0.0.1:8079"], addrs["127.0.0.1:6432"], addrs["127.0.0.1:8090"]}})
	}
	gw := start()
	// Not a terminal: the long steps of a first start are logged.
	for _, want := range []string{
		`msg="plugins: compiling 3 on first start (cached afterwards): done"`,
		`msg="audit: opening the embedded store (loading chDB, applying the schema): done"`,
		`msg="demo database: creating the cluster: done"`,
	} {
		if !strings.Contains(gw.Output(), want) {
			t.Errorf("the first start does not log %s", want)
		}
	}
	steps := printedSteps(t, gw.Output())
	db := demoDB(t, dir, addrs["127.0.0.1:6433"])

	// The token, minted by the printed line.
	agent := shellOut(t, dir, nil, steps.token+"\nprintf %s \"$TOKEN\"")
	agentEnv := []string{"TOKEN=" + agent}

	// The masked query: names in clear, e-mails and secrets not.
	out := shellOut(t, dir, agentEnv, steps.masked)
	for _, name := range []string{"Ada Lovelace", "Grace Hopper", "Alan Turing"} {
		if !strings.Contains(out, name) {
			t.Errorf("masked query: %q missing:\n%s", name, out)
		}
	}
	if strings.Count(out, "[masked]") != 3 || strings.Contains(out, "@example.com") || !strings.Contains(out, "(3 rows)") {
		t.Errorf("masked query: want 3 masked secrets and no e-mail address:\n%s", out)
	}
	for _, secret := range db.column(t, "SELECT secret FROM api_keys") {
		if strings.Contains(out, secret) || strings.Contains(out, secret[len(secret)-8:]) {
			t.Fatalf("a secret came back through the gateway:\n%s", out)
		}
	}

	// The DROP: refused with the guard's reason, and the table is there.
	out, err := shell(dir, agentEnv, steps.drop)
	if err == nil || !strings.Contains(out, "schema changes go through migrations") {
		t.Errorf("DROP: want a refusal naming its reason, got %v:\n%s", err, out)
	}
	if n := db.column(t, "SELECT count(*) FROM customers"); n[0] != "4" {
		t.Fatalf("after the refused DROP: %v customers", n)
	}

	// The DELETE: held, with the approval's ID and console URL.
	var mu sync.Mutex
	var delOut bytes.Buffer
	del := exec.Command("bash", "-c", steps.delete)
	del.Dir, del.Env = dir, append(os.Environ(), agentEnv...)
	del.Stdout = writerFunc(func(p []byte) (int, error) { mu.Lock(); defer mu.Unlock(); return delOut.Write(p) })
	del.Stderr = del.Stdout
	if err := del.Start(); err != nil {
		t.Fatal(err)
	}
	delDone := make(chan error, 1)
	go func() { delDone <- del.Wait() }()
	t.Cleanup(func() { del.Process.Kill() })
	held := regexp.MustCompile(`waiting for approval ([0-9a-f-]{36}) at (\S+)`)
	var id, url string
	for deadline := time.Now().Add(30 * time.Second); id == ""; time.Sleep(50 * time.Millisecond) {
		mu.Lock()
		if m := held.FindStringSubmatch(delOut.String()); m != nil {
			id, url = m[1], m[2]
		}
		mu.Unlock()
		if time.Now().After(deadline) {
			t.Fatalf("DELETE: no approval notice within 30s:\n%s", delOut.String())
		}
	}
	if !strings.HasPrefix(url, steps.console) {
		t.Errorf("approval URL %s is not in the printed console %s", url, steps.console)
	}
	if n := db.column(t, "SELECT count(*) FROM customers"); n[0] != "4" {
		t.Fatalf("the held DELETE ran before its approval: %v customers", n)
	}

	// The agent cannot approve its own statement with the printed line.
	approve := strings.Replace(steps.approve, " ID", " "+id, 1)
	if out, err := shell(dir, []string{"TOLLGATE_TOKEN=" + agent}, approve); err == nil {
		t.Fatalf("the requester approved its own DELETE:\n%s", out)
	}
	// A DBA lists and approves it with the printed lines.
	dba := shellOut(t, dir, nil, steps.dbaToken+"\nprintf %s \"$TOLLGATE_TOKEN\"")
	dbaEnv := []string{"TOLLGATE_TOKEN=" + dba}
	if out := shellOut(t, dir, dbaEnv, steps.list); !strings.Contains(out, id) || !strings.Contains(out, "DELETE FROM customers WHERE id = 4") {
		t.Errorf("approvals list does not show the held DELETE:\n%s", out)
	}
	if out := shellOut(t, dir, dbaEnv, approve); !strings.Contains(out, "approved by dba@example.com") {
		t.Errorf("approve: %s", out)
	}
	select {
	case err := <-delDone:
		mu.Lock()
		o := delOut.String()
		mu.Unlock()
		if err != nil || !strings.Contains(o, "DELETE 1") {
			t.Fatalf("the approved DELETE: %v\n%s", err, o)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the approved DELETE did not complete within 30s")
	}
	if n := db.column(t, "SELECT count(*) FROM customers WHERE id = 4"); n[0] != "0" {
		t.Fatal("the approved DELETE did not delete")
	}

	// The audit line shows all of it (rows land in batches: poll).
	want := []*regexp.Regexp{
		regexp.MustCompile(`pg\.query +you@example\.com +SELECT c\.name.* allow +guard +SELECT 3 .*mask\.sensitive=public\.api_keys\.secret`),
		regexp.MustCompile(`pg\.query +you@example\.com +DROP TABLE customers +deny +guard +schema changes go through migrations`),
		regexp.MustCompile(`pg\.query +you@example\.com +DELETE FROM customers WHERE id = 4 +hold +approve +writes to the demo database need a DBA +DELETE 1 +dba@example\.com`),
		regexp.MustCompile(`approval\.decision +you@example\.com +DELETE FROM customers WHERE id = 4 +allow +approve +approved +dba@example\.com`),
	}
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(300 * time.Millisecond) {
		out, err = shell(dir, dbaEnv, steps.audit)
		missing := 0
		for _, re := range want {
			if !re.MatchString(out) {
				missing++
			}
		}
		if err == nil && missing == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the printed audit query lacks %d of the steps after 30s (err %v):\n%s", missing, err, out)
		}
	}

	// A gateway killed outright leaves the database running (it leads its
	// own process group); the next start stops it and seeds the tables
	// again; a graceful stop stops it.
	gw.Signal(syscall.SIGKILL)
	<-gw.Exited()
	if c, err := net.Dial("tcp", addrs["127.0.0.1:6433"]); err == nil {
		c.Close()
	} else {
		t.Logf("the demo database went with the killed gateway: %v", err)
	}
	gw = start()
	if !strings.Contains(gw.Output(), `msg="plugins: loading 3: done"`) || strings.Contains(gw.Output(), "creating the cluster") {
		t.Errorf("a second start compiles the plugins or makes the cluster again:\n%s", gw.Output())
	}
	if n := db.column(t, "SELECT count(*) FROM customers"); n[0] != "4" {
		t.Fatalf("after a restart: %v customers, want the 4 seeded again", n)
	}
	if err := gw.Stop(); err != nil {
		t.Fatal(err)
	}
	if c, err := net.Dial("tcp", addrs["127.0.0.1:6433"]); err == nil {
		c.Close()
		t.Fatal("the demo database still runs after the gateway stopped")
	}
	if _, err := os.Stat(filepath.Join(dir, ".tollgate", "demo-postgres", "data", "PG_VERSION")); err != nil {
		t.Errorf("the demo database is not kept under .tollgate/demo-postgres: %v", err)
	}
}

// killPostmaster ends the postmaster whose pid file is in data, if any
// still runs.
func killPostmaster(data string) {
	b, err := os.ReadFile(filepath.Join(data, "postmaster.pid"))
	if err != nil {
		return
	}
	var pid int
	fmt.Sscan(string(b), &pid)
	if comm, err := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid)); pid > 1 && err == nil && strings.TrimSpace(string(comm)) == "postgres" {
		syscall.Kill(-pid, syscall.SIGKILL) // it leads its process group
	}
}

// quickStart holds the lines serve --dev printed, as printed.
type quickStart struct {
	token, masked, drop, delete, dbaToken, list, approve, audit, console string
}

func printedSteps(t *testing.T, out string) quickStart {
	t.Helper()
	line := func(parts ...string) string {
		for _, l := range strings.Split(out, "\n") {
			ok := strings.HasPrefix(l, "  ")
			for _, p := range parts {
				ok = ok && strings.Contains(l, p)
			}
			if ok {
				return strings.TrimSpace(l)
			}
		}
		t.Fatalf("serve --dev did not print a line with %q:\n%s", parts, out)
		return ""
	}
	s := quickStart{
		token:    line("TOKEN=$(", " token "),
		masked:   line("psql ", `-c "SELECT`, "api_keys"),
		drop:     line("psql ", `-c "DROP TABLE`),
		delete:   line("psql ", `-c "DELETE FROM`),
		dbaToken: line("export TOLLGATE_TOKEN=$(", "--group dba"),
		list:     line(" approvals list "),
		approve:  line(" approvals approve ", " ID"),
		audit:    line(" audit sql ", "FROM events"),
	}
	m := regexp.MustCompile(`console, (http://\S+/ui/)`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("serve --dev did not print the console's URL:\n%s", out)
	}
	s.console = m[1]
	return s
}

// shell runs a printed command line with bash in dir, as a user pastes it.
func shell(dir string, env []string, script string) (string, error) {
	cmd := exec.Command("bash", "-c", script)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func shellOut(t *testing.T, dir string, env []string, script string) string {
	t.Helper()
	out, err := shell(dir, env, script)
	if err != nil {
		t.Fatalf("%s: %v\n%s", script, err, out)
	}
	return out
}

// demoDatabase reaches the demo database directly, with the credential
// serve --dev made, to check what really happened there.
type demoDatabase struct{ cfg *pgx.ConnConfig }

func demoDB(t *testing.T, dir, addr string) demoDatabase {
	t.Helper()
	pw, err := os.ReadFile(filepath.Join(dir, ".tollgate", "demo-db-password"))
	if err != nil {
		t.Fatalf("serve --dev did not make the demo database's password: %v", err)
	}
	cfg, err := pgx.ParseConfig("postgres://tollgate_demo@" + addr + "/postgres?sslmode=disable")
	if err != nil {
		t.Fatal(err)
	}
	cfg.Password = strings.TrimSpace(string(pw))
	return demoDatabase{cfg: cfg}
}

// column runs sql and returns its first column as text.
func (d demoDatabase) column(t *testing.T, sql string) []string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.ConnectConfig(ctx, d.cfg.Copy())
	if err != nil {
		t.Fatalf("demo database: %v", err)
	}
	defer conn.Close(ctx)
	rows, err := conn.Query(ctx, sql)
	if err != nil {
		t.Fatalf("demo database: %s: %v", sql, err)
	}
	var out []string
	for rows.Next() {
		var v any
		if err := rows.Scan(&v); err != nil {
			t.Fatal(err)
		}
		out = append(out, fmt.Sprint(v))
	}
	if err := rows.Err(); err != nil || len(out) == 0 {
		t.Fatalf("demo database: %s: %v (%d rows)", sql, err, len(out))
	}
	return out
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }
