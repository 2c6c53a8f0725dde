package main_test

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tollgate-dev/tollgate/examples/queries"
	"github.com/tollgate-dev/tollgate/host/audit"
	"github.com/tollgate-dev/tollgate/host/audit/audittest"
	"github.com/tollgate-dev/tollgate/host/audit/clickhouse"
	"github.com/tollgate-dev/tollgate/internal/testenv"
)

// The analyst's CLI as the README tells it, on a ClickHouse 18.16 server:
// a shipped query pasted whole (it starts with a comment), read with -f,
// and run by name, each with --param; and refusals that name the missing
// or unknown parameter. What each query answers is checked in
// examples/queries; here, that the CLI gets its parameters to the store.
func TestAuditSQLParameters(t *testing.T) {
	srv := testenv.StartClickHouse(t)
	cfg, dir, _ := outageConfig(t, srv.Addr(), "")
	if err := os.WriteFile(filepath.Join(dir, "gateway.toml"), []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	s, err := clickhouse.Open(context.Background(), clickhouse.Options{Addrs: []string{srv.Addr()}, Database: "outage"})
	if err != nil {
		t.Fatalf("clickhouse: %v\n%s", err, srv.Output())
	}
	defer s.Close()
	start := time.Now().UTC().Add(-time.Minute).Truncate(time.Second)
	if err := s.Insert(context.Background(), audittest.SessionRows(start, "orders-db", "run-42", 6)); err != nil {
		t.Fatal(err)
	}
	root := testenv.ModuleRoot(t)
	file := filepath.Join(root, "examples", "queries", "ci_run.sql")
	text, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	from, to := "--param=from="+start.Add(-time.Hour).Format(time.RFC3339), "--param=to=now"
	run := func(args ...string) (string, string, int) {
		t.Helper()
		return testenv.RunGateway(t, dir, nil, append([]string{"audit"}, args...)...)
	}
	// The session's six rows, run by run_id, in time order: three ways.
	for _, args := range [][]string{
		{"sql", "--format", "tsv", string(text), "--param", "run_id=run-42", from, to},
		{"sql", "--format", "tsv", "-f", file, "--param", "run_id=run-42", from, to},
		{"query", "ci_run", "--format", "tsv", "--param", "run_id=run-42", from, to},
	} {
		out, errOut, code := run(args...)
		lines := strings.Split(strings.TrimSpace(out), "\n")
		if code != 0 || len(lines) != 7 || !strings.HasPrefix(lines[0], "ts\tts_us\trepository") ||
			!strings.Contains(lines[1], "session.open") || !strings.Contains(lines[6], "session.close") {
			t.Errorf("audit %s: exit %d, %d lines\n%s%s", args[0], code, len(lines), out, errOut)
		}
	}
	// Another run's ID finds nothing; a value cannot become SQL.
	if out, errOut, code := run("query", "ci_run", "--format", "tsv", "--param", "run_id=x' OR 1=1 OR '?{run_id:String}", from, to); code != 0 || strings.Count(out, "\n") != 1 {
		t.Errorf("an injected run_id: exit %d\n%s%s", code, out, errOut)
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"query", "ci_run", "--param", "run_id=1", from}, "missing parameter to (DateTime)"},
		{[]string{"query", "ci_run", "--param", "run_id=1", from, to, "--param", "tagret=x"}, "unknown parameter tagret"},
		{[]string{"query", "ci_run", "--param", "run_id=1", "--param", "from=yesterday", to}, `parameter from: "yesterday" is not a time`},
		{[]string{"sql", "SELECT count() FROM events WHERE target = '{target}' AND seq > {n}"}, "placeholder {n} has no type"},
		{[]string{"query", "nosuch"}, `no shipped query "nosuch"`},
	} {
		out, errOut, code := run(tc.args...)
		if code == 0 || !strings.Contains(errOut, tc.want) {
			t.Errorf("audit %v: exit %d, want an error with %q\n%s%s", tc.args, code, tc.want, out, errOut)
		}
	}
	out, _, code := run("query", "--list")
	for _, name := range queries.Names() {
		if code != 0 || !strings.Contains(out, name) {
			t.Errorf("audit query --list: exit %d, no %s\n%s", code, name, out)
		}
	}
}

// audit sessions and audit tail on a ClickHouse 18.16 server: a target
// that holds SQL is a value to match, so tail --target shows that
// target's rows and nothing else.
func TestAuditSessionsAndTail(t *testing.T) {
	srv := testenv.StartClickHouse(t)
	cfg, dir, _ := outageConfig(t, srv.Addr(), "")
	if err := os.WriteFile(filepath.Join(dir, "gateway.toml"), []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	s, err := clickhouse.Open(context.Background(), clickhouse.Options{Addrs: []string{srv.Addr()}, Database: "outage"})
	if err != nil {
		t.Fatalf("clickhouse: %v\n%s", err, srv.Output())
	}
	defer s.Close()
	start := time.Now().UTC().Add(-time.Minute)
	const hostile = `x' OR 1=1 -- \`
	victim := audittest.SessionRows(start, "orders-db", "run-1", 4)
	attacker := audittest.SessionRows(start, hostile, "run-2", 3)
	for _, rows := range [][]audit.Row{victim, attacker} {
		if err := s.Insert(context.Background(), rows); err != nil {
			t.Fatal(err)
		}
	}

	out, errOut, code := testenv.RunGateway(t, dir, nil, "audit", "sessions", "--since", "1h", "--format", "tsv")
	if code != 0 || !strings.HasPrefix(out, "session\topened_at\tprotocol\ttarget") ||
		!strings.Contains(out, victim[0].SessionID+"\t") || !strings.Contains(out, attacker[0].SessionID+"\t") {
		t.Fatalf("audit sessions: exit %d\n%s%s", code, out, errOut)
	}

	var stdout, stderr bytes.Buffer
	cmd := exec.Command(testenv.GatewayBinary(t), "audit", "tail", "--target", hostile, "--since", "5m", "--every", "100ms")
	cmd.Dir, cmd.Stdout, cmd.Stderr = dir, &stdout, &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(3 * time.Second) // a few polls: no row may come twice
	cmd.Process.Signal(os.Interrupt)
	if err := cmd.Wait(); err != nil {
		t.Fatalf("audit tail: %v\n%s", err, stderr.String())
	}
	lines := strings.Split(strings.TrimSpace(stdout.String()), "\n")
	if len(lines) != len(attacker) {
		t.Fatalf("audit tail --target %q: %d lines, want %d\n%s%s", hostile, len(lines), len(attacker), stdout.String(), stderr.String())
	}
	for i, line := range lines {
		if !strings.Contains(line, attacker[0].SessionID[:8]) || !strings.Contains(line, attacker[i].Kind) || !strings.Contains(line, hostile) {
			t.Errorf("audit tail line %d is not row %d of the attacker's session: %s", i, i+1, line)
		}
	}
}
