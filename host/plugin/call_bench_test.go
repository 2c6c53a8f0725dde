package plugin

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/tollgate-dev/tollgate/host/config"
)

// BenchmarkCallFloor measures one plugin call that does nothing (Go guest,
// fuel-metered), against the same call that reads three fields from the host.
func BenchmarkCallFloor(b *testing.B) {
	if b.N > 1 {
		return
	}
	h, err := NewHost(Options{})
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	lim := Limits{MemoryPages: 128, Timeout: time.Second, Instances: 1}
	noop, err := h.Load(ctx, config.Plugin{Name: "noop"}, testenvWasm(b, "noop"), lim)
	if err != nil {
		b.Fatal(err)
	}
	policy, err := h.Load(ctx, config.Plugin{Name: "policy"}, testenvWasm(b, "policy"), lim)
	if err != nil {
		b.Fatal(err)
	}
	ev := httpEvent("GET", "/plain")
	measure := func(p *Plugin) float64 {
		for range 1000 {
			p.Process(ctx, ev)
		}
		const n = 20000
		start := time.Now()
		for range n {
			p.Process(ctx, ev)
		}
		return float64(time.Since(start).Nanoseconds()) / n
	}
	floor := measure(noop)
	reads := measure(policy)
	fmt.Printf("BENCH plugin_call_noop %.0f ns/call ratio=1.00 vs noop\n", floor)
	fmt.Printf("BENCH plugin_call_policy %.0f ns/call ratio=%.2f vs noop\n", reads, reads/floor)
}
