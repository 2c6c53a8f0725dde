package fuel

import (
	"context"
	"errors"
	"fmt"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
)

// DefaultSlice is the number of units handed to the guest per refill when
// Meter.Slice is 0: at 2–6 ns per unit the guest calls out to the host
// every 0.15–0.4 ms, often enough for the garbage collector and deadlines.
const DefaultSlice = 1 << 16

// ErrOutOfFuel reports a call stopped because its budget was spent, or
// because a metered module ran without a Meter in its context.
var ErrOutOfFuel = errors.New("fuel: out of fuel")

// Meter is the host side of metering: the units a guest may still use, and
// how many it gets at a time. A Meter is not safe for concurrent use (nor is
// a module instance); use one per instance or per call.
//
// A unit is one loop iteration or function call (about 2–6 ns of guest
// CPU), plus len/64 per memory.fill or memory.copy. Host functions (WASI
// included), memory.grow, memory.init and table.* are not metered.
type Meter struct {
	// Budget is the number of units left. Refills and Call draw from it;
	// set it before each call for a per-call budget.
	Budget int64
	// Slice is the number of units handed to the guest per refill; 0 means
	// DefaultSlice. Smaller slices stop sooner after a deadline, at the cost
	// of more calls to the host.
	Slice int64

	used int64
	mod  api.Module // the instance g belongs to
	g    api.MutableGlobal
}

// Used returns the units consumed so far through m, including overdraft
// up to the stop and units handed out during instantiation.
func (m *Meter) Used() int64 { return m.used }

type meterKey struct{}

// WithMeter returns a context under which the metered module's fuel
// refills draw from m. Use it when calling InstantiateModule or an export
// directly; Meter.Call and Meter.Instantiate add it themselves unless ctx
// already carries m (passing such a ctx saves an allocation per call).
func WithMeter(ctx context.Context, m *Meter) context.Context {
	return context.WithValue(ctx, meterKey{}, m)
}

// Instantiate instantiates the host module ImportModule, which a module
// made by Rewrite imports, in r. Instantiate it once per runtime, before
// instantiating metered modules.
//
// Metered modules must be instantiated without
// wazero.RuntimeConfig.WithCloseOnContextDone: the refill checks the
// context itself, at a fraction of the cost.
func Instantiate(ctx context.Context, r wazero.Runtime) (api.Closer, error) {
	i64 := []api.ValueType{api.ValueTypeI64}
	return r.NewHostModuleBuilder(ImportModule).
		NewFunctionBuilder().
		WithGoFunction(api.GoFunc(refill), i64, i64).
		WithName(ImportName).
		Export(ImportName).
		Instantiate(ctx)
}

// refill is called by the guest when its fuel went negative (the loop
// restart passes F+1, so that it is 0 when the guest used its slice exactly). It charges
// the overdraft, stops the call if the context is done or the budget spent
// (by panicking: wazero unwinds the guest and returns the panic value as
// the call's error), and otherwise hands out the next slice.
func refill(ctx context.Context, stack []uint64) {
	m, _ := ctx.Value(meterKey{}).(*Meter)
	if m == nil {
		panic(fmt.Errorf("%w: no fuel.Meter in the call's context", ErrOutOfFuel))
	}
	if left := int64(stack[0]); left < 0 {
		m.Budget += left
		m.used -= left
	}
	if err := ctx.Err(); err != nil {
		panic(fmt.Errorf("fuel: call stopped: %w", err))
	}
	if m.Budget <= 0 {
		panic(fmt.Errorf("%w after %d units", ErrOutOfFuel, m.used))
	}
	stack[0] = uint64(m.take())
}

// take moves the next slice from the budget to the guest.
func (m *Meter) take() int64 {
	s := m.Slice
	if s <= 0 {
		s = DefaultSlice
	}
	s = max(min(s, m.Budget), 0)
	m.Budget -= s
	m.used += s
	return s
}

// Call calls fn, an export of mod (a module made by Rewrite), with fuel from
// m: it gives the guest its first slice, calls fn under WithMeter, and
// returns the units the guest did not use to m.Budget. Units handed out
// before (such as instantiation's leftover) are discarded, so a call
// never uses fuel it was not given. After an error, the units left of the
// slice in progress (at most Slice) count as used.
//
// # Errors
//
// Call returns the error of fn.Call. When the budget is spent, the error
// wraps ErrOutOfFuel; when ctx is done, it wraps ctx.Err() (such as
// context.DeadlineExceeded); test with errors.Is. A guest stack overflow is
// a trap ("stack overflow") like any other. After any error the instance
// may be stopped in the middle of its work: close it and do not call it
// again (wazero does not close it). Call returns an error without calling
// fn if mod has no fuel global.
func (m *Meter) Call(ctx context.Context, mod api.Module, fn api.Function, params ...uint64) ([]uint64, error) {
	if m.mod != mod { // look the global up once per instance
		g, ok := mod.ExportedGlobal(GlobalName).(api.MutableGlobal)
		if !ok {
			return nil, fmt.Errorf("fuel: module %q has no fuel global %q (not rewritten?)", mod.Name(), GlobalName)
		}
		m.mod, m.g = mod, g
	}
	g := m.g
	if mc, _ := ctx.Value(meterKey{}).(*Meter); mc != m {
		ctx = WithMeter(ctx, m)
	}
	g.Set(uint64(m.take()))
	res, err := fn.Call(ctx, params...)
	// After an error the guest's count may be stale (a function with loops
	// counts in a local, stored to the global at calls and returns), so
	// what is left of the slice counts as used.
	if left := int64(g.Get()); left > 0 && err == nil {
		m.Budget += left
		m.used -= left
	}
	g.Set(0)
	return res, err
}

// Instantiate instantiates compiled, a module made by Rewrite, in r with
// fuel from m for its start functions (such as Go's _initialize, which
// needs about 12,000 units), and returns the units they did not use to
// m.Budget.
//
// # Errors
//
// Instantiate returns the error of r.InstantiateModule; a stop in a start
// function wraps ErrOutOfFuel or ctx.Err() as in Call. wazero closes the
// module when a start function fails.
func (m *Meter) Instantiate(ctx context.Context, r wazero.Runtime, compiled wazero.CompiledModule, cfg wazero.ModuleConfig) (api.Module, error) {
	mod, err := r.InstantiateModule(WithMeter(ctx, m), compiled, cfg)
	if err != nil {
		return nil, err
	}
	if g, ok := mod.ExportedGlobal(GlobalName).(api.MutableGlobal); ok {
		if left := int64(g.Get()); left > 0 {
			m.Budget += left
			m.used -= left
		}
		g.Set(0)
	}
	return mod, nil
}
