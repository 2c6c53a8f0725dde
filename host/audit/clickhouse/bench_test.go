package clickhouse

import (
	"context"
	"fmt"
	"runtime"
	"syscall"
	"testing"
	"time"

	ch "github.com/ClickHouse/clickhouse-go/v2"

	"github.com/tollgate-dev/tollgate/host/audit"
	"github.com/tollgate-dev/tollgate/host/audit/audittest"
	"github.com/tollgate-dev/tollgate/host/audit/schema"
	"github.com/tollgate-dev/tollgate/internal/testenv"
)

var benchMeasured bool

// BenchmarkClickHouseInsert inserts 200,000 rows in 10,000-row batches
// through Store.Insert and through a bare clickhouse-go batch with the
// same column list, on one server, and prints both rates. The rows are
// sessions of 100 (so each batch also carries 100 opens and 100 closes
// for the store's sessions table). It measures once; run it with
// -benchtime=1x.
func BenchmarkClickHouseInsert(b *testing.B) {
	if benchMeasured {
		return
	}
	benchMeasured = true
	const total, batch = 200_000, 10_000
	srv := testenv.StartClickHouse(b)
	ctx := context.Background()
	var rows []audit.Row
	start := time.Now().Add(-time.Hour)
	for len(rows) < total {
		rows = append(rows, audittest.SessionRows(start.Add(time.Duration(len(rows))*time.Millisecond), "orders-db", "bench", 100)...)
	}

	s := openStore(b, srv)
	// The bare side writes the same rows to its own database with the
	// same schema; its arguments are converted before the clock starts.
	bareStore, err := Open(ctx, Options{Addrs: []string{srv.Addr()}, Database: "bare"})
	if err != nil {
		b.Fatal(err)
	}
	bareStore.Close()
	conn, err := ch.Open(&ch.Options{Addr: []string{srv.Addr()}, Protocol: ch.Native,
		Auth: ch.Auth{Database: "bare", Username: "default"}, Compression: &ch.Compression{Method: ch.CompressionLZ4}})
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Close()
	args := make([][]any, len(rows))
	for i := range rows {
		args[i] = schema.Values(rows[i])
	}

	// Alternate the two batch by batch, so background merges and cache
	// state weigh on both alike.
	b.ResetTimer()
	// Heap allocations and this process's CPU per row, each side on its
	// own: the allocations do not depend on the load on shared cores.
	var (
		storeTime, bareTime     time.Duration
		storeCPU, bareCPU       time.Duration
		storeAllocs, bareAllocs uint64
	)
	for i := 0; i < total; i += batch {
		m0, c0 := mallocs(), selfCPU()
		t0 := time.Now()
		if err := s.Insert(ctx, rows[i:i+batch]); err != nil {
			b.Fatal(err)
		}
		storeTime += time.Since(t0)
		storeCPU += selfCPU() - c0
		storeAllocs += mallocs() - m0

		m0, c0 = mallocs(), selfCPU()
		t0 = time.Now()
		bt, err := conn.PrepareBatch(ctx, schema.InsertEvents("bare"))
		if err != nil {
			b.Fatal(err)
		}
		for _, a := range args[i : i+batch] {
			if err := bt.Append(a...); err != nil {
				b.Fatal(err)
			}
		}
		if err := bt.Send(); err != nil {
			b.Fatal(err)
		}
		bareTime += time.Since(t0)
		bareCPU += selfCPU() - c0
		bareAllocs += mallocs() - m0
	}
	storeRate, bareRate := total/storeTime.Seconds(), total/bareTime.Seconds()
	b.StopTimer()

	for _, db := range []string{"audit", "bare"} {
		_, got, err := s.Query(ctx, "SELECT count() FROM "+db+".events")
		if err != nil || got[0][0] != fmt.Sprint(total) {
			b.Fatalf("%s.events holds %v (%v), want %d", db, got, err, total)
		}
	}
	fmt.Printf("BENCH clickhouse_store_insert %.0f rows/s ratio=%.2f vs bare_clickhouse_go\n", storeRate, storeRate/bareRate)
	fmt.Printf("BENCH clickhouse_bare_insert %.0f rows/s ratio=1.00 vs bare_clickhouse_go\n", bareRate)
	perRow := func(n uint64) float64 { return float64(n) / total }
	cpuPerRow := func(d time.Duration) float64 { return float64(d.Nanoseconds()) / 1000 / total }
	fmt.Printf("BENCH clickhouse_store_insert_allocs %.2f allocs/row ratio=%.2f vs bare_clickhouse_go (%.2f allocs/row)\n",
		perRow(storeAllocs), perRow(storeAllocs)/perRow(bareAllocs), perRow(bareAllocs))
	fmt.Printf("BENCH clickhouse_store_insert_cpu %.2f us/row ratio=%.2f vs bare_clickhouse_go (%.2f us/row)\n",
		cpuPerRow(storeCPU), cpuPerRow(storeCPU)/cpuPerRow(bareCPU), cpuPerRow(bareCPU))
	b.ReportMetric(storeRate, "store_rows/s")
	b.ReportMetric(bareRate, "bare_rows/s")
}

// mallocs is the process's heap allocations so far.
func mallocs() uint64 {
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.Mallocs
}

// selfCPU is this process's CPU time so far.
func selfCPU() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
