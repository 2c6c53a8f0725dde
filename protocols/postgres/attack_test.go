package postgres_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/tollgate-dev/tollgate/host/approval"
	"github.com/tollgate-dev/tollgate/host/audit"
	"github.com/tollgate-dev/tollgate/internal/testenv"
)

// Attacks a hostile agent makes on the gateway's view of the session,
// each through the real guard plugin in front of PostgreSQL 15, with a
// hand-written client so that the messages and their order are exactly
// the attacker's.

// transcript sends msgs at once (a pipeline), then reads until the
// gateway has sent syncs ReadyForQuery messages or closed, and returns
// what came back, one word a message: 1 ParseComplete, 2 BindComplete,
// 3 CloseComplete, C:<tag>, D:<first value>, E:<SQLSTATE>, F:<SQLSTATE>
// for a FATAL, Z, S:<name>=<value>, EOF.
func (c *rawClient) transcript(t *testing.T, syncs int, msgs ...pgproto3.FrontendMessage) string {
	t.Helper()
	for _, m := range msgs {
		c.fe.Send(m)
	}
	if err := c.fe.Flush(); err != nil {
		return "EOF"
	}
	var got []string
	for syncs > 0 && len(got) < 50 {
		m, err := c.fe.Receive()
		if err != nil {
			got = append(got, "EOF")
			break
		}
		switch m := m.(type) {
		case *pgproto3.ParseComplete:
			got = append(got, "1")
		case *pgproto3.BindComplete:
			got = append(got, "2")
		case *pgproto3.CloseComplete:
			got = append(got, "3")
		case *pgproto3.CommandComplete:
			got = append(got, "C:"+string(m.CommandTag))
		case *pgproto3.DataRow:
			got = append(got, "D:"+string(m.Values[0]))
		case *pgproto3.ErrorResponse:
			if m.Severity == "FATAL" {
				got = append(got, "F:"+m.Code)
			} else {
				got = append(got, "E:"+m.Code)
			}
		case *pgproto3.ReadyForQuery:
			got = append(got, "Z")
			syncs--
		case *pgproto3.ParameterStatus:
			got = append(got, "S:"+m.Name+"="+m.Value)
		}
	}
	return strings.Join(got, " ")
}

// login opens a raw session through the gateway and reads to its first
// ReadyForQuery.
func (e *env) login(t *testing.T) *rawClient {
	t.Helper()
	c := e.raw(t, e.tok)
	if ok, errResp := c.untilReady(t); !ok {
		t.Fatalf("login: %v", errResp)
	}
	return c
}

func (e *env) tableExists(t *testing.T, name string) bool {
	t.Helper()
	return strings.TrimSpace(e.pg.Exec(t, fmt.Sprintf("SELECT count(*) FROM pg_class WHERE relname = '%s'", name))) == "1"
}

// queryRows are the pg.query rows whose sql contains sub.
func queryRows(rows []audit.Row, sub string) []audit.Row {
	var out []audit.Row
	for _, r := range rows {
		if r.Kind == "pg.query" && strings.Contains(r.Request["sql"], sub) {
			out = append(out, r)
		}
	}
	return out
}

// A Parse the server refuses does not change what the gateway believes a
// statement name holds: the swap of issue 11 (Parse s1 = DROP, Parse s1 =
// SELECT 1 refused with 42P05, Bind s1) is judged as the DROP it is.
func TestPreparedStatementSwap(t *testing.T) {
	e := startEnv(t, envOptions{plugins: defaultPlugins(t)})
	e.pg.Exec(t, apiKeysSQL)

	for _, pipelined := range []bool{false, true} {
		t.Run(fmt.Sprintf("pipelined=%v", pipelined), func(t *testing.T) {
			c := e.login(t)
			defer c.conn.Close()
			parseDrop := []pgproto3.FrontendMessage{&pgproto3.Parse{Name: "s1", Query: "DROP TABLE victims"}, &pgproto3.Sync{}}
			parseSelect := []pgproto3.FrontendMessage{&pgproto3.Parse{Name: "s1", Query: "SELECT 1"}, &pgproto3.Sync{}}
			run := []pgproto3.FrontendMessage{&pgproto3.Bind{PreparedStatement: "s1"}, &pgproto3.Execute{}, &pgproto3.Sync{}}
			var got string
			if pipelined {
				all := append(append(append([]pgproto3.FrontendMessage{}, parseDrop...), parseSelect...), run...)
				got = c.transcript(t, 3, all...)
			} else {
				got = c.transcript(t, 1, parseDrop...) + " | " + c.transcript(t, 1, parseSelect...) + " | " + c.transcript(t, 1, run...)
			}
			if !strings.Contains(got, "E:42P05") || !strings.HasSuffix(got, "E:42501 Z") {
				t.Fatalf("want the second Parse refused by the server and the Bind denied as a DROP, got %q", got)
			}
			if !e.tableExists(t, "victims") {
				t.Fatal("the DROP ran")
			}
			r := e.rec.Wait(t, "for the denied DROP", func(r audit.Row) bool {
				return r.Kind == "pg.query" && r.Request["sql"] == "DROP TABLE victims" && r.Verdict == "deny"
			})
			if r.Request["statement"] != "s1" {
				t.Fatalf("row: %+v", r.Request)
			}
		})
	}
}

