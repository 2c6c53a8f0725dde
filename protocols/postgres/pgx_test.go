package postgres_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/tollgate-dev/tollgate/host/audit"
)

// pgx v5 through the gateway with no plugins: both protocols, every exec
// mode, batches, CopyFrom, LISTEN/NOTIFY, and binary results that come
// back byte for byte as the server sent them directly.
func TestPgxThroughGateway(t *testing.T) {
	e := startEnv(t, envOptions{})
	e.pg.Exec(t, `CREATE TABLE items (id int PRIMARY KEY, name text, ts timestamptz, price numeric(12,3), u uuid, doc jsonb, tags int[]);
INSERT INTO items VALUES (1, 'one', '2026-01-02 03:04:05.678901+00', 12.345, 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', '{"a": [1, 2]}', '{1,2,3}'),
(2, NULL, NULL, NULL, NULL, NULL, NULL)`)
	ctx := context.Background()

	modes := []pgx.QueryExecMode{pgx.QueryExecModeCacheStatement, pgx.QueryExecModeCacheDescribe,
		pgx.QueryExecModeDescribeExec, pgx.QueryExecModeExec, pgx.QueryExecModeSimpleProtocol}
	for _, mode := range modes {
		t.Run(mode.String(), func(t *testing.T) {
			c := e.connect(t, "", mode)
			var name string
			var price float64
			if err := c.QueryRow(ctx, "SELECT name, price::float8 FROM items WHERE id = $1", 1).Scan(&name, &price); err != nil {
				t.Fatal(err)
			}
			if name != "one" || price != 12.345 {
				t.Fatalf("got %q %v", name, price)
			}
			var n int
			for i := 0; i < 3; i++ { // the cached statement is reused
				if err := c.QueryRow(ctx, "SELECT count(*) FROM items WHERE id > $1", 0).Scan(&n); err != nil || n != 2 {
					t.Fatalf("count: %d %v", n, err)
				}
			}
			// An error, then the connection goes on.
			_, err := c.Exec(ctx, "SELECT 1/0")
			var pe *pgconn.PgError
			if !errors.As(err, &pe) || pe.Code != "22012" {
				t.Fatalf("division by zero: %v", err)
			}
			if err := c.QueryRow(ctx, "SELECT 42").Scan(&n); err != nil || n != 42 {
				t.Fatalf("after an error: %d %v", n, err)
			}
		})
	}

	t.Run("binary identical", func(t *testing.T) {
		direct, err := pgx.Connect(ctx, e.pg.URL("postgres"))
		if err != nil {
			t.Fatal(err)
		}
		defer direct.Close(ctx)
		via := e.connect(t, "")
		q := "SELECT id, name, ts, price, u, doc, tags FROM items ORDER BY id"
		raw := func(c *pgx.Conn) [][][]byte {
			// Binary results for every column.
			rr := c.PgConn().ExecParams(ctx, q, nil, nil, nil, []int16{1})
			var out [][][]byte
			for rr.NextRow() {
				var row [][]byte
				for _, v := range rr.Values() {
					row = append(row, append([]byte(nil), v...))
				}
				out = append(out, row)
			}
			if _, err := rr.Close(); err != nil {
				t.Fatal(err)
			}
			return out
		}
		a, b := raw(direct), raw(via)
		if len(a) != 2 || fmt.Sprint(a) != fmt.Sprint(b) {
			t.Fatalf("binary results differ:\ndirect  %v\ngateway %v", a, b)
		}
		if !bytes.Equal(a[0][0], []byte{0, 0, 0, 1}) {
			t.Fatalf("id is not binary int4: %v", a[0][0])
		}
	})

	t.Run("batch and CopyFrom", func(t *testing.T) {
		c := e.connect(t, "")
		b := &pgx.Batch{}
		b.Queue("INSERT INTO items (id, name) VALUES ($1, $2)", 10, "ten")
		b.Queue("INSERT INTO items (id, name) VALUES ($1, $2)", 11, "eleven")
		b.Queue("SELECT name FROM items WHERE id = $1", 11)
		br := c.SendBatch(ctx, b)
		for i := 0; i < 2; i++ {
			if _, err := br.Exec(); err != nil {
				t.Fatal(err)
			}
		}
		var name string
		if err := br.QueryRow().Scan(&name); err != nil || name != "eleven" {
			t.Fatalf("batch select: %q %v", name, err)
		}
		if err := br.Close(); err != nil {
			t.Fatal(err)
		}
		rows := [][]any{}
		for i := 100; i < 1100; i++ {
			rows = append(rows, []any{i, fmt.Sprintf("row %d", i)})
		}
		n, err := c.CopyFrom(ctx, pgx.Identifier{"items"}, []string{"id", "name"}, pgx.CopyFromRows(rows))
		if err != nil || n != 1000 {
			t.Fatalf("CopyFrom: %d %v", n, err)
		}
		var cnt int
		if err := c.QueryRow(ctx, "SELECT count(*) FROM items WHERE id >= 100").Scan(&cnt); err != nil || cnt != 1000 {
			t.Fatalf("copied rows: %d %v", cnt, err)
		}
	})

	t.Run("pipeline", func(t *testing.T) {
		c := e.connect(t, "")
		p := c.PgConn().StartPipeline(ctx)
		p.SendQueryParams("SELECT $1::int", [][]byte{[]byte("7")}, nil, nil, nil)
		p.SendQueryParams("SELECT 1/0", nil, nil, nil, nil)
		p.SendQueryParams("SELECT 8", nil, nil, nil, nil)
		if err := p.Sync(); err != nil {
			t.Fatal(err)
		}
		p.SendQueryParams("SELECT 9", nil, nil, nil, nil)
		if err := p.Sync(); err != nil {
			t.Fatal(err)
		}
		got := pipelineResults(t, p)
		if err := p.Close(); err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(got, "7 E22012") || !strings.Contains(got, "sync 9 sync") {
			t.Fatalf("pipeline results: %s", got)
		}
	})

	t.Run("listen notify", func(t *testing.T) {
		l := e.connect(t, "")
		if _, err := l.Exec(ctx, "LISTEN jobs"); err != nil {
			t.Fatal(err)
		}
		n := e.connect(t, "")
		if _, err := n.Exec(ctx, "SELECT pg_notify('jobs', 'hello')"); err != nil {
			t.Fatal(err)
		}
		wctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		note, err := l.WaitForNotification(wctx)
		if err != nil || note.Payload != "hello" || note.Channel != "jobs" {
			t.Fatalf("notification: %+v %v", note, err)
		}
	})

	// Every statement has its row; the session rows bracket them.
	rows := e.rec.Rows()
	if len(rowsOf(rows, audit.KindSessionOpen)) == 0 || len(rowsOf(rows, "pg.query")) < 10 {
		t.Fatalf("audit rows: %d open, %d statements", len(rowsOf(rows, audit.KindSessionOpen)), len(rowsOf(rows, "pg.query")))
	}
	r := e.rec.Wait(t, "for the CopyFrom", func(r audit.Row) bool { return strings.HasPrefix(r.Status, "COPY 1000") })
	if r.Subject != "agent" || r.Target != "app" || !strings.Contains(strings.ToUpper(r.Request["sql"]), "COPY") {
		t.Fatalf("copy row: %+v", r)
	}
}
