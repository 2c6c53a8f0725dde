package audit

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// pipelineSeries are the pipeline's figures as /metrics names them; the
// names are those the hand-written exposition had, which tests, the soak
// and operators' alerts read.
var pipelineSeries = []struct {
	name, help string
	kind       prometheus.ValueType
	value      func(s PipelineStats) float64
}{
	{"tollgate_audit_store_reachable", "1 while the audit store takes rows; 0 from a failed insert or ping until the next success (rows wait in the spool).", prometheus.GaugeValue,
		func(s PipelineStats) float64 { return b2f(s.StoreReachable) }},
	{"tollgate_audit_store_down_seconds", "How long the current audit store outage has lasted (0 when reachable).", prometheus.GaugeValue,
		func(s PipelineStats) float64 {
			if s.StoreDownSince.IsZero() {
				return 0
			}
			return time.Since(s.StoreDownSince).Seconds()
		}},
	{"tollgate_audit_store_outages_total", "Audit store outages since start.", prometheus.CounterValue, func(s PipelineStats) float64 { return float64(s.StoreOutages) }},
	{"tollgate_audit_store_retries_total", "Failed inserts into the audit store (each retried).", prometheus.CounterValue, func(s PipelineStats) float64 { return float64(s.Retries) }},
	{"tollgate_audit_rows_accepted_total", "Audit rows accepted from the request path.", prometheus.CounterValue, func(s PipelineStats) float64 { return float64(s.Accepted) }},
	{"tollgate_audit_rows_spooled_total", "Audit rows written to the spool.", prometheus.CounterValue, func(s PipelineStats) float64 { return float64(s.Spooled) }},
	{"tollgate_audit_rows_shipped_total", "Audit rows the store acknowledged (a replayed batch counts again).", prometheus.CounterValue, func(s PipelineStats) float64 { return float64(s.Shipped) }},
	{"tollgate_audit_rows_refused_total", "Audit rows refused because the spool was full (on_full = refuse).", prometheus.CounterValue, func(s PipelineStats) float64 { return float64(s.Refused) }},
	{"tollgate_audit_rows_dropped_total", "Audit rows dropped because the spool was full (on_full = drop).", prometheus.CounterValue, func(s PipelineStats) float64 { return float64(s.Dropped) }},
	{"tollgate_audit_rows_reserved_total", "Audit rows taken into the spool's reserve (session, checkpoint and refusal rows while other rows were refused).", prometheus.CounterValue, func(s PipelineStats) float64 { return float64(s.Reserved) }},
	{"tollgate_audit_fsyncs_total", "Spool fsyncs for synced rows (durability = synced): one covers every row appended while the previous one ran.", prometheus.CounterValue, func(s PipelineStats) float64 { return float64(s.Fsyncs) }},
	{"tollgate_audit_fsynced_rows_total", "Rows those fsyncs made durable (divided by fsyncs: the group commit's size).", prometheus.CounterValue, func(s PipelineStats) float64 { return float64(s.FsyncedRows) }},
	{"tollgate_audit_spool_bytes", "Bytes in the spool not yet acknowledged by the store.", prometheus.GaugeValue, func(s PipelineStats) float64 { return float64(s.SpoolBytes) }},
	{"tollgate_audit_spool_max_bytes", "The spool's size cap (audit.spool.max_bytes).", prometheus.GaugeValue, func(s PipelineStats) float64 { return float64(s.SpoolMaxBytes) }},
	{"tollgate_audit_queue_rows", "Audit rows waiting in memory: accepted and not yet in the spool, plus spooled rows queued for the store (during a long outage the spool holds the rest: tollgate_audit_spool_bytes).", prometheus.GaugeValue,
		func(s PipelineStats) float64 { return float64(s.PendingRows + s.QueuedRows) }},
	{"tollgate_audit_queue_bytes", "Memory held by the spooled rows queued for the store (bounded at 64 MiB).", prometheus.GaugeValue, func(s PipelineStats) float64 { return float64(s.QueuedBytes) }},
}

var pipelineDescs = func() []*prometheus.Desc {
	out := make([]*prometheus.Desc, len(pipelineSeries))
	for i, m := range pipelineSeries {
		out[i] = prometheus.NewDesc(m.name, m.help, nil, nil)
	}
	return out
}()

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

func newBatchHistogram() prometheus.Histogram {
	return prometheus.NewHistogram(prometheus.HistogramOpts{
		Name: "tollgate_audit_batch_duration_seconds",
		Help: "Time the audit store took to take one batch (successful inserts; failures count in tollgate_audit_store_retries_total).",
		// A batch takes milliseconds on a local store, up to seconds on a
		// loaded server; 30 s is the insert's own timeout.
		Buckets: prometheus.ExponentialBuckets(0.001, 2.5, 12),
	})
}

// pipelineCollector reads the pipeline's counters at each scrape, so that
// the request path pays nothing for them.
type pipelineCollector struct{ p *Pipeline }

// Collector is the pipeline's series, for the admin listener's registry.
func (p *Pipeline) Collector() prometheus.Collector { return pipelineCollector{p} }

func (c pipelineCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range pipelineDescs {
		ch <- d
	}
	c.p.batchSeconds.Describe(ch)
}

func (c pipelineCollector) Collect(ch chan<- prometheus.Metric) {
	s := c.p.Stats()
	for i, m := range pipelineSeries {
		ch <- prometheus.MustNewConstMetric(pipelineDescs[i], m.kind, m.value(s))
	}
	c.p.batchSeconds.Collect(ch)
}
