package postgres_test

import (
	"context"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/tollgate-dev/tollgate/host/audit"
	"github.com/tollgate-dev/tollgate/host/audit/audittest"
	"github.com/tollgate-dev/tollgate/host/audit/clickhouse"
	"github.com/tollgate-dev/tollgate/host/audit/spool"
	"github.com/tollgate-dev/tollgate/host/config"
	"github.com/tollgate-dev/tollgate/internal/testenv"
)

// On a synced target every statement that runs leaves a pg.forward row
// right before its pg.query row, in the simple protocol (one row for a
// multi-statement Query, with its last command tag) and the extended one;
// a statement refused before it runs leaves none; the results are those
// of the server.
func TestSyncedTargetRecordsForwardThenResult(t *testing.T) {
	ch := testenv.StartClickHouse(t)
	store, err := clickhouse.Open(context.Background(), clickhouse.Options{Addrs: []string{ch.Addr()}, Database: "pg_synced"})
	if err != nil {
		t.Fatal(err)
	}
	trail, err := audit.OpenPipeline(audit.PipelineOptions{Store: store, Spool: spool.Options{Dir: t.TempDir()}})
	if err != nil {
		t.Fatal(err)
	}
	pg := testenv.StartPostgres(t, testenv.PostgresOptions{})
	e := startEnv(t, envOptions{pg: pg, recorder: trail, plugins: defaultPlugins(t),
		target: func(t *config.Target) { t.Durability = config.DurabilitySynced }})
	ctx := context.Background()
	simple := e.connect(t, "", pgx.QueryExecModeSimpleProtocol)
	var n int
	if err := simple.QueryRow(ctx, "SELECT 41 + 1").Scan(&n); err != nil || n != 42 {
		t.Fatalf("simple: %d, %v", n, err)
	}
	if _, err := simple.Exec(ctx, "SELECT 1; SELECT 2, 3"); err != nil {
		t.Fatalf("multi-statement: %v", err)
	}
	if _, err := simple.Exec(ctx, "DROP TABLE pg_class"); err == nil {
		t.Fatal("the guard let DROP TABLE through")
	}
	extended := e.connect(t, "", pgx.QueryExecModeExec)
	if err := extended.QueryRow(ctx, "SELECT $1::int * 2", 21).Scan(&n); err != nil || n != 42 {
		t.Fatalf("extended: %d, %v", n, err)
	}
	simple.Close(ctx)
	extended.Close(ctx)
	e.l.Shutdown(ctx)
	if err := trail.Close(); err != nil { // ships every row
		t.Fatal(err)
	}
	read, err := clickhouse.Open(ctx, clickhouse.Options{Addrs: []string{ch.Addr()}, Database: "pg_synced"})
	if err != nil {
		t.Fatal(err)
	}
	defer read.Close()
	rows := audittest.Query(t, read, "SELECT kind, request_values[indexOf(request_keys, 'sql')], status FROM pg_synced.events FINAL "+
		"WHERE kind IN ('pg.forward', 'pg.query') ORDER BY session_id, seq")
	var got []string
	for _, r := range rows {
		got = append(got, strings.Join(r, " | "))
	}
	// Per session, in order: the simple one, then the extended one.
	want := []string{
		"pg.forward | SELECT 41 + 1 | \npg.query | SELECT 41 + 1 | SELECT 1\n" +
			"pg.forward | SELECT 1; SELECT 2, 3 | \npg.query | SELECT 1; SELECT 2, 3 | SELECT 1\n" +
			"pg.query | DROP TABLE pg_class | ",
		"pg.forward | SELECT $1::int * 2 | \npg.query | SELECT $1::int * 2 | SELECT 1",
	}
	joined := strings.Join(got, "\n")
	for _, w := range want {
		if !strings.Contains(joined, w) {
			t.Errorf("no run of rows\n%s\nin\n%s", w, joined)
		}
	}
	if len(got) != 7 {
		t.Errorf("%d forward and query rows, want 7:\n%s", len(got), joined)
	}
}
