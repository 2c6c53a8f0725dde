package fuel

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sync"
	"testing"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
	"github.com/tetratelabs/wazero/imports/wasi_snapshot_preview1"
)

// cache is shared by all runtimes of the test process: the Go guest takes
// about a second to compile.
var cache = wazero.NewCompilationCache()

var tmpDir string

func TestMain(m *testing.M) {
	var err error
	if tmpDir, err = os.MkdirTemp("", "fuel-test-"); err != nil {
		panic(err)
	}
	code := m.Run()
	os.RemoveAll(tmpDir)
	os.Exit(code)
}

var goGuestOnce struct {
	sync.Once
	wasm []byte
	err  error
}

// goGuest builds testdata/guest once per test process.
func goGuest(tb testing.TB) []byte {
	tb.Helper()
	g := &goGuestOnce
	g.Do(func() {
		out := filepath.Join(tmpDir, "guest.wasm")
		cmd := exec.Command(filepath.Join(runtime.GOROOT(), "bin", "go"), "build", "-buildmode=c-shared", "-o", out, ".")
		cmd.Dir = filepath.Join("testdata", "guest")
		cmd.Env = append(os.Environ(), "GOOS=wasip1", "GOARCH=wasm")
		if msg, err := cmd.CombinedOutput(); err != nil {
			g.err = err
			tb.Logf("go build: %s", msg)
			return
		}
		g.wasm, g.err = os.ReadFile(out)
	})
	if g.err != nil {
		tb.Fatalf("build Go guest: %v", g.err)
	}
	return g.wasm
}

func fixture(tb testing.TB, name string) []byte {
	tb.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name+".wasm"))
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

// TestFixturesUpToDate checks the committed .wasm files against their .wat
// sources; `make deps` installs wabt for wat2wasm.
func TestFixturesUpToDate(t *testing.T) {
	wat2wasm, err := exec.LookPath("wat2wasm")
	if err != nil {
		t.Fatal("wat2wasm is not installed; run `make deps` (it installs Debian's wabt)")
	}
	wats, _ := filepath.Glob("testdata/*.wat")
	for _, wat := range wats {
		out := filepath.Join(t.TempDir(), "out.wasm")
		if msg, err := exec.Command(wat2wasm, "--debug-names", wat, "-o", out).CombinedOutput(); err != nil {
			t.Fatalf("%s: %v\n%s", wat, err, msg)
		}
		got, _ := os.ReadFile(out)
		want, _ := os.ReadFile(wat[:len(wat)-len(".wat")] + ".wasm")
		if !bytes.Equal(got, want) {
			t.Errorf("%s is stale: run wat2wasm --debug-names %s -o %s.wasm", wat, wat, wat[:len(wat)-4])
		}
	}
}

// newRuntime returns a runtime with WASI, the fuel host module and an "env"
// module for the features fixture.
func newRuntime(tb testing.TB, closeOnDone bool) wazero.Runtime {
	tb.Helper()
	ctx := context.Background()
	r := wazero.NewRuntimeWithConfig(ctx, wazero.NewRuntimeConfig().
		WithCompilationCache(cache).
		WithCloseOnContextDone(closeOnDone))
	tb.Cleanup(func() { r.Close(ctx) })
	wasi_snapshot_preview1.MustInstantiate(ctx, r)
	if _, err := Instantiate(ctx, r); err != nil {
		tb.Fatal(err)
	}
	_, err := r.NewHostModuleBuilder("env").NewFunctionBuilder().
		WithFunc(func(x uint32) uint32 { return x + 1 }).Export("add1").
		Instantiate(ctx)
	if err != nil {
		tb.Fatal(err)
	}
	return r
}

// instantiate compiles and instantiates wasm (a Go guest if goInit) in r;
// ctx carries the instantiation's Meter, if any.
func instantiate(ctx context.Context, tb testing.TB, r wazero.Runtime, wasm []byte, goInit bool) (api.Module, error) {
	tb.Helper()
	cm, err := r.CompileModule(ctx, wasm)
	if err != nil {
		tb.Fatalf("compile: %v", err)
	}
	cfg := wazero.NewModuleConfig().WithName("")
	if goInit {
		cfg = cfg.WithStartFunctions("_initialize")
	}
	return r.InstantiateModule(ctx, cm, cfg)
}

func mustRewrite(tb testing.TB, wasm []byte) []byte {
	tb.Helper()
	out, err := Rewrite(wasm)
	if err != nil {
		tb.Fatal(err)
	}
	return out
}
