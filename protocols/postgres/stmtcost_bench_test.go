package postgres_test

import (
	"context"
	"fmt"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/tollgate-dev/tollgate/host/audit"
	"github.com/tollgate-dev/tollgate/host/audit/clickhouse"
	"github.com/tollgate-dev/tollgate/host/audit/spool"
	"github.com/tollgate-dev/tollgate/internal/testenv"
	"github.com/tollgate-dev/tollgate/protocols/postgres"
)

// BenchmarkStatementCost runs pgbench -S's statement (one simple Query,
// one row back) 20,000 times in a row from a client in this process:
// straight to PostgreSQL, through the buffered relay (the floor) and
// through the gateway without TLS (default chain plus redact, audit
// through the pipeline into ClickHouse), and prints what the proxy
// allocates and spends per statement beyond the client's own (measured
// on the direct run). Heap allocations per statement do not depend on
// the load on the shared cores, unlike TPS and CPU time: they show a
// change to the per-statement path exactly.
func BenchmarkStatementCost(b *testing.B) {
	const n = 20_000
	pg := testenv.StartPostgres(b, testenv.PostgresOptions{})
	pg.Exec(b, `CREATE TABLE accounts AS SELECT g AS aid, 0 AS abalance FROM generate_series(1, 1000) g; ALTER TABLE accounts ADD PRIMARY KEY (aid)`)
	ch := testenv.StartClickHouse(b)
	store, err := clickhouse.Open(context.Background(), clickhouse.Options{Addrs: []string{ch.Addr()}, Database: "stmtcost"})
	if err != nil {
		b.Fatal(err)
	}
	trail, err := audit.OpenPipeline(audit.PipelineOptions{Store: store, Spool: spool.Options{Dir: b.TempDir()}})
	if err != nil {
		b.Fatal(err)
	}
	defer trail.Close()
	plugins := append(defaultPlugins(b), loadPlugin(b, "redact", nil))
	e := startEnv(b, envOptions{pg: pg, plugins: plugins, recorder: trail, listener: func(l *postgres.ListenerOptions) { l.AllowPlaintext = true }})
	dsns := []struct{ name, dsn string }{
		{"direct", pg.URL("postgres")},
		{string(relayBuffered), fmt.Sprintf("postgres://%s:%s@127.0.0.1:%s/postgres?sslmode=disable", pg.User, pg.Password, startGoRelay(b, pg.Addr(), relayBuffered))},
		{"gateway-notls", strings.Replace(e.dsn(""), "sslmode=verify-full", "sslmode=disable", 1)},
	}
	ctx := context.Background()
	type cost struct{ allocs, cpu float64 } // per statement
	run := func(dsn string, settle bool) cost {
		c, err := pgconn.Connect(ctx, dsn)
		if err != nil {
			b.Fatal(err)
		}
		defer c.Close(ctx)
		sql := make([]string, 64)
		for i := range sql {
			sql[i] = fmt.Sprintf("SELECT abalance FROM accounts WHERE aid = %d", 1+i*13)
		}
		var m0, m1 runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&m0)
		cpu0 := selfCPU()
		for i := range n {
			rs, err := c.Exec(ctx, sql[i%len(sql)]).ReadAll()
			if err != nil || len(rs) != 1 || len(rs[0].Rows) != 1 {
				b.Fatalf("statement %d: %v (%d results)", i, err, len(rs))
			}
		}
		if settle {
			// The audit rows leave through the pipeline (spool, batch,
			// ClickHouse) within a second: their cost is the
			// statements' too.
			time.Sleep(cpuSettle)
		}
		cpu := selfCPU() - cpu0
		runtime.ReadMemStats(&m1)
		return cost{float64(m1.Mallocs-m0.Mallocs) / n, float64(cpu.Microseconds()) / n}
	}
	for i := 0; i < b.N; i++ {
		res := map[string]cost{}
		for _, d := range dsns {
			res[d.name] = run(d.dsn, d.name == "gateway-notls")
		}
		client := res["direct"]
		floor := res[string(relayBuffered)]
		gw := res["gateway-notls"]
		own := func(c cost) cost { return cost{c.allocs - client.allocs, c.cpu - client.cpu} }
		f, g := own(floor), own(gw)
		fmt.Printf("BENCH pg-stmt-gateway-notls-allocs %.1f allocs/stmt ratio=%.2f vs the client's own (%.1f allocs/stmt); %s: %.1f\n",
			g.allocs, g.allocs/client.allocs, client.allocs, relayBuffered, f.allocs)
		fmt.Printf("BENCH pg-stmt-gateway-notls-cpu %.1f us/stmt ratio=%.2f vs floor (%s %.1f us/stmt); the client's own: %.1f us/stmt\n",
			g.cpu, g.cpu/f.cpu, relayBuffered, f.cpu, client.cpu)
	}
}
