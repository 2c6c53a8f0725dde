package admin

import (
	"fmt"
	"io"
	"net/http"
	"runtime/metrics"
	"time"
)

// metrics writes the audit pipeline's figures in the Prometheus text
// format. It needs no token, like /healthz: scrapers rarely carry OIDC
// tokens, and the figures are counts and sizes, never rows. The gauge to
// alert on is tollgate_audit_store_reachable == 0 (rows wait in the spool)
// together with the spool's fill.
func (o Options) metrics(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
	writeRuntime(w)
	if o.PluginStats != nil {
		writePlugins(w, o.PluginStats())
	}
	if o.AuditStats == nil {
		return
	}
	s := o.AuditStats()
	b2f := func(b bool) int {
		if b {
			return 1
		}
		return 0
	}
	down := 0.0
	if !s.StoreDownSince.IsZero() {
		down = time.Since(s.StoreDownSince).Seconds()
	}
	for _, m := range []struct {
		name, kind, help string
		v                any
	}{
		{"tollgate_audit_store_reachable", "gauge", "1 while the audit store takes rows; 0 from a failed insert or ping until the next success (rows wait in the spool).", b2f(s.StoreReachable)},
		{"tollgate_audit_store_down_seconds", "gauge", "How long the current audit store outage has lasted (0 when reachable).", down},
		{"tollgate_audit_store_outages_total", "counter", "Audit store outages since start.", s.StoreOutages},
		{"tollgate_audit_store_retries_total", "counter", "Failed inserts into the audit store (each retried).", s.Retries},
		{"tollgate_audit_rows_accepted_total", "counter", "Audit rows accepted from the request path.", s.Accepted},
		{"tollgate_audit_rows_spooled_total", "counter", "Audit rows written to the spool.", s.Spooled},
		{"tollgate_audit_rows_shipped_total", "counter", "Audit rows the store acknowledged (a replayed batch counts again).", s.Shipped},
		{"tollgate_audit_rows_refused_total", "counter", "Audit rows refused because the spool was full (on_full = refuse).", s.Refused},
		{"tollgate_audit_rows_dropped_total", "counter", "Audit rows dropped because the spool was full (on_full = drop).", s.Dropped},
		{"tollgate_audit_rows_reserved_total", "counter", "Audit rows taken into the spool's reserve (session, checkpoint and refusal rows while other rows were refused).", s.Reserved},
		{"tollgate_audit_fsyncs_total", "counter", "Spool fsyncs for synced rows (durability = synced): one covers every row appended while the previous one ran.", s.Fsyncs},
		{"tollgate_audit_fsynced_rows_total", "counter", "Rows those fsyncs made durable (divided by fsyncs: the group commit's size).", s.FsyncedRows},
		{"tollgate_audit_spool_bytes", "gauge", "Bytes in the spool not yet acknowledged by the store.", s.SpoolBytes},
		{"tollgate_audit_spool_max_bytes", "gauge", "The spool's size cap (audit.spool.max_bytes).", s.SpoolMaxBytes},
	} {
		fmt.Fprintf(w, "# HELP %s %s\n# TYPE %s %s\n%s %v\n", m.name, m.help, m.name, m.kind, m.name, m.v)
	}
}

// PluginStats are one plugin's counters since it was (re)loaded.
type PluginStats struct {
	Name                               string
	Failures, PoolWaits, PoolExhausted uint64
}

// writePlugins writes the plugins' counters, one series per plugin.
func writePlugins(w io.Writer, ps []PluginStats) {
	for _, m := range []struct {
		name, help string
		v          func(PluginStats) uint64
	}{
		{"tollgate_plugin_failures_total", "Plugin calls answered by on_error (a crash, a timeout, fuel or memory exhausted, no instance free).", func(s PluginStats) uint64 { return s.Failures }},
		{"tollgate_plugin_pool_waits_total", "Plugin calls that found no idle instance and waited.", func(s PluginStats) uint64 { return s.PoolWaits }},
		{"tollgate_plugin_pool_exhausted_total", "Plugin calls refused after waiting plugins.pool_wait for an instance.", func(s PluginStats) uint64 { return s.PoolExhausted }},
	} {
		fmt.Fprintf(w, "# HELP %s %s\n# TYPE %s counter\n", m.name, m.help, m.name)
		for _, s := range ps {
			fmt.Fprintf(w, "%s{plugin=%q} %d\n", m.name, s.Name, m.v(s))
		}
	}
}

// runtimeMetrics are the process figures a soak or an operator watches
// for growth. runtime/metrics reads them without stopping the world
// (runtime.ReadMemStats would, on every scrape).
var runtimeMetrics = []struct{ name, sample, help string }{
	{"tollgate_go_goroutines", "/sched/goroutines:goroutines", "Live goroutines."},
	{"tollgate_go_heap_objects_bytes", "/memory/classes/heap/objects:bytes", "Bytes of heap objects, live or not yet swept."},
	{"tollgate_go_memory_total_bytes", "/memory/classes/total:bytes", "All memory the Go runtime has mapped (heap, stacks, runtime metadata)."},
	{"tollgate_go_gc_cycles_total", "/gc/cycles/total:gc-cycles", "Completed GC cycles."},
	{"tollgate_go_heap_goal_bytes", "/gc/heap/goal:bytes", "The heap size the next GC cycle aims at (GOGC, GOMEMLIMIT)."},
	{"tollgate_go_heap_released_bytes", "/memory/classes/heap/released:bytes", "Heap memory returned to the OS (mapped, not resident)."},
	{"tollgate_go_memory_limit_bytes", "/gc/gomemlimit:bytes", "The Go runtime's soft memory limit (GOMEMLIMIT; math.MaxInt64 when none)."},
}

func writeRuntime(w io.Writer) {
	s := make([]metrics.Sample, len(runtimeMetrics))
	for i, m := range runtimeMetrics {
		s[i].Name = m.sample
	}
	metrics.Read(s)
	for i, m := range runtimeMetrics {
		kind := "gauge"
		if m.name == "tollgate_go_gc_cycles_total" {
			kind = "counter"
		}
		var v uint64
		if s[i].Value.Kind() == metrics.KindUint64 {
			v = s[i].Value.Uint64()
		}
		fmt.Fprintf(w, "# HELP %s %s\n# TYPE %s %s\n%s %d\n", m.name, m.help, m.name, kind, m.name, v)
	}
}
