package fuel

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
)

// BenchmarkFuel measures once, whatever b.N, and prints one BENCH line per
// figure, all ratios from the same run:
//
//	go test -run '^$' -bench Fuel -benchtime 1x ./host/plugin/internal/fuel/
func BenchmarkFuel(b *testing.B) {
	ctx := context.Background()
	orig := goGuest(b)

	var rewrites []time.Duration
	var metered []byte
	for range 5 {
		start := time.Now()
		out, err := Rewrite(orig)
		rewrites = append(rewrites, time.Since(start))
		if err != nil {
			b.Fatal(err)
		}
		metered = out
	}

	inst := func(r wazero.Runtime, wasm []byte) api.Module {
		cm, err := r.CompileModule(ctx, wasm)
		if err != nil {
			b.Fatal(err)
		}
		m := &Meter{Budget: 1e8}
		mod, err := m.Instantiate(ctx, r, cm, wazero.NewModuleConfig().WithName("").WithStartFunctions("_initialize"))
		if err != nil {
			b.Fatal(err)
		}
		return mod
	}
	plainMod := inst(newRuntime(b, false), orig)
	meterMod := inst(newRuntime(b, false), metered)
	closeMod := inst(newRuntime(b, true), orig)
	closeCtx, cancel := context.WithTimeout(ctx, time.Hour)
	defer cancel()

	meter := &Meter{}
	meterCtx := WithMeter(ctx, meter)
	type variant func(fn string, params ...uint64)
	// Resolve functions once: ExportedFunction allocates.
	fns := map[api.Module]map[string]api.Function{}
	for _, mod := range []api.Module{plainMod, meterMod, closeMod} {
		fns[mod] = map[string]api.Function{}
		for _, n := range []string{"loop", "mask", "noop"} {
			fns[mod][n] = mod.ExportedFunction(n)
		}
	}
	unmetered := func(fn string, params ...uint64) {
		if _, err := fns[plainMod][fn].Call(ctx, params...); err != nil {
			b.Fatal(err)
		}
	}
	withFuel := func(fn string, params ...uint64) {
		meter.Budget = 1e12
		if _, err := meter.Call(meterCtx, meterMod, fns[meterMod][fn], params...); err != nil {
			b.Fatal(err)
		}
	}
	closeOnDone := func(fn string, params ...uint64) {
		if _, err := fns[closeMod][fn].Call(closeCtx, params...); err != nil {
			b.Fatal(err)
		}
	}

	// fastest times calls calls of fn under each variant, interleaved,
	// and returns the fastest sample per variant: the machine is shared, and
	// other load only adds time.
	fastest := func(calls int, fn string, params []uint64, vs ...variant) []time.Duration {
		samples := make([][]time.Duration, len(vs))
		for range 15 {
			for i, v := range vs {
				start := time.Now()
				for range calls {
					v(fn, params...)
				}
				samples[i] = append(samples[i], time.Since(start))
			}
		}
		out := make([]time.Duration, len(vs))
		for i, s := range samples {
			out[i] = slices.Min(s)
		}
		return out
	}
	ratio := func(name string, d []time.Duration) {
		r := float64(d[1]) / float64(d[0])
		fmt.Printf("BENCH %s %.2f x ratio=%.2f vs unmetered\n", name, r, r)
	}

	loop := fastest(3, "loop", []uint64{1_000_000}, unmetered, withFuel, closeOnDone)
	mask := fastest(2000, "mask", []uint64{1024, 0x5a5a5a5a}, unmetered, withFuel)
	noop := fastest(20000, "noop", nil, unmetered, withFuel)
	ratio("fuel_loop_overhead", loop[:2])
	ratio("fuel_mask_1k_overhead", mask)
	ratio("fuel_noop_call_overhead", noop)
	ratio("closeoncontextdone_loop_overhead", []time.Duration{loop[0], loop[2]})
	fmt.Printf("BENCH fuel_rewrite_go_guest %.1f ms\n", float64(slices.Min(rewrites).Microseconds())/1000)
	b.Logf("per call: loop(1e6) %v unmetered, %v metered; mask 1 KiB %v / %v; noop %v / %v; Go guest %d bytes",
		loop[0]/3, loop[1]/3, mask[0]/2000, mask[1]/2000, noop[0]/20000, noop[1]/20000, len(orig))
}