// SQL that replaces a prepared statement behind the protocol's back
// (DEALLOCATE and PREPARE, alone or pipelined before the Bind) does not
// make the server run anything but what the chain judged; a name the
// gateway never saw parsed is refused.
func TestPreparedStatementReplacedBySQL(t *testing.T) {
	e := startEnv(t, envOptions{plugins: defaultPlugins(t)})
	c := e.login(t)
	defer c.conn.Close()

	if got := c.transcript(t, 1, &pgproto3.Parse{Name: "s1", Query: "SELECT 'judged'"}, &pgproto3.Sync{}); got != "1 Z" {
		t.Fatalf("parse: %q", got)
	}
	// Replaced, then bound in a later message.
	got := c.transcript(t, 1, &pgproto3.Query{String: "DEALLOCATE s1; PREPARE s1 AS SELECT 'swapped'"})
	if got != "C:DEALLOCATE C:PREPARE Z" {
		t.Fatalf("replace: %q", got)
	}
	run := []pgproto3.FrontendMessage{&pgproto3.Bind{PreparedStatement: "s1"}, &pgproto3.Execute{}, &pgproto3.Sync{}}
	if got := c.transcript(t, 1, run...); got != "2 D:judged C:SELECT 1 Z" {
		t.Fatalf("after SQL replaced s1 the server ran something else: %q", got)
	}
	// Replaced and bound in one pipeline, before the gateway hears of it.
	msgs := append([]pgproto3.FrontendMessage{&pgproto3.Query{String: "DEALLOCATE s1; PREPARE s1 AS SELECT 'swapped'"}}, run...)
	if got := c.transcript(t, 2, msgs...); got != "C:DEALLOCATE C:PREPARE Z 2 D:judged C:SELECT 1 Z" {
		t.Fatalf("pipelined replace: %q", got)
	}
	// Prepared by SQL only: the gateway does not know what it holds.
	got = c.transcript(t, 2, &pgproto3.Query{String: "PREPARE p2 AS SELECT 'unjudged'"},
		&pgproto3.Bind{PreparedStatement: "p2"}, &pgproto3.Execute{}, &pgproto3.Sync{})
	if got != "C:PREPARE Z E:26000 Z" {
		t.Fatalf("SQL-prepared statement: %q", got)
	}
	e.rec.Wait(t, "for the refused Bind of p2", func(r audit.Row) bool {
		return r.Kind == "pg.query" && r.Request["statement"] == "p2" && r.Verdict == "deny"
	})
	for _, r := range e.rec.Rows() {
		if strings.Contains(r.Request["sql"], "swapped") && r.Kind == "pg.query" && r.Request["statement"] == "s1" {
			t.Fatalf("a row says s1 ran the swapped SQL: %+v", r.Request)
		}
	}
	// A failed unnamed Parse leaves no unnamed statement, for the server
	// and for the gateway.
	got = c.transcript(t, 2, &pgproto3.Parse{Query: "SELECT 'first'"}, &pgproto3.Sync{},
		&pgproto3.Parse{Query: "SELEC broken"}, &pgproto3.Sync{})
	if got != "1 Z E:42601 Z" {
		t.Fatalf("unnamed parses: %q", got)
	}
	if got := c.transcript(t, 1, run[0].(*pgproto3.Bind), &pgproto3.Execute{}, &pgproto3.Sync{}); got != "2 D:judged C:SELECT 1 Z" {
		t.Fatalf("named s1 still bound: %q", got)
	}
	got = c.transcript(t, 1, &pgproto3.Bind{}, &pgproto3.Execute{}, &pgproto3.Sync{})
	if got != "E:26000 Z" {
		t.Fatalf("unnamed statement after a failed Parse: %q", got)
	}
}

