package approval

import (
	"github.com/prometheus/client_golang/prometheus"
)

// Series of the approvals this process holds (on a shared store, each
// replica reports its own).
var (
	pendingDesc = prometheus.NewDesc("tollgate_approvals_pending",
		"Held requests waiting for a decision in this process.", nil, nil)
	oldestDesc = prometheus.NewDesc("tollgate_approvals_oldest_pending_seconds",
		"How long the oldest pending approval has waited (0 when none is pending).", nil, nil)
)

func newDecisionHistogram() *prometheus.HistogramVec {
	return prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name: "tollgate_approval_decision_seconds",
		Help: "Time from a hold to its end, by outcome: approved, denied, expired (no decision within approvals.timeout), cancelled (the gateway stopped or the client left).",
		// People decide in seconds to hours; the default timeout is 10 minutes.
		Buckets: []float64{1, 5, 15, 30, 60, 120, 300, 600, 1800, 3600, 4 * 3600},
	}, []string{"outcome"})
}

// Collector is the approvals' series, for the admin listener's registry.
// A nil Manager (no [approvals]) has none.
func (m *Manager) Collector() prometheus.Collector {
	if m == nil {
		return nil
	}
	return managerCollector{m}
}

type managerCollector struct{ m *Manager }

func (c managerCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- pendingDesc
	ch <- oldestDesc
	c.m.decided.Describe(ch)
}

func (c managerCollector) Collect(ch chan<- prometheus.Metric) {
	m := c.m
	now := m.o.Now()
	pending, oldest := 0, 0.0
	m.mu.Lock()
	for _, e := range m.recs {
		if e.rec.State == StatePending {
			pending++
			oldest = max(oldest, now.Sub(e.rec.Created).Seconds())
		}
	}
	m.mu.Unlock()
	ch <- prometheus.MustNewConstMetric(pendingDesc, prometheus.GaugeValue, float64(pending))
	ch <- prometheus.MustNewConstMetric(oldestDesc, prometheus.GaugeValue, oldest)
	m.decided.Collect(ch)
}
