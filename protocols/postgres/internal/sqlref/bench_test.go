//go:build linux

package sqlref

import (
	"fmt"
	"runtime"
	"slices"
	"syscall"
	"testing"
	"unsafe"

	pg_query "github.com/pganalyze/pg_query_go/v6"
)

// threadCPU is this OS thread's CPU time in ns: the machine is shared,
// and wall time there measures the neighbours too.
func threadCPU() int64 {
	var ts syscall.Timespec
	const clockThreadCPUTimeID = 3
	syscall.Syscall(syscall.SYS_CLOCK_GETTIME, clockThreadCPUTimeID, uintptr(unsafe.Pointer(&ts)), 0)
	return ts.Nano()
}

// perStmt is the fastest of 5 timings of n calls of fn, in CPU ns per
// call, on one locked thread (cgo calls run on it too).
func perStmt(n int, fn func(i int)) float64 {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	var runs []float64
	for range 5 {
		start := threadCPU()
		for i := range n {
			fn(i)
		}
		runs = append(runs, float64(threadCPU()-start)/float64(n))
	}
	slices.Sort(runs)
	return runs[0]
}

// BenchmarkSQLRefAnalyze prints one BENCH line per case, against
// pg_query.Parse alone on the same statement (what an uncached gateway
// would pay at least).
func BenchmarkSQLRefAnalyze(b *testing.B) {
	const n = 2000
	miss := `SELECT u.id, u.name, o.total FROM users u JOIN orders o ON o.user_id = u.id WHERE u.id = $1 ORDER BY o.created_at DESC LIMIT 10`
	hit := `SELECT k.id, k.secret, u.name FROM api_keys k JOIN users u ON u.id = k.owner WHERE k.id = $1 ORDER BY k.id LIMIT 10`
	parse := func(sql string) float64 {
		return perStmt(n, func(int) {
			if _, err := pg_query.Parse(sql); err != nil {
				b.Fatal(err)
			}
		})
	}
	analyze := func(p *Policy, sql func(i int) string) float64 {
		return perStmt(n, func(i int) {
			if _, err := p.Analyze(sql(i)); err != nil {
				b.Fatal(err)
			}
		})
	}
	report := func(name string, v, base float64, baseName string) {
		fmt.Printf("BENCH sqlref_analyze_%s %.0f cpu-ns/stmt ratio=%.4f vs %s (%.0f cpu-ns/stmt)\n", name, v, v/base, baseName, base)
	}
	for range b.N {
		p := testPolicy()
		parseMiss, parseHit := parse(miss), parse(hit)
		report("prefilter_miss", analyze(p, func(int) string { return miss }), parseMiss, "pg_query.Parse")
		report("cache_hit", analyze(p, func(int) string { return hit }), parseHit, "pg_query.Parse")
		// Literals differ each time: Normalize, then the normalized entry.
		lits := 0
		lit := func(int) string {
			lits++
			return fmt.Sprintf(`SELECT k.id, k.secret, u.name FROM api_keys k JOIN users u ON u.id = k.owner WHERE k.id = %d ORDER BY k.id LIMIT 10`, lits)
		}
		report("normalized_hit", analyze(p, lit), parseHit, "pg_query.Parse")
		norm := perStmt(n, func(i int) { pg_query.Normalize(lit(i)) })
		report("normalize_only", norm, parseHit, "pg_query.Parse")
		// A new statement each time: Normalize, Parse and the walk,
		// against Parse alone of the same texts.
		seq := 0
		cold := func(int) string {
			seq++
			return fmt.Sprintf(`SELECT k%d.id, k%[1]d.secret, u.name FROM api_keys k%[1]d JOIN users u ON u.id = k%[1]d.owner WHERE k%[1]d.id = $1 ORDER BY k%[1]d.id LIMIT 10`, seq)
		}
		seq = 0
		tree := perStmt(n, func(i int) {
			_, err := pg_query.Parse(cold(i))
			if err != nil {
				b.Fatal(err)
			}
		})
		seq = 0
		report("cold", analyze(p, cold), tree, "pg_query.Parse")
	}
}
