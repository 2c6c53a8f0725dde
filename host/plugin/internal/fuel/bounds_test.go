package fuel

import (
	"context"
	"errors"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
)

// meteredSpin instantiates the rewritten spin fixture (or the Go guest).
func meteredSpin(t *testing.T, goGuestToo bool) (wazero.Runtime, api.Module) {
	t.Helper()
	wasm := fixture(t, "spin")
	if goGuestToo {
		wasm = goGuest(t)
	}
	r := newRuntime(t, false)
	mod, err := instantiate(WithMeter(context.Background(), &Meter{Budget: 1e6}), t, r, mustRewrite(t, wasm), goGuestToo)
	if err != nil {
		t.Fatal(err)
	}
	return r, mod
}

// TestAccounting checks the exact charge: one unit per loop header, none
// for the entry of a function that starts with block; loop.
func TestAccounting(t *testing.T) {
	_, mod := meteredSpin(t, false)
	ctx := context.Background()
	iterate := mod.ExportedFunction("iterate")
	for _, budget := range []int64{1001, 1000} {
		m := &Meter{Budget: budget, Slice: 64}
		_, err := m.Call(ctx, mod, iterate, 1000)
		if budget == 1001 && (err != nil || m.Used() != 1001 || m.Budget != 0) {
			t.Errorf("budget %d: err %v, used %d, left %d", budget, err, m.Used(), m.Budget)
		}
		if budget == 1000 && !errors.Is(err, ErrOutOfFuel) {
			t.Errorf("budget %d: err %v, want ErrOutOfFuel", budget, err)
		}
	}
	// noop has no loop: one unit for its entry.
	m := &Meter{Budget: 10}
	if _, err := m.Call(ctx, mod, mod.ExportedFunction("noop")); err != nil || m.Used() != 1 {
		t.Errorf("noop: err %v, used %d", err, m.Used())
	}
}

func TestOutOfFuel(t *testing.T) {
	for _, c := range []struct {
		name string
		fn   string
		gog  bool
	}{{"wat", "spin", false}, {"wat", "fill", false}, {"go", "spin", true}} {
		t.Run(c.name+"_"+c.fn, func(t *testing.T) {
			_, mod := meteredSpin(t, c.gog)
			const budget = 10_000_000
			m := &Meter{Budget: budget}
			_, err := m.Call(context.Background(), mod, mod.ExportedFunction(c.fn))
			if !errors.Is(err, ErrOutOfFuel) || errors.Is(err, context.DeadlineExceeded) {
				t.Fatalf("err = %v, want ErrOutOfFuel", err)
			}
			// The stop comes at the first unit past the budget; fill
			// overdraws by up to one memory.fill (1024 units).
			if u := m.Used(); u < budget || u > budget+1025 {
				t.Errorf("used %d of %d", u, budget)
			}
			t.Logf("%v", strings.SplitN(err.Error(), "\n", 2)[0])
		})
	}
}

func TestDeadline(t *testing.T) {
	for _, gog := range []bool{false, true} {
		_, mod := meteredSpin(t, gog)
		ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
		m := &Meter{Budget: 1 << 50}
		start := time.Now()
		_, err := m.Call(ctx, mod, mod.ExportedFunction("spin"))
		cancel()
		if !errors.Is(err, context.DeadlineExceeded) || errors.Is(err, ErrOutOfFuel) {
			t.Fatalf("go guest %v: err = %v, want DeadlineExceeded", gog, err)
		}
		t.Logf("go guest %v: stopped after %v, %d units", gog, time.Since(start), m.Used())
		// After a stop the instance is thrown away.
		mod.Close(context.Background())
	}
}

func TestRecursion(t *testing.T) {
	_, mod := meteredSpin(t, false)
	rec := mod.ExportedFunction("recurse")
	m := &Meter{Budget: 1 << 50}
	_, err := m.Call(context.Background(), mod, rec)
	if err == nil || !strings.Contains(err.Error(), "stack overflow") || errors.Is(err, ErrOutOfFuel) {
		t.Fatalf("unbounded recursion: err = %v, want stack overflow", err)
	}
	// With a small budget the meter stops it first.
	_, mod = meteredSpin(t, false)
	m = &Meter{Budget: 1000}
	if _, err = m.Call(context.Background(), mod, mod.ExportedFunction("recurse")); !errors.Is(err, ErrOutOfFuel) {
		t.Fatalf("recursion with 1000 units: err = %v, want ErrOutOfFuel", err)
	}
}

// countingCtx counts Err calls: the refill checks it, so a count above one
// proves the guest is running its metered loop.
type countingCtx struct {
	context.Context
	n atomic.Int64
}

func (c *countingCtx) Err() error {
	c.n.Add(1)
	return c.Context.Err()
}

// TestGCWhileSpinning runs a garbage collection while a metered guest spins
// and checks it completes before the guest's call returns: the guest
// reaches a safepoint at each refill.
func TestGCWhileSpinning(t *testing.T) {
	for _, gog := range []bool{false, true} {
		_, mod := meteredSpin(t, gog)
		parent, cancel := context.WithCancel(context.Background())
		ctx := &countingCtx{Context: parent}
		var returned atomic.Bool
		errc := make(chan error, 1)
		go func() {
			m := &Meter{Budget: 1e9}
			_, err := m.Call(ctx, mod, mod.ExportedFunction("spin"))
			returned.Store(true)
			errc <- err
		}()
		for ctx.n.Load() < 2 {
			time.Sleep(time.Millisecond)
		}
		start := time.Now()
		runtime.GC()
		gcTime := time.Since(start)
		if returned.Load() {
			t.Fatalf("go guest %v: the call returned before runtime.GC did", gog)
		}
		cancel()
		if err := <-errc; !errors.Is(err, context.Canceled) {
			t.Fatalf("go guest %v: err = %v, want context.Canceled", gog, err)
		}
		t.Logf("go guest %v: runtime.GC took %v while the guest spun", gog, gcTime)
		mod.Close(context.Background())
	}
}
