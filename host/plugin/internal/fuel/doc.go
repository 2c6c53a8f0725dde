// Package fuel bounds the CPU a WebAssembly guest uses per call, by
// load-time fuel metering, for wazero without WithCloseOnContextDone.
//
// Rewrite adds to a module an exported mutable i64 global (GlobalName),
// decremented at every loop header and function entry, and an import
// (ImportModule.ImportName) the guest calls when the global goes negative.
// The host side of that import, Instantiate, charges the call's Meter and
// stops the call when its budget is spent or its context is done. The
// guest thus calls out to Go every Slice units (about 0.15–0.4 ms with
// DefaultSlice), which lets the garbage collector run and deadlines take
// effect, for a 0.9–1.45x slowdown (depending mostly on where wazero places
// a hot loop's code; about 1.05x on a Go guest's byte loop) instead of
// WithCloseOnContextDone's 7–20x on loop-heavy guests. A function with
// loops keeps the count in a local (a register in a loop without calls)
// and stores it to the global before each call and return.
//
// Usage:
//
//	metered, err := fuel.Rewrite(wasm) // once; cache the result
//	fuel.Instantiate(ctx, r)           // once per runtime
//	compiled, err := r.CompileModule(ctx, metered)
//	mod, err := (&fuel.Meter{Budget: 1e6}).Instantiate(ctx, r, compiled, cfg)
//	m := &fuel.Meter{Budget: 1e8}      // about 0.2–0.5 s of guest CPU
//	res, err := m.Call(ctx, mod, mod.ExportedFunction("handle"), params...)
//	if errors.Is(err, fuel.ErrOutOfFuel) || errors.Is(err, context.DeadlineExceeded) { ... }
//
// After any error from a call, close the instance and use a new one: the
// guest was stopped in the middle of its work. The rest of the slice in
// progress then counts as used: after a trap the global may lag behind
// the guest's count.
//
// Not metered: host functions (WASI included), memory.grow, memory.init
// and table.* instructions; bound those in the host. A unit is not a
// fixed amount of time: one loop iteration may do a lot of straight-line
// work, bounded by the size of the function.
package fuel
