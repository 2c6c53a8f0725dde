package http_test

import (
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tollgate-dev/tollgate/internal/testenv"
)

// BenchmarkDurabilityWrk measures what [audit] durability costs over
// HTTP: one gateway (audit into a real ClickHouse through the spool) with
// two listeners in front of the same upstream, one whose target is
// spooled and one synced, measured in turn with wrk at 1 and 32
// connections. It prints req/s and p50 with the ratio synced vs spooled,
// and the group commit during the synced runs (fsyncs per second, rows
// per fsync, from the admin listener's metrics).
func BenchmarkDurabilityWrk(b *testing.B) {
	if b.N > 1 {
		return // measured once (see BenchmarkWrk)
	}
	wrkBin := testenv.RequireCommand(b, "wrk")
	const upstreamToken = "bench-upstream-secret-0123456789"
	up := startBenchUpstream(b, upstreamToken)
	ch := testenv.StartClickHouse(b)
	addr := map[string]string{}
	for _, k := range []string{"issuer", "spooled", "synced", "admin"} {
		addr[k] = testenv.FreeAddr(b)
	}
	var targets, listeners strings.Builder
	for _, mode := range []string{"spooled", "synced"} {
		fmt.Fprintf(&targets, `
[[targets]]
name = "bench-%[1]s"
protocol = "http"
upstream = "http://%[2]s"
durability = %[1]q
[targets.credential]
type = "bearer"
token = "env:BENCH_UPSTREAM_TOKEN"
`, mode, up.addr)
		fmt.Fprintf(&listeners, `
[[listeners]]
name = "http-%[1]s"
protocol = "http"
listen = %[2]q
[[listeners.routes]]
target = "bench-%[1]s"
`, mode, addr[mode])
	}
	cfg := fmt.Sprintf(`[gateway]
id = "bench-durability"
data_dir = "data"
log_level = "info"

[dev]
issuer_listen = %q
audience = "tollgate"
%s%s
[[access]]
name = "dev-reaches-bench"
issuers = ["dev"]
targets = ["bench-spooled", "bench-synced"]

[admin]
listen = %q

[audit]
store = "clickhouse"
[audit.clickhouse]
addrs = [%q]
database = "bench_durability"
`, addr["issuer"], targets.String(), listeners.String(), addr["admin"], ch.Addr())
	g := testenv.StartGateway(b, testenv.GatewayOptions{Config: cfg, Dev: true,
		Env:  []string{"BENCH_UPSTREAM_TOKEN=" + upstreamToken},
		Wait: []string{addr["spooled"], addr["synced"], addr["issuer"], addr["admin"]}})
	out, errOut, code := g.Run("token", "-c", g.Config, "--sub", "bench", "--ttl", "1h")
	if code != 0 {
		b.Fatalf("gateway token: exit %d\n%s", code, errOut)
	}
	auth := "Authorization: Bearer " + strings.TrimSpace(out)
	probe(b, "spooled", addr["spooled"], auth)
	probe(b, "synced", addr["synced"], auth)
	if busy, ok := cpuBusy(time.Second); ok {
		fmt.Printf("# CPU busy before measuring: %.0f%%\n", busy*100)
	}
	w := &wrkRun{bin: wrkBin}
	for _, mode := range []string{"spooled", "synced"} {
		w.run(b, mode+" warm-up", addr[mode], auth, 2, 32, time.Second)
	}
	counter := func(name string) float64 {
		v, _ := strconv.ParseFloat(adminMetric(b, addr["admin"], name), 64)
		return v
	}
	for _, load := range []struct {
		key         string
		threads, cc int
	}{{"c1", 1, 1}, {"c32", 2, 32}} {
		res := map[string]wrkResult{}
		var fsyncs, rows float64
		var took time.Duration
		for _, mode := range []string{"synced", "spooled"} {
			f0, r0, t0 := counter("tollgate_audit_fsyncs_total"), counter("tollgate_audit_fsynced_rows_total"), time.Now()
			res[mode] = w.run(b, mode+" "+load.key, addr[mode], auth, load.threads, load.cc, 5*time.Second)
			if mode == "synced" {
				fsyncs, rows, took = counter("tollgate_audit_fsyncs_total")-f0, counter("tollgate_audit_fsynced_rows_total")-r0, time.Since(t0)
			}
			fmt.Printf("# wrk %-7s %s: %8.0f req/s  p50 %8.1f us  p99 %9.1f us\n", mode, load.key, res[mode].rps, res[mode].p50, res[mode].p99)
		}
		sy, sp := res["synced"], res["spooled"]
		fmt.Printf("BENCH durability-http-%s-synced %.0f req/s ratio=%.2f vs spooled (%.0f req/s)\n", load.key, sy.rps, sy.rps/sp.rps, sp.rps)
		fmt.Printf("BENCH durability-http-%s-synced-added-p50 %.0f us ratio=%.2f vs spooled (p50 %.0f us)\n", load.key, sy.p50-sp.p50, sy.p50/sp.p50, sp.p50)
		if fsyncs > 0 {
			fmt.Printf("BENCH durability-http-%s-fsyncs %.0f fsyncs/s ratio=%.2f vs synced req/s, %.2f rows per fsync\n",
				load.key, fsyncs/took.Seconds(), fsyncs/took.Seconds()/sy.rps, rows/fsyncs)
		}
	}
	if err := g.Stop(); err != nil {
		b.Fatalf("gateway stop: %v\n%s", err, g.Output())
	}
}

// adminMetric reads one figure of the admin listener's /metrics page.
func adminMetric(b *testing.B, admin, name string) string {
	b.Helper()
	resp, err := http.Get("http://" + admin + "/metrics")
	if err != nil {
		b.Fatalf("metrics: %v", err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	for _, line := range strings.Split(string(body), "\n") {
		if v, ok := strings.CutPrefix(line, name+" "); ok {
			return v
		}
	}
	b.Fatalf("metrics: no %s in\n%s", name, body)
	return ""
}
