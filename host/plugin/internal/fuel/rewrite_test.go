package fuel

import (
	"context"
	"errors"
	"math"
	"slices"
	"strings"
	"testing"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
)

// call calls an export of an unmetered module, or of a metered one through
// a Meter with a large budget.
func call(t *testing.T, mod api.Module, metered bool, name string, params ...uint64) []uint64 {
	t.Helper()
	ctx := context.Background()
	fn := mod.ExportedFunction(name)
	if fn == nil {
		t.Fatalf("no export %q", name)
	}
	var res []uint64
	var err error
	if metered {
		m := &Meter{Budget: 1e9}
		res, err = m.Call(ctx, mod, fn, params...)
	} else {
		res, err = fn.Call(ctx, params...)
	}
	if err != nil {
		t.Fatalf("%s%v (metered %v): %v", name, params, metered, err)
	}
	return res
}

func TestRewriteFeatures(t *testing.T) {
	orig := fixture(t, "features")
	metered := mustRewrite(t, orig)
	ctx := context.Background()
	r := newRuntime(t, false)
	a, err := instantiate(ctx, t, r, orig, false)
	if err != nil {
		t.Fatal(err)
	}
	initMeter := &Meter{Budget: 1000}
	b, err := instantiate(WithMeter(ctx, initMeter), t, r, metered, false)
	if err != nil {
		t.Fatal(err)
	}
	if initMeter.Used() == 0 {
		t.Error("start function used no fuel")
	}

	cases := []struct {
		name   string
		params []uint64
	}{
		{"started", nil},
		{"sumsq", []uint64{0}},
		{"sumsq", []uint64{1000}},
		{"countdown", []uint64{1}},
		{"countdown", []uint64{100}},
		{"dispatch", []uint64{1}},
		{"dispatch", []uint64{77}},
		{"indirect", []uint64{7, 3}},
		{"indirect", []uint64{0xdead, 5}},
		{"bulk", []uint64{0}},
		{"bulk", []uint64{300}},
		{"bulk", []uint64{5000}},
		{"fib", []uint64{15}},
		{"numeric", []uint64{math.Float64bits(-12345.75)}},
		{"numeric", []uint64{math.Float64bits(1e300)}},
	}
	for _, c := range cases {
		want := call(t, a, false, c.name, c.params...)
		got := call(t, b, true, c.name, c.params...)
		if !slices.Equal(got, want) {
			t.Errorf("%s%v = %v, want %v", c.name, c.params, got, want)
		}
	}
	if got := call(t, b, true, "started"); got[0] != 42 {
		t.Errorf("start function: started = %d, want 42", got[0])
	}

	// The name section is kept, shifted past the refill import.
	cm, err := r.CompileModule(ctx, metered)
	if err != nil {
		t.Fatal(err)
	}
	defs := cm.ImportedFunctions()
	if len(defs) != 2 || defs[1].DebugName() != "features.tollgate_fuel.refill" {
		t.Errorf("imports: %v", debugNames(defs))
	}
	cmOrig, err := r.CompileModule(ctx, orig)
	if err != nil {
		t.Fatal(err)
	}
	named := 0
	for name, want := range cmOrig.ExportedFunctions() {
		got := cm.ExportedFunctions()[name]
		if got.Name() != want.Name() || got.Index() != want.Index()+1 {
			t.Errorf("export %q: function %d %q, want %d %q", name, got.Index(), got.Name(), want.Index()+1, want.Name())
		}
		if want.Name() != "" {
			named++
		}
	}
	if named == 0 {
		t.Error("fixture has no named exported function")
	}
}

func debugNames(defs []api.FunctionDefinition) []string {
	var s []string
	for _, d := range defs {
		s = append(s, d.DebugName())
	}
	return s
}

func TestRewriteGoGuest(t *testing.T) {
	orig := goGuest(t)
	metered := mustRewrite(t, orig)
	ctx := context.Background()
	r := newRuntime(t, false)
	a, err := instantiate(ctx, t, r, orig, true)
	if err != nil {
		t.Fatal(err)
	}
	initMeter := &Meter{Budget: 1e7}
	cm, err := r.CompileModule(ctx, metered)
	if err != nil {
		t.Fatal(err)
	}
	b, err := initMeter.Instantiate(ctx, r, cm, wazero.NewModuleConfig().WithName("").WithStartFunctions("_initialize"))
	if err != nil {
		t.Fatal(err)
	}
	if used := initMeter.Used(); used+initMeter.Budget != 1e7 || used < 1000 || used > 100000 {
		t.Errorf("_initialize: used %d, budget left %d", used, initMeter.Budget)
	}
	t.Logf("_initialize used %d units; %d of the code grew to %d bytes", initMeter.Used(), len(orig), len(metered))

	for _, n := range []uint64{0, 1, 1000, 123457} {
		if got, want := call(t, b, true, "loop", n), call(t, a, false, "loop", n); !slices.Equal(got, want) {
			t.Errorf("loop(%d) = %v, want %v", n, got, want)
		}
	}
	for _, n := range []uint64{0, 1, 1024, 65536} {
		key := uint64(0xa5c3f00f)
		if got, want := call(t, b, true, "mask", n, key), call(t, a, false, "mask", n, key); !slices.Equal(got, want) {
			t.Errorf("mask(%d) = %v, want %v", n, got, want)
		}
	}
	call(t, b, true, "noop")

	// Most Go functions start with block; loop: their entry check is elided.
	elided, total := elision(t, orig)
	t.Logf("entry checks elided in %d of %d functions", elided, total)
	if elided < total/2 {
		t.Errorf("only %d of %d entry checks elided", elided, total)
	}
}

// elision rewrites wasm and returns how many entry checks were elided and
// the number of defined functions.
func elision(t *testing.T, wasm []byte) (elided, total int) {
	secs, err := splitSections(wasm)
	if err != nil {
		t.Fatal(err)
	}
	m := &module{}
	for _, id := range []byte{secType, secImport, secFunction, secGlobal, secCode} {
		var body []byte
		for _, s := range secs {
			if s.id == id {
				body = s.body
			}
		}
		if _, err := m.rewriteSection(id, body); err != nil {
			t.Fatal(err)
		}
	}
	return m.elided, len(m.funcTypes) - int(m.funcImports)
}

func TestInitNeedsFuel(t *testing.T) {
	metered := mustRewrite(t, goGuest(t))
	r := newRuntime(t, false)
	ctx := context.Background()
	for _, c := range []struct {
		meter *Meter
		ok    bool
	}{{nil, false}, {&Meter{Budget: 100}, false}, {&Meter{Budget: 1e7}, true}} {
		ictx := ctx
		if c.meter != nil {
			ictx = WithMeter(ctx, c.meter)
		}
		mod, err := instantiate(ictx, t, r, metered, true)
		if c.ok != (err == nil) {
			t.Errorf("meter %+v: err = %v", c.meter, err)
		}
		if !c.ok && !errors.Is(err, ErrOutOfFuel) {
			t.Errorf("meter %+v: err = %v, want ErrOutOfFuel", c.meter, err)
		}
		if mod != nil {
			mod.Close(ctx)
		}
	}
}

func TestRewriteTwiceRefused(t *testing.T) {
	// A rewritten module is refused: it already imports the refill function.
	_, err := Rewrite(mustRewrite(t, fixture(t, "spin")))
	if err == nil || !strings.Contains(err.Error(), "already imports") {
		t.Fatalf("rewriting twice: err = %v", err)
	}
}
