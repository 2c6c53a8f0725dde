package plugin

import (
	"bytes"
	"context"
	"errors"
	"strings"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/tollgate-dev/tollgate/host/plugin/internal/fuel"
)

// crashLog keeps what a guest writes to stderr during one call, bounded:
// a Go guest prints its panic there before it traps.
type crashLog struct{ buf []byte }

// crashLogMax bounds what is kept of one call's stderr.
const crashLogMax = 4 << 10

func (c *crashLog) Write(p []byte) (int, error) {
	if room := crashLogMax - len(c.buf); room > 0 {
		c.buf = append(c.buf, p[:min(room, len(p))]...)
	}
	return len(p), nil
}

func (c *crashLog) reset() { c.buf = c.buf[:0] }

// failureMax bounds the message a failure leaves in the row and the log.
const failureMax = 512

// failure says what went wrong in a failed call: the guest's panic
// message when it printed one (Go and TinyGo guests write "panic: ..."
// then their goroutines), else the first line of the host's error (a
// timeout, fuel or memory exhausted; the wasm stack trace that follows
// is for the debug log).
func failure(stderr []byte, err error) string {
	if i := bytes.Index(stderr, []byte("panic: ")); i >= 0 {
		msg := stderr[i:]
		if j := bytes.Index(msg, []byte("\n\ngoroutine ")); j >= 0 {
			msg = msg[:j]
		}
		return cut(strings.TrimSpace(string(msg)))
	}
	line, _, _ := strings.Cut(err.Error(), "\n")
	if s := strings.TrimSpace(string(stderr)); s != "" {
		line += " (stderr: " + s + ")"
	}
	return cut(line)
}

func cut(s string) string {
	if len(s) > failureMax {
		return s[:failureMax] + "…"
	}
	return s
}

// metrics are the plugins' series, shared by every plugin a Host loads,
// so that a plugin's counters go on across reloads (a plugin is known by
// its name in gateway.toml).
type metrics struct {
	calls                                      *prometheus.HistogramVec
	failures, fuel, timeouts, waits, exhausted *prometheus.CounterVec
}

func newMetrics() *metrics {
	counter := func(name, help string) *prometheus.CounterVec {
		return prometheus.NewCounterVec(prometheus.CounterOpts{Name: name, Help: help}, []string{"plugin"})
	}
	return &metrics{
		calls: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "tollgate_plugin_call_duration_seconds",
			Help: "Time of one call into a plugin's guest (cached verdicts and skipped row batches are not calls), failed calls included.",
			// Calls take microseconds to milliseconds; the bound per call
			// (plugins.timeout) is seconds.
			Buckets: prometheus.ExponentialBuckets(10e-6, 4, 10),
		}, []string{"plugin"}),
		failures:  counter("tollgate_plugin_failures_total", "Plugin calls answered by on_error (a crash, a timeout, fuel or memory exhausted, no instance free)."),
		fuel:      counter("tollgate_plugin_fuel_exhausted_total", "Plugin calls stopped because they spent their CPU bound (plugins.fuel)."),
		timeouts:  counter("tollgate_plugin_timeouts_total", "Plugin calls stopped at their wall-clock bound (plugins.timeout)."),
		waits:     counter("tollgate_plugin_pool_waits_total", "Plugin calls that found no idle instance and waited."),
		exhausted: counter("tollgate_plugin_pool_exhausted_total", "Plugin calls refused after waiting plugins.pool_wait for an instance."),
	}
}

func (m *metrics) all() []prometheus.Collector {
	return []prometheus.Collector{m.calls, m.failures, m.fuel, m.timeouts, m.waits, m.exhausted}
}

func (m *metrics) Describe(ch chan<- *prometheus.Desc) {
	for _, c := range m.all() {
		c.Describe(ch)
	}
}

func (m *metrics) Collect(ch chan<- prometheus.Metric) {
	for _, c := range m.all() {
		c.Collect(ch)
	}
}

// Collector is the plugins' series, for the admin listener's registry.
func (h *Host) Collector() prometheus.Collector { return h.metrics }

// pluginMetrics are one plugin's series, resolved once at load so that a
// call costs no label lookup.
type pluginMetrics struct {
	calls                                      prometheus.Observer
	failures, fuel, timeouts, waits, exhausted prometheus.Counter
}

func (m *metrics) forPlugin(name string) pluginMetrics {
	return pluginMetrics{
		calls:     m.calls.WithLabelValues(name),
		failures:  m.failures.WithLabelValues(name),
		fuel:      m.fuel.WithLabelValues(name),
		timeouts:  m.timeouts.WithLabelValues(name),
		waits:     m.waits.WithLabelValues(name),
		exhausted: m.exhausted.WithLabelValues(name),
	}
}

// failed counts a failed guest call by its cause.
func (m *pluginMetrics) failed(err error) {
	switch {
	case errors.Is(err, fuel.ErrOutOfFuel):
		m.fuel.Inc()
	case errors.Is(err, context.DeadlineExceeded):
		m.timeouts.Inc()
	}
}
