package admin

import (
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"runtime/metrics"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// NewRegistry is the process's metrics registry, with the Go runtime's
// figures (tollgate_go_*) in it. Each part of the host exports its own
// collector (gate.Metrics, audit.Pipeline.Collector, plugin.Host.Collector,
// approval.Manager.Collector) and serve registers them here; a registry
// per process, not client_golang's global default, so that tests can run
// several gateways in one process.
func NewRegistry() *prometheus.Registry {
	r := prometheus.NewRegistry()
	r.MustRegister(runtimeCollector{}) // a fixed set of descriptors: cannot collide in a fresh registry
	return r
}

// Register adds every collector to r, skipping nil ones (a part the config
// leaves out, such as approvals).
func Register(r prometheus.Registerer, cs ...prometheus.Collector) error {
	var errs []error
	for _, c := range cs {
		if c == nil {
			continue
		}
		if err := r.Register(c); err != nil {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("metrics: register: %w", err)
	}
	return nil
}

// metricsHandler serves g in the Prometheus text format (or what the
// scraper asks for). It needs no token, like /healthz: scrapers rarely
// carry OIDC tokens, and the figures are counts, sizes and durations by
// protocol, target, plugin and verdict, never rows, principals or values.
// Without a registry it serves the runtime's figures alone.
func metricsHandler(g prometheus.Gatherer, log *slog.Logger) http.Handler {
	if g == nil {
		g = NewRegistry()
	}
	return promhttp.HandlerFor(g, promhttp.HandlerOpts{
		ErrorLog: slogPrinter{log},
		// A collector that fails leaves its series out; the rest is served.
		ErrorHandling:       promhttp.ContinueOnError,
		MaxRequestsInFlight: 4,
	})
}

// slogPrinter is promhttp's error log on the gateway's logger.
type slogPrinter struct{ log *slog.Logger }

func (p slogPrinter) Println(v ...any) { p.log.Error("metrics: " + fmt.Sprint(v...)) }

// runtimeMetrics are the process figures a soak or an operator watches
// for growth. runtime/metrics reads them without stopping the world
// (runtime.ReadMemStats would, on every scrape).
var runtimeMetrics = []struct {
	name, sample, help string
	kind               prometheus.ValueType
}{
	{"tollgate_go_goroutines", "/sched/goroutines:goroutines", "Live goroutines.", prometheus.GaugeValue},
	{"tollgate_go_heap_objects_bytes", "/memory/classes/heap/objects:bytes", "Bytes of heap objects, live or not yet swept.", prometheus.GaugeValue},
	{"tollgate_go_memory_total_bytes", "/memory/classes/total:bytes", "All memory the Go runtime has mapped (heap, stacks, runtime metadata).", prometheus.GaugeValue},
	{"tollgate_go_gc_cycles_total", "/gc/cycles/total:gc-cycles", "Completed GC cycles.", prometheus.CounterValue},
	{"tollgate_go_heap_goal_bytes", "/gc/heap/goal:bytes", "The heap size the next GC cycle aims at (GOGC, GOMEMLIMIT).", prometheus.GaugeValue},
	{"tollgate_go_heap_released_bytes", "/memory/classes/heap/released:bytes", "Heap memory returned to the OS (mapped, not resident).", prometheus.GaugeValue},
	{"tollgate_go_memory_limit_bytes", "/gc/gomemlimit:bytes", "The Go runtime's soft memory limit (GOMEMLIMIT; math.MaxInt64 when none).", prometheus.GaugeValue},
}

var runtimeDescs = func() []*prometheus.Desc {
	out := make([]*prometheus.Desc, len(runtimeMetrics))
	for i, m := range runtimeMetrics {
		out[i] = prometheus.NewDesc(m.name, m.help, nil, nil)
	}
	return out
}()

type runtimeCollector struct{}

func (runtimeCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range runtimeDescs {
		ch <- d
	}
}

func (runtimeCollector) Collect(ch chan<- prometheus.Metric) {
	s := make([]metrics.Sample, len(runtimeMetrics))
	for i, m := range runtimeMetrics {
		s[i].Name = m.sample
	}
	metrics.Read(s)
	for i, m := range runtimeMetrics {
		var v float64
		if s[i].Value.Kind() == metrics.KindUint64 {
			v = float64(s[i].Value.Uint64())
		}
		ch <- prometheus.MustNewConstMetric(runtimeDescs[i], m.kind, v)
	}
}
