package gate_test

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/tollgate-dev/tollgate/host/event"
	"github.com/tollgate-dev/tollgate/host/gate"
)

// BenchmarkDecideMetrics measures what counting costs a request: Decide
// (one chain call, a counter by protocol, target and verdict) with and
// without Metrics, in the same run, alternating, median of 5 rounds.
func BenchmarkDecideMetrics(b *testing.B) {
	ctx := context.Background()
	ev := &event.Event{Phase: event.Request, Protocol: "echo", Kind: "echo.line", Fields: map[string]string{"line": "SELECT 1"}}
	const n = 200_000
	measure := func(m *gate.Metrics) (wall, cpu float64) {
		deps := &gate.Deps{Chain: verdicts{}, Recorder: &memory{}, Metrics: m}
		s := deps.NewSession(gate.SessionInfo{Protocol: "echo"})
		s.SetTarget("notes", "")
		c0, t0 := cpuTime(), time.Now()
		for range n {
			s.Decide(ctx, ev, nil).Done()
		}
		return float64(time.Since(t0).Nanoseconds()) / n, float64((cpuTime() - c0).Nanoseconds()) / n
	}
	var off, on, offCPU, onCPU []float64
	for range 5 {
		w, c := measure(nil)
		off, offCPU = append(off, w), append(offCPU, c)
		w, c = measure(gate.NewMetrics())
		on, onCPU = append(on, w), append(onCPU, c)
	}
	med := func(xs []float64) float64 { slices.Sort(xs); return xs[len(xs)/2] }
	o, w, oc, wc := med(off), med(on), med(offCPU), med(onCPU)
	fmt.Printf("BENCH decide_with_metrics %.0f ns/op ratio=%.2f vs without_metrics (%.0f ns/op)\n", w, w/o, o)
	fmt.Printf("BENCH decide_with_metrics_cpu %.0f ns/op ratio=%.2f vs without_metrics (%.0f ns/op)\n", wc, wc/oc, oc)
	b.ReportMetric(w/o, "with/without")
}
