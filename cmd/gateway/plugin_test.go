package main_test

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tollgate-dev/tollgate/internal/testenv"
)

// A plugin scaffolded in an empty folder outside the repository builds,
// passes its own test, and runs in the gateway's plugin host with the
// verdicts its sample promises (issue 17, item 6). Nothing from the
// repository is reachable from there: GOWORK is off and the SDK comes
// from the copy the gateway wrote. Then its test is shown to judge
// behaviour: with the handler broken, it fails.
func TestPluginScaffoldOutsideTheRepository(t *testing.T) {
	bin := testenv.GatewayBinary(t)
	root := testenv.ModuleRoot(t)
	dir, err := os.MkdirTemp("", "tollgate-scaffold-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if rel, err := filepath.Rel(root, dir); err == nil && !strings.HasPrefix(rel, "..") {
		t.Fatalf("the temp folder %s is inside the repository %s", dir, root)
	}
	env := append(os.Environ(), "GOWORK=off", "GOFLAGS=-mod=mod", "TOLLGATE_GATEWAY="+bin)
	run := func(wd string, name string, args ...string) (string, error) {
		t.Helper()
		cmd := exec.Command(name, args...)
		cmd.Dir, cmd.Env = wd, env
		out, err := cmd.CombinedOutput()
		return string(out), err
	}

	out, err := run(dir, bin, "plugin", "new", "outside")
	if err != nil {
		t.Fatalf("plugin new: %v\n%s", err, out)
	}
	plug := filepath.Join(dir, "outside")
	for _, want := range []string{"cd ", "go test ./...", "[[plugins]]", `path = "plugins/outside.wasm"`, "[plugins.config]"} {
		if !strings.Contains(out, want) {
			t.Errorf("plugin new's hints lack %q:\n%s", want, out)
		}
	}
	if out, err := run(plug, "go", "test", "-count=1", "./..."); err != nil {
		t.Fatalf("go test in the scaffold: %v\n%s", err, out)
	}
	if out, err := run(plug, bin, "plugin", "build", "."); err != nil {
		t.Fatalf("plugin build: %v\n%s", err, out)
	}
	wasm := filepath.Join(plug, "outside.wasm")
	if _, err := os.Stat(wasm); err != nil {
		t.Fatal(err)
	}
	verdict := func(eventFile string) map[string]any {
		t.Helper()
		out, err := run(plug, bin, "plugin", "test", wasm, "--event", eventFile, "--config", "config.toml")
		if err != nil {
			t.Fatalf("plugin test %s: %v\n%s", eventFile, err, out)
		}
		var r map[string]any
		if err := json.Unmarshal([]byte(out), &r); err != nil {
			t.Fatalf("plugin test printed %q: %v", out, err)
		}
		return r
	}
	if r := verdict("event.json"); r["action"] != "deny" || !strings.Contains(r["reason"].(string), "/admin") {
		t.Errorf("the sample event: %v, want deny naming /admin", r)
	}
	ev, err := os.ReadFile(filepath.Join(plug, "event.json"))
	if err != nil {
		t.Fatal(err)
	}
	other := strings.Replace(string(ev), `"/admin/users"`, `"/orders/42"`, 1)
	if err := os.WriteFile(filepath.Join(plug, "other.json"), []byte(other), 0o644); err != nil {
		t.Fatal(err)
	}
	if r := verdict("other.json"); r["action"] != "allow" {
		t.Errorf("a path not blocked: %v, want allow", r)
	}

	// The scaffold's test fails when the plugin stops blocking.
	src, err := os.ReadFile(filepath.Join(plug, "main.go"))
	if err != nil {
		t.Fatal(err)
	}
	broken := strings.Replace(string(src), "strings.HasPrefix(path, p)", "strings.HasPrefix(path, p) && false", 1)
	if broken == string(src) {
		t.Fatal("the scaffold's handler changed; update this test's mutation")
	}
	if err := os.WriteFile(filepath.Join(plug, "main.go"), []byte(broken), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := run(plug, "go", "test", "-count=1", "./..."); err == nil || !strings.Contains(out, "want deny") {
		t.Fatalf("the scaffold's test passed a plugin that blocks nothing: %v\n%s", err, out)
	}
}
