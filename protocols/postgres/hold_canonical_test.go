package postgres_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/tollgate-dev/tollgate/host/approval"
	"github.com/tollgate-dev/tollgate/internal/testenv"
)

// Issue 12.2: a session grant covers the statement's canonical form, the
// SQL as sent and its parameters: the same SQL with other parameters, or
// with other whitespace inside a literal, is held for its own approval.
func TestHeldStatementGrantCoversParameters(t *testing.T) {
	pg := testenv.StartPostgres(t, testenv.PostgresOptions{})
	pg.Exec(t, "CREATE TABLE counter (id int PRIMARY KEY, n int); INSERT INTO counter VALUES (1, 0)")
	count := func(t *testing.T) int { return atoi(t, pg.Exec(t, "SELECT n FROM counter WHERE id = 1")) }
	h := startHoldEnv(t, pg, time.Minute)
	c := h.connect(t, "")
	ctx := context.Background()

	const upd = "UPDATE counter SET n = n + $1 WHERE id = 1"
	done := execAsync(c, upd, 1)
	rec := h.pending(t)
	if rec.Covered["param.1"] != `\x00000001` || rec.Covered["sql"] != upd { // pgx sends int4 in binary
		t.Fatalf("covered: %+v", rec.Covered)
	}
	if _, err := h.m.Approve(rec.ID, h.dba, approval.DecideOptions{Scope: approval.Session, Minutes: 5}); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if _, err := c.Exec(ctx, upd, 1); err != nil {
		t.Fatalf("the granted statement again: %v", err)
	}
	if n := count(t); n != 2 {
		t.Fatalf("counter %d after two granted runs", n)
	}
	// Other parameters: held, and denied here.
	done = execAsync(c, upd, 1000000)
	other := h.pendingOther(t, rec.ID)
	if other.Covered["param.1"] != `\x000f4240` {
		t.Fatalf("covered: %+v", other.Covered)
	}
	if count(t) != 2 {
		t.Fatal("the grant ran a statement with other parameters")
	}
	h.m.Deny(other.ID, h.dba, "not that amount")
	checkDenied(t, <-done, "not that amount")

	// Whitespace inside a literal is data, not folded away.
	lit := "UPDATE counter SET n = n + length('a  b') WHERE id = 1"
	done = execAsync(c, lit)
	third := h.pendingNot(t, rec.ID, other.ID)
	h.m.Approve(third.ID, h.dba, approval.DecideOptions{Scope: approval.Session, Minutes: 5})
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	done = execAsync(c, strings.Replace(lit, "a  b", "a b", 1))
	fourth := h.pendingNot(t, rec.ID, other.ID, third.ID)
	if count(t) != 6 {
		t.Fatalf("counter %d: the grant ran the statement with another literal", count(t))
	}
	h.m.Deny(fourth.ID, h.dba, "no")
	checkDenied(t, <-done, "no")
	h.rec.Wait(t, "for the refused statement", func(r auditRow) bool {
		return r.Kind == "pg.query" && r.ApprovalID == fourth.ID && r.Verdict == "hold"
	})
}

// Past max_pending_per_principal a held statement is refused at once
// with 53400.
func TestHeldStatementPendingCap(t *testing.T) {
	pg := testenv.StartPostgres(t, testenv.PostgresOptions{})
	pg.Exec(t, "CREATE TABLE counter (id int PRIMARY KEY, n int); INSERT INTO counter VALUES (1, 0)")
	h := startHoldEnvWith(t, pg, approval.Options{Timeout: time.Minute, MaxPendingPerPrincipal: 1})
	first := execAsync(h.connect(t, ""), "UPDATE counter SET n = n + 1 WHERE id = 1")
	rec := h.pending(t)
	_, err := h.connect(t, "").Exec(context.Background(), "UPDATE counter SET n = n + 2 WHERE id = 1")
	var pe *pgconn.PgError
	if !errors.As(err, &pe) || pe.Code != "53400" || !strings.Contains(pe.Message, "max_pending_per_principal") {
		t.Fatalf("past the cap: %v", err)
	}
	h.rec.Wait(t, "for the refused hold", func(r auditRow) bool {
		return r.Kind == "pg.query" && strings.Contains(r.Error, "max_pending_per_principal")
	})
	h.m.Deny(rec.ID, h.dba, "no")
	<-first
}

// pendingNot waits for a pending approval other than those named.
func (h *holdEnv) pendingNot(t *testing.T, not ...string) approval.Record {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		for _, r := range h.m.List() {
			if r.State == approval.StatePending && !contains(not, r.ID) {
				return r
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no new pending approval; have %+v", h.m.List())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func contains(ss []string, s string) bool {
	for _, x := range ss {
		if x == s {
			return true
		}
	}
	return false
}