// A switch to an encoding whose characters can hold a backslash byte is
// refused when asked for plainly and ends the session when the server
// reports it however it came about; a statement pipelined behind the
// switch, which would read differently under it, never runs.
func TestClientEncodingSwitch(t *testing.T) {
	e := startEnv(t, envOptions{plugins: defaultPlugins(t)})
	e.pg.Exec(t, apiKeysSQL)

	for _, sql := range []string{
		"SET client_encoding = 'SJIS'",
		"set CLIENT_ENCODING to big5",
		"SET NAMES 'GBK'",
		"SELECT set_config('client_encoding', 'SJIS', false)",
		"SET standard_conforming_strings = off",
	} {
		c := e.login(t)
		got := c.transcript(t, 1, &pgproto3.Query{String: sql})
		if got != "E:0A000 Z" {
			t.Fatalf("%s: %q", sql, got)
		}
		if got := c.transcript(t, 1, &pgproto3.Query{String: "SHOW client_encoding"}); got != "D:UTF8 C:SHOW Z" {
			t.Fatalf("after %s: %q", sql, got)
		}
		c.conn.Close()
	}

	attack := "select E'\x95\x5c'; drop table victims; -- '"
	for _, change := range []string{
		"SELECT set_config('client_' || 'encoding', 'SJ' || 'IS', false)",
		"SELECT set_config('standard_conforming_' || 'strings', 'of' || 'f', false)",
	} {
		c := e.login(t)
		got := c.transcript(t, 2, &pgproto3.Query{String: change}, &pgproto3.Query{String: attack})
		if !strings.Contains(got, "F:0A000") || !strings.HasSuffix(got, "EOF") || strings.Contains(got, "DROP") {
			t.Fatalf("%s then the attack: %q", change, got)
		}
		if !e.tableExists(t, "victims") {
			t.Fatalf("%s: the DROP ran", change)
		}
		c.conn.Close()
	}
	e.rec.Wait(t, "for the session ended by the encoding", func(r audit.Row) bool {
		return r.Kind == audit.KindSessionClose && strings.Contains(r.Error, "client_encoding became SJIS")
	})
	if rows := queryRows(e.rec.Rows(), "drop table victims"); len(rows) != 0 {
		t.Fatalf("the attack statement reached the chain: %+v", rows[0].Request)
	}

	// In the extended protocol the server reports at Sync: a Parse with
	// a backslash after an Execute in the same segment is refused.
	c := e.login(t)
	defer c.conn.Close()
	got := c.transcript(t, 1,
		&pgproto3.Parse{Query: "SELECT set_config('client_' || 'encoding', 'SJIS', false)"}, &pgproto3.Bind{}, &pgproto3.Execute{},
		&pgproto3.Parse{Name: "x", Query: attack}, &pgproto3.Bind{PreparedStatement: "x"}, &pgproto3.Execute{}, &pgproto3.Sync{})
	if !strings.Contains(got, "E:0A000") || !strings.Contains(got, "F:0A000") {
		t.Fatalf("extended protocol: %q", got)
	}
	if !e.tableExists(t, "victims") {
		t.Fatal("extended protocol: the DROP ran")
	}
}

// Extended-protocol messages reach the server when the client's input is
// drained, not only at Sync: a client that times its messages sees the
// server act on each as it comes. The server shows a Parse it received
// in pg_stat_activity.
func TestExtendedMessagesForwardedBeforeSync(t *testing.T) {
	e := startEnv(t, envOptions{})
	c := e.login(t)
	defer c.conn.Close()
	const q = "SELECT 'forwarded before sync'"
	c.fe.Send(&pgproto3.Parse{Query: q})
	if err := c.fe.Flush(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		got := strings.TrimSpace(e.pg.Exec(t, "SELECT count(*) FROM pg_stat_activity WHERE query = '"+strings.ReplaceAll(q, "'", "''")+"'"))
		if got == "1" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the Parse did not reach the server before the client's Sync")
		}
		time.Sleep(50 * time.Millisecond)
	}
	if got := c.transcript(t, 1, &pgproto3.Bind{}, &pgproto3.Execute{}, &pgproto3.Sync{}); got != "1 2 D:forwarded before sync C:SELECT 1 Z" {
		t.Fatalf("after: %q", got)
	}
}

// A client that sends a statement and leaves does not stop the server:
// the statement's row says what the server reported, its command tag.
func TestClientLeavesMidStatement(t *testing.T) {
	e := startEnv(t, envOptions{plugins: defaultPlugins(t)})
	e.pg.Exec(t, apiKeysSQL)
	c := e.login(t)
	const q = "SELECT pg_sleep(0.5); DELETE FROM victims WHERE id = 1"
	c.fe.Send(&pgproto3.Query{String: q})
	if err := c.fe.Flush(); err != nil {
		t.Fatal(err)
	}
	c.conn.Close()
	r := e.rec.Wait(t, "for the statement the client left", func(r audit.Row) bool {
		return r.Kind == "pg.query" && r.Request["sql"] == q
	})
	if r.Status != "DELETE 1" {
		t.Fatalf("row: status %q, error %q", r.Status, r.Error)
	}
	if got := strings.TrimSpace(e.pg.Exec(t, "SELECT count(*) FROM victims")); got != "1" {
		t.Fatalf("victims left: %s", got)
	}
}

