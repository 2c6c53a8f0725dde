package postgres_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"runtime/debug"
	"strings"
	"testing"
	"time"

	"github.com/tollgate-dev/tollgate/host/audit"
	"github.com/tollgate-dev/tollgate/host/audit/clickhouse"
	"github.com/tollgate-dev/tollgate/host/audit/spool"
	"github.com/tollgate-dev/tollgate/host/config"
	"github.com/tollgate-dev/tollgate/internal/testenv"
	"github.com/tollgate-dev/tollgate/protocols/postgres"
)

// BenchmarkDurabilityPgbench measures what [audit] durability costs:
// pgbench -S at 1 and 8 clients through two listeners of one gateway
// (default chain, one pipeline into a real ClickHouse), one whose target
// is spooled and one synced, in the same run and in turn. It prints TPS
// with the ratio synced vs spooled, and the pipeline's group commit
// during the synced runs (fsyncs per second, rows per fsync).
// PGBENCH_TIME overrides the seconds per run (default 10).
func BenchmarkDurabilityPgbench(b *testing.B) {
	testenv.RequireCommand(b, "pgbench")
	secs := os.Getenv("PGBENCH_TIME")
	if secs == "" {
		secs = "10"
	}
	if os.Getenv("GOGC") == "" {
		defer debug.SetGCPercent(debug.SetGCPercent(400))
	}
	pg := testenv.StartPostgres(b, testenv.PostgresOptions{})
	plugins := append(defaultPlugins(b), loadPlugin(b, "redact", nil))
	ch := testenv.StartClickHouse(b)
	store, err := clickhouse.Open(context.Background(), clickhouse.Options{Addrs: []string{ch.Addr()}, Database: "pgdurable"})
	if err != nil {
		b.Fatal(err)
	}
	trail, err := audit.OpenPipeline(audit.PipelineOptions{Store: store, Spool: spool.Options{Dir: b.TempDir()}})
	if err != nil {
		b.Fatal(err)
	}
	defer trail.Close()
	plain := func(l *postgres.ListenerOptions) { l.AllowPlaintext = true }
	envs := map[string]*env{
		"spooled": startEnv(b, envOptions{pg: pg, plugins: plugins, recorder: trail, listener: plain,
			target: func(t *config.Target) { t.Durability = config.DurabilitySpooled }}),
		"synced": startEnv(b, envOptions{pg: pg, plugins: plugins, recorder: trail, listener: plain,
			target: func(t *config.Target) { t.Durability = config.DurabilitySynced }}),
	}
	init := exec.Command("pgbench", "-i", "-s", "10", "-q", pg.URL("postgres"))
	if out, err := init.CombinedOutput(); err != nil {
		b.Fatalf("pgbench -i: %v\n%s", err, out)
	}
	runs := []struct {
		name string
		args []string
	}{
		{"c1", []string{"-S", "-c", "1", "-j", "1"}},
		{"c8", []string{"-S", "-c", "8", "-j", "2"}},
	}
	for i := 0; i < b.N; i++ {
		for _, r := range runs {
			tps := map[string]float64{}
			lat := map[string]float64{}
			var fsyncs, rows uint64
			var took time.Duration
			// Synced first: its fsyncs then cover only its own rows, not the
			// spooled run's backlog.
			for _, mode := range []string{"synced", "spooled"} {
				st0, t0 := trail.Stats(), time.Now()
				cmd := exec.Command("pgbench", append(r.args, "-T", secs)...)
				cmd.Env = append(envs[mode].psqlEnv(), "PGSSLMODE=disable")
				out, err := cmd.CombinedOutput()
				if err != nil || !strings.Contains(string(out), "number of failed transactions: 0") {
					b.Fatalf("pgbench %s %s: %v\n%s", r.name, mode, err, out)
				}
				tps[mode] = parseFloat(out, `tps = ([0-9.]+)`)
				lat[mode] = parseFloat(out, `latency average = ([0-9.]+) ms`)
				if mode == "synced" {
					st := trail.Stats()
					fsyncs, rows, took = st.Fsyncs-st0.Fsyncs, st.FsyncedRows-st0.FsyncedRows, time.Since(t0)
				}
			}
			fmt.Printf("BENCH durability-pgbench-select-%s-synced %.0f tps ratio=%.2f vs spooled (%.0f tps), latency +%.0f us\n",
				r.name, tps["synced"], tps["synced"]/tps["spooled"], tps["spooled"], (lat["synced"]-lat["spooled"])*1000)
			if fsyncs > 0 {
				fmt.Printf("BENCH durability-pgbench-select-%s-fsyncs %.0f fsyncs/s ratio=%.2f vs synced tps (%.0f tps), %.2f rows per fsync\n",
					r.name, float64(fsyncs)/took.Seconds(), float64(fsyncs)/took.Seconds()/tps["synced"], tps["synced"], float64(rows)/float64(fsyncs))
			}
		}
	}
}
