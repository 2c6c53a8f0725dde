package postgres_test

import (
	"context"
	"errors"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/tollgate-dev/tollgate/host/approval"
	"github.com/tollgate-dev/tollgate/host/event"
	"github.com/tollgate-dev/tollgate/host/plugin"
	"github.com/tollgate-dev/tollgate/internal/testenv"
	"github.com/tollgate-dev/tollgate/protocols/postgres"
)

// holdEnv is a gateway whose approve plugin holds every write for the
// dba group, with an approval Manager deciding in this process.
type holdEnv struct {
	*env
	m   *approval.Manager
	dba *event.Principal
}

func startHoldEnv(t *testing.T, pg *testenv.Postgres, timeout time.Duration) *holdEnv {
	t.Helper()
	return startHoldEnvWith(t, pg, approval.Options{Timeout: timeout})
}

func startHoldEnvWith(t *testing.T, pg *testenv.Postgres, o approval.Options) *holdEnv {
	t.Helper()
	o.URL = func(id string) string { return "https://console.test/approvals/" + id }
	m, err := approval.New(o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Shutdown(context.Background()) })
	approve := loadPlugin(t, "approve", map[string]any{"rules": []map[string]any{
		{"name": "writes", "kinds": []string{"pg.query"}, "sql": []string{"write"}, "approvers": []string{"dba"}, "reason": "writes need a DBA"},
	}})
	e := startEnv(t, envOptions{pg: pg, plugins: []*plugin.Plugin{approve}, approvals: m})
	return &holdEnv{env: e, m: m, dba: &event.Principal{Issuer: "corp", Subject: "dba@example.com", Groups: []string{"dba"}}}
}