// A statement held for approval is the one that runs once approved, even
// when the client pipelined others behind it: the gateway reads those
// while it waits, and they must not take the held statement's place.
func TestHeldStatementNotSwappedByPipeline(t *testing.T) {
	pg := testenv.StartPostgres(t, testenv.PostgresOptions{})
	pg.Exec(t, apiKeysSQL)
	h := startHoldEnv(t, pg, time.Minute)
	for _, extended := range []bool{false, true} {
		c := h.login(t)
		var msgs []pgproto3.FrontendMessage
		if extended {
			msgs = []pgproto3.FrontendMessage{
				&pgproto3.Parse{Name: "a", Query: "DELETE FROM victims WHERE id = $1"}, &pgproto3.Parse{Name: "b", Query: "UPDATE victims SET id = id + $1"},
				&pgproto3.Bind{PreparedStatement: "a", Parameters: [][]byte{[]byte("1")}}, &pgproto3.Execute{},
				&pgproto3.Bind{PreparedStatement: "b", Parameters: [][]byte{[]byte("100")}}, &pgproto3.Execute{}, &pgproto3.Sync{}}
		} else {
			msgs = []pgproto3.FrontendMessage{&pgproto3.Query{String: "DELETE FROM victims WHERE id = 1"}, &pgproto3.Query{String: "UPDATE victims SET id = id + 100"}}
		}
		for _, m := range msgs {
			c.fe.Send(m)
		}
		if err := c.fe.Flush(); err != nil {
			t.Fatal(err)
		}
		p := h.pending(t)
		if !strings.Contains(p.Fields["sql"], "DELETE") {
			t.Fatalf("held: %q", p.Fields["sql"])
		}
		time.Sleep(100 * time.Millisecond) // the pipelined statement is read meanwhile
		if _, err := h.m.Approve(p.ID, h.dba, approval.DecideOptions{}); err != nil {
			t.Fatal(err)
		}
		// The second statement is a write too: deny its approval.
		q := h.pendingOther(t, p.ID)
		if !strings.Contains(q.Fields["sql"], "UPDATE") {
			t.Fatalf("second held: %q", q.Fields["sql"])
		}
		if _, err := h.m.Deny(q.ID, h.dba, "no"); err != nil {
			t.Fatal(err)
		}
		c.untilReady(t)
		if !extended {
			c.untilReady(t)
		}
		c.conn.Close()
		if got := strings.TrimSpace(pg.Exec(t, "SELECT coalesce(string_agg(id::text, ','), '') FROM victims")); got != "2" {
			t.Fatalf("extended=%v: victims %q, want the DELETE of 1 only", extended, got)
		}
		pg.Exec(t, "TRUNCATE victims; INSERT INTO victims VALUES (1), (2)")
	}
}

// Dynamic SQL in a DO block can replace a prepared statement where no
// PREPARE is in sight of the gateway's words but the block's own; with no
// guard in the way, the DO runs, and the Bind pipelined behind it still
// runs what was judged.
func TestPreparedStatementReplacedByDOBlock(t *testing.T) {
	e := startEnv(t, envOptions{})
	c := e.login(t)
	defer c.conn.Close()
	if got := c.transcript(t, 1, &pgproto3.Parse{Name: "s1", Query: "SELECT 'judged'"}, &pgproto3.Sync{}); got != "1 Z" {
		t.Fatalf("parse: %q", got)
	}
	swap := `DO $$ BEGIN EXECUTE 'DEALLOCATE s1'; EXECUTE 'PREPARE s1 AS SELECT ''swapped'''; END $$`
	got := c.transcript(t, 2, &pgproto3.Query{String: swap},
		&pgproto3.Bind{PreparedStatement: "s1"}, &pgproto3.Execute{}, &pgproto3.Sync{})
	if got != "C:DO Z 2 D:judged C:SELECT 1 Z" {
		t.Fatalf("after a DO block replaced s1: %q", got)
	}
	// And in a later message, once the DO's tag has tainted the name.
	c.transcript(t, 1, &pgproto3.Query{String: swap})
	if got := c.transcript(t, 1, &pgproto3.Bind{PreparedStatement: "s1"}, &pgproto3.Execute{}, &pgproto3.Sync{}); got != "2 D:judged C:SELECT 1 Z" {
		t.Fatalf("a later Bind: %q", got)
	}
}
