package postgres_test

import (
	"strings"
	"testing"

	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/tollgate-dev/tollgate/host/audit"
)

// A Bind passed the chain, so it is in the trail even if its portal never
// runs: rebound, closed, or left open when the session ends.
func TestBoundButNeverExecuted(t *testing.T) {
	e := startEnv(t, envOptions{plugins: defaultPlugins(t)})
	c := e.raw(t, e.tok)
	if ok, errResp := c.untilReady(t); !ok {
		t.Fatalf("login: %v", errResp)
	}
	step := func(msgs ...pgproto3.FrontendMessage) {
		t.Helper()
		for _, m := range msgs {
			c.fe.Send(m)
		}
		if err := c.fe.Flush(); err != nil {
			t.Fatal(err)
		}
		if ok, errResp := c.untilReady(t); !ok || errResp != nil {
			t.Fatalf("ok %v, error %v", ok, errResp)
		}
	}
	step(&pgproto3.Parse{Name: "s", Query: "SELECT 'rebound'"}, &pgproto3.Bind{PreparedStatement: "s"}, &pgproto3.Sync{})
	// Rebinding the unnamed portal drops the first one; this one runs.
	step(&pgproto3.Bind{PreparedStatement: "s"}, &pgproto3.Execute{}, &pgproto3.Sync{})
	step(&pgproto3.Query{String: "BEGIN"})
	step(&pgproto3.Parse{Name: "c", Query: "SELECT 'closed'"}, &pgproto3.Bind{DestinationPortal: "p1", PreparedStatement: "c"},
		&pgproto3.Close{ObjectType: 'P', Name: "p1"}, &pgproto3.Sync{})
	step(&pgproto3.Parse{Name: "l", Query: "SELECT 'left'"}, &pgproto3.Bind{DestinationPortal: "p2", PreparedStatement: "l"}, &pgproto3.Sync{})
	c.fe.Send(&pgproto3.Terminate{})
	c.fe.Flush()
	c.conn.Close()

	e.rec.Wait(t, "for the session's close", func(r audit.Row) bool { return r.Kind == audit.KindSessionClose })
	got := map[string][]string{}
	for _, r := range e.rec.Rows() {
		if r.Kind == "pg.query" {
			got[r.Request["sql"]] = append(got[r.Request["sql"]], r.Status+"|"+r.Error)
		}
	}
	want := map[string]string{
		"SELECT 'rebound'": "|bound but never executed SELECT 1|",
		"SELECT 'closed'":  "|bound but never executed",
		"SELECT 'left'":    "|bound but never executed",
	}
	for sql, w := range want {
		if g := strings.Join(got[sql], " "); g != w {
			t.Errorf("%s: rows %q, want %q", sql, g, w)
		}
	}
}
