package testenv

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

var (
	wasmMu    sync.Mutex
	wasmBuilt = map[string]string{}
	wasmDir   string
)

// BuildWasm compiles the Go plugin in pkg (a path relative to the module
// root, e.g. "plugins/guard") with the standard toolchain for wasip1, once
// per test process, and returns the .wasm file.
func BuildWasm(t testing.TB, pkg string) string {
	t.Helper()
	root := ModuleRoot(t)
	wasmMu.Lock()
	defer wasmMu.Unlock()
	if p, ok := wasmBuilt[pkg]; ok {
		return p
	}
	if wasmDir == "" {
		d, err := os.MkdirTemp("", "tollgate-wasm-")
		if err != nil {
			t.Fatalf("testenv: %v", err)
		}
		wasmDir = d
	}
	out := filepath.Join(wasmDir, strings.ReplaceAll(pkg, "/", "_")+".wasm")
	cmd := exec.Command("go", "build", "-buildmode=c-shared", "-o", out, "./"+pkg)
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "GOOS=wasip1", "GOARCH=wasm")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("testenv: build %s for wasip1: %v\n%s", pkg, err, b)
	}
	wasmBuilt[pkg] = out
	return out
}

// WasmBytes is BuildWasm, read.
func WasmBytes(t testing.TB, pkg string) []byte {
	t.Helper()
	b, err := os.ReadFile(BuildWasm(t, pkg))
	if err != nil {
		t.Fatal(fmt.Errorf("testenv: %w", err))
	}
	return b
}
