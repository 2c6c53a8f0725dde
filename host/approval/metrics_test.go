package approval_test

import (
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/expfmt"

	"github.com/tollgate-dev/tollgate/host/approval"
)

func scrape(t *testing.T, m *approval.Manager) string {
	t.Helper()
	reg := prometheus.NewRegistry()
	if err := reg.Register(m.Collector()); err != nil {
		t.Fatal(err)
	}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	for _, mf := range mfs {
		expfmt.MetricFamilyToText(&b, mf)
	}
	return b.String()
}

func wantLines(t *testing.T, got string, want ...string) {
	t.Helper()
	for _, w := range want {
		if !strings.Contains(got, w+"\n") {
			t.Errorf("no %q in\n%s", w, got)
		}
	}
}

// The approvals' series: how many are pending and how long the oldest has
// waited, then each decision's wait by outcome, on the manager's clock.
func TestMetrics(t *testing.T) {
	var mu sync.Mutex
	now := time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)
	clock := func(d time.Duration) {
		mu.Lock()
		now = now.Add(d)
		mu.Unlock()
	}
	m, _ := newManager(t, approval.Options{Timeout: time.Hour, Now: func() time.Time {
		mu.Lock()
		defer mu.Unlock()
		return now
	}})
	wantLines(t, scrape(t, m), "tollgate_approvals_pending 0", "tollgate_approvals_oldest_pending_seconds 0")

	p1 := hold(t, m, request("s1", "DELETE FROM orders"))
	clock(60 * time.Second)
	p2 := hold(t, m, request("s2", "DELETE FROM refunds"))
	p3 := hold(t, m, request("s3", "DELETE FROM carts"))
	clock(30 * time.Second)
	wantLines(t, scrape(t, m), "tollgate_approvals_pending 3", "tollgate_approvals_oldest_pending_seconds 90")

	if _, err := m.Approve(p1.ID, alice, approval.DecideOptions{}); err != nil {
		t.Fatal(err)
	}
	clock(10 * time.Second)
	if _, err := m.Deny(p2.ID, alice, "no"); err != nil {
		t.Fatal(err)
	}
	p3.Cancel("the client went away")
	// A decision on one that is no longer pending changes nothing.
	m.Deny(p1.ID, alice, "too late")
	wantLines(t, scrape(t, m),
		"tollgate_approvals_pending 0",
		"tollgate_approvals_oldest_pending_seconds 0",
		`tollgate_approval_decision_seconds_count{outcome="approved"} 1`,
		`tollgate_approval_decision_seconds_sum{outcome="approved"} 90`,
		`tollgate_approval_decision_seconds_bucket{outcome="approved",le="60"} 0`,
		`tollgate_approval_decision_seconds_bucket{outcome="approved",le="120"} 1`,
		`tollgate_approval_decision_seconds_sum{outcome="denied"} 40`,
		`tollgate_approval_decision_seconds_count{outcome="cancelled"} 1`,
	)

	// An approval nobody decides expires, and counts so.
	e, _ := newManager(t, approval.Options{Timeout: 50 * time.Millisecond})
	waitDecision(t, hold(t, e, request("s4", "DELETE FROM orders")))
	wantLines(t, scrape(t, e), `tollgate_approval_decision_seconds_count{outcome="expired"} 1`, "tollgate_approvals_pending 0")

	// Without approvals there is nothing to register.
	var none *approval.Manager
	if none.Collector() != nil {
		t.Error("a nil manager has a collector")
	}
}