// pending waits for the one pending approval and returns it.
func (h *holdEnv) pending(t *testing.T) approval.Record {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		for _, r := range h.m.List() {
			if r.State == approval.StatePending {
				return r
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no pending approval; have %+v", h.m.List())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// pendingOther waits for a pending approval other than not.
func (h *holdEnv) pendingOther(t *testing.T, not string) approval.Record {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		for _, r := range h.m.List() {
			if r.State == approval.StatePending && r.ID != not {
				return r
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no second pending approval; have %+v", h.m.List())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func (h *holdEnv) state(t *testing.T, id string, want approval.State) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		r, ok := h.m.Get(id)
		if ok && r.State == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("approval %s is %q, want %q", id, r.State, want)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// A held write waits for a DBA: approved, it runs exactly once, in both
// protocols, and its row carries the approval; denied, expired or
// cancelled, it fails with 42501 and the connection goes on.
func TestHeldStatements(t *testing.T) {
	pg := testenv.StartPostgres(t, testenv.PostgresOptions{})
	pg.Exec(t, "CREATE TABLE counter (id int PRIMARY KEY, n int); INSERT INTO counter VALUES (1, 0)")
	count := func(t *testing.T) string { return strings.TrimSpace(pg.Exec(t, "SELECT n FROM counter WHERE id = 1")) }

	for _, mode := range []pgx.QueryExecMode{pgx.QueryExecModeSimpleProtocol, pgx.QueryExecModeCacheStatement} {
		t.Run("approved/"+mode.String(), func(t *testing.T) {
			h := startHoldEnv(t, pg, time.Minute)
			var mu sync.Mutex
			var notices []string
			cc, err := pgx.ParseConfig(h.dsn(""))
			if err != nil {
				t.Fatal(err)
			}
			cc.DefaultQueryExecMode = mode
			cc.OnNotice = func(_ *pgconn.PgConn, n *pgconn.Notice) {
				mu.Lock()
				notices = append(notices, n.Message)
				mu.Unlock()
			}
			c, err := pgx.ConnectConfig(context.Background(), cc)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close(context.Background())
			before := count(t)
			done := execAsync(c, "UPDATE counter SET n = n + 1 WHERE id = $1", 1)
			rec := h.pending(t)
			if rec.Protocol != "postgres" || !strings.Contains(rec.Fields["sql"], "UPDATE counter") || rec.Subject != "agent" {
				t.Fatalf("approval record: %+v", rec)
			}
			if count(t) != before {
				t.Fatal("the held statement ran before the decision")
			}
			if _, err := h.m.Approve(rec.ID, h.dba, approval.DecideOptions{Reason: "looks fine"}); err != nil {
				t.Fatal(err)
			}
			if err := <-done; err != nil {
				t.Fatalf("approved statement: %v", err)
			}
			if got := count(t); atoi(t, got) != atoi(t, before)+1 {
				t.Fatalf("counter %s after one approved UPDATE from %s", got, before)
			}
			row := h.rec.Wait(t, "for the approved statement", func(r auditRow) bool {
				return r.Kind == "pg.query" && r.ApprovalID == rec.ID && r.Status == "UPDATE 1"
			})
			if row.Approver != "dba@example.com" || row.Verdict != "hold" {
				t.Fatalf("statement row: %+v", row)
			}
			// The connection goes on, and a read is not held.
			var one int
			if err := c.QueryRow(context.Background(), "SELECT 1").Scan(&one); err != nil || one != 1 {
				t.Fatalf("after the approval: %v", err)
			}
			mu.Lock()
			defer mu.Unlock()
			if len(notices) != 1 || !strings.Contains(notices[0], "waiting for approval "+rec.ID+" at https://console.test/approvals/"+rec.ID) {
				t.Fatalf("notices: %q", notices)
			}
		})
	}

	t.Run("approved/psql", func(t *testing.T) {
		h := startHoldEnv(t, pg, time.Minute)
		before := count(t)
		cmd := exec.Command(testenv.RequireCommand(t, "psql"), "-X", "-v", "ON_ERROR_STOP=1", "-c", "UPDATE counter SET n = n + 10 WHERE id = 1")
		cmd.Env = h.psqlEnv()
		var out strings.Builder
		cmd.Stdout, cmd.Stderr = &out, &out
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		rec := h.pending(t)
		if _, err := h.m.Approve(rec.ID, h.dba, approval.DecideOptions{}); err != nil {
			t.Fatal(err)
		}
		if err := cmd.Wait(); err != nil {
			t.Fatalf("psql: %v\n%s", err, out.String())
		}
		if !strings.Contains(out.String(), "NOTICE:  waiting for approval "+rec.ID) || !strings.Contains(out.String(), "UPDATE 1") {
			t.Fatalf("psql printed:\n%s", out.String())
		}
		if got := count(t); atoi(t, got) != atoi(t, before)+10 {
			t.Fatalf("counter %s after one approved UPDATE from %s", got, before)
		}
	})

	t.Run("denied", func(t *testing.T) {
		h := startHoldEnv(t, pg, time.Minute)
		c := h.connect(t, "")
		before := count(t)
		done := execAsync(c, "UPDATE counter SET n = n + 1 WHERE id = 1")
		rec := h.pending(t)
		if _, err := h.m.Deny(rec.ID, h.dba, "not during the freeze"); err != nil {
			t.Fatal(err)
		}
		checkDenied(t, <-done, "not during the freeze")
		if count(t) != before {
			t.Fatal("a denied statement ran")
		}
		var one int
		if err := c.QueryRow(context.Background(), "SELECT 1").Scan(&one); err != nil {
			t.Fatalf("after a deny: %v", err)
		}
	})

	t.Run("expired", func(t *testing.T) {
		h := startHoldEnv(t, pg, 300*time.Millisecond)
		c := h.connect(t, "")
		_, err := c.Exec(context.Background(), "UPDATE counter SET n = n + 1 WHERE id = 1")
		checkDenied(t, err, "expired")
	})

	t.Run("client disconnects", func(t *testing.T) {
		h := startHoldEnv(t, pg, time.Minute)
		c := h.connect(t, "")
		before := count(t)
		done := execAsync(c, "UPDATE counter SET n = n + 1 WHERE id = 1")
		rec := h.pending(t)
		c.PgConn().Conn().Close()
		if err := <-done; err == nil {
			t.Fatal("Exec on a closed connection succeeded")
		}
		h.state(t, rec.ID, approval.StateCancelled)
		if _, err := h.m.Approve(rec.ID, h.dba, approval.DecideOptions{}); err == nil {
			t.Fatal("a cancelled approval was approved")
		}
		if count(t) != before {
			t.Fatal("the statement of a client that left ran")
		}
	})

	t.Run("CancelRequest", func(t *testing.T) {
		h := startHoldEnv(t, pg, time.Minute)
		c := h.connect(t, "")
		done := execAsync(c, "UPDATE counter SET n = n + 1 WHERE id = 1")
		rec := h.pending(t)
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := c.PgConn().CancelRequest(ctx); err != nil {
			t.Fatal(err)
		}
		checkDenied(t, <-done, "cancel")
		h.state(t, rec.ID, approval.StateCancelled)
	})
}

func checkDenied(t *testing.T, err error, reason string) {
	t.Helper()
	var pe *pgconn.PgError
	if !errors.As(err, &pe) || pe.Code != "42501" || !strings.Contains(strings.ToLower(pe.Message), reason) {
		t.Fatalf("got %v, want 42501 mentioning %q", err, reason)
	}
}

func atoi(t *testing.T, s string) int {
	t.Helper()
	n, err := strconv.Atoi(strings.TrimSpace(s))
	if err != nil {
		t.Fatalf("not a number: %q", s)
	}
	return n
}

// An idle session ends at idle_timeout with 57P05, but a client waiting
// on a running statement longer than that is not idle.
func TestIdleTimeout(t *testing.T) {
	e := startEnv(t, envOptions{listener: func(l *postgres.ListenerOptions) { l.IdleTimeout.Duration = 400 * time.Millisecond }})
	c := e.connect(t, "")
	ctx := context.Background()
	if _, err := c.Exec(ctx, "SELECT pg_sleep(1)"); err != nil {
		t.Fatalf("a statement running past idle_timeout: %v", err)
	}
	time.Sleep(time.Second)
	_, err := c.Exec(ctx, "SELECT 1")
	if err == nil {
		t.Fatal("a session idle past idle_timeout still runs statements")
	}
	e.rec.Wait(t, "closing the idle session", func(r auditRow) bool {
		return r.Kind == "session.close" && strings.Contains(r.Error, "idle")
	})
}

// execAsync runs sql on c in its own goroutine; the channel gets its error.
func execAsync(c *pgx.Conn, sql string, args ...any) <-chan error {
	done := make(chan error, 1)
	go func() {
		_, err := c.Exec(context.Background(), sql, args...)
		done <- err
	}()
	return done
}
