package audit_test

import (
	"context"
	"fmt"
	"runtime"
	"sync"
	"testing"
	"time"

	chgo "github.com/ClickHouse/clickhouse-go/v2"

	"github.com/tollgate-dev/tollgate/host/audit"
	"github.com/tollgate-dev/tollgate/host/audit/schema"
	"github.com/tollgate-dev/tollgate/host/audit/spool"
	"github.com/tollgate-dev/tollgate/internal/testenv"
)

// BenchmarkPipeline prints the audit pipeline's figures against a real
// ClickHouse 18.16, each with a same-run baseline.
func BenchmarkPipeline(b *testing.B) {
	if b.N > 1 {
		return
	}
	ch := testenv.StartClickHouse(b)
	ctx := context.Background()

	// Sustained rows/s through Record → spool → batches → ClickHouse,
	// against a bare clickhouse-go batch insert (row by row, arguments
	// converted before the clock starts) of the same rows in 10k batches,
	// into a database with the same schema.
	const n = 200_000
	rows := rowsFor(newSession(), n)
	openStore(b, ch.Addr()).Close() // the schema, for the bare side too
	conn, err := chgo.Open(&chgo.Options{Addr: []string{ch.Addr()}, Protocol: chgo.Native,
		Auth: chgo.Auth{Database: "audit_test", Username: "default"}, Compression: &chgo.Compression{Method: chgo.CompressionLZ4}})
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Close()
	args := make([][]any, n)
	for i := range rows {
		args[i] = schema.Values(rows[i])
	}
	start := time.Now()
	for i := 0; i < n; i += 10_000 {
		bt, err := conn.PrepareBatch(ctx, schema.InsertEvents("audit_test"))
		if err != nil {
			b.Fatal(err)
		}
		for _, a := range args[i : i+10_000] {
			if err := bt.Append(a...); err != nil {
				b.Fatal(err)
			}
		}
		if err := bt.Send(); err != nil {
			b.Fatal(err)
		}
	}
	bareRate := n / time.Since(start).Seconds()
	args = nil

	rows = rowsFor(newSession(), n)
	p, err := audit.OpenPipeline(audit.PipelineOptions{Store: openStore(b, ch.Addr()), Spool: spool.Options{Dir: b.TempDir()},
		BatchRows: 10_000, BatchAge: 100 * time.Millisecond})
	if err != nil {
		b.Fatal(err)
	}
	start = time.Now()
	for _, r := range rows {
		for p.Record(r) == audit.ErrFull {
			time.Sleep(time.Millisecond)
		}
	}
	for p.Stats().Shipped < n {
		time.Sleep(5 * time.Millisecond)
	}
	pipeRate := n / time.Since(start).Seconds()
	fmt.Printf("BENCH audit_pipeline_rows %.0f rows/s ratio=%.2f vs bare_clickhouse_go\n", pipeRate, pipeRate/bareRate)
	fmt.Printf("BENCH audit_bare_insert %.0f rows/s ratio=1.00 vs bare_clickhouse_go\n", bareRate)

	p.Close()

	// A steady 50,000 rows/s for 3 s in a fresh pipeline (the rows above
	// released): the heap the pipeline holds, and the time a request
	// spends in Record, against appending the same row to a slice under
	// a mutex (the least a hand-off can cost), timed the same way.
	rows = nil
	r := rowsFor(newSession(), 1)[0]
	p, err = audit.OpenPipeline(audit.PipelineOptions{Store: openStore(b, ch.Addr()), Spool: spool.Options{Dir: b.TempDir()},
		BatchRows: 10_000, BatchAge: time.Second})
	if err != nil {
		b.Fatal(err)
	}
	var (
		floorMu  sync.Mutex
		floor    []audit.Row
		inRecord time.Duration
		inFloor  time.Duration
		recorded int
		ms0, ms  runtime.MemStats
		peak     uint64
	)
	runtime.GC()
	runtime.ReadMemStats(&ms0)
	base := ms0.HeapInuse
	tick := time.NewTicker(10 * time.Millisecond)
	deadline := time.Now().Add(3 * time.Second)
	for time.Now().Before(deadline) {
		<-tick.C
		t0 := time.Now()
		for i := 0; i < 500; i++ {
			r.Seq = uint64(recorded + i)
			if err := p.Record(r); err != nil {
				b.Fatal(err)
			}
		}
		inRecord += time.Since(t0)
		t0 = time.Now()
		for i := 0; i < 500; i++ {
			floorMu.Lock()
			floor = append(floor, r)
			floorMu.Unlock()
		}
		inFloor += time.Since(t0)
		floor = floor[:0]
		recorded += 500
		runtime.ReadMemStats(&ms)
		peak = max(peak, ms.HeapInuse)
	}
	tick.Stop()
	perRow := float64(inRecord.Nanoseconds()) / float64(recorded)
	perFloor := float64(inFloor.Nanoseconds()) / float64(recorded)
	allocs := testing.AllocsPerRun(1000, func() { p.Record(r) })
	fmt.Printf("BENCH audit_record_request_path %.0f ns/row ratio=%.2f vs mutex_append (allocs %.1f, target 2000 ns)\n", perRow, perRow/perFloor, allocs)
	fmt.Printf("BENCH audit_pipeline_heap_at_50k_rows_s %.1f MiB ratio=%.2f vs heap_before\n", float64(peak-base)/(1<<20), float64(peak)/float64(base))
	p.Close()
}
