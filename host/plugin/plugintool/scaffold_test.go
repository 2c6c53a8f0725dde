package plugintool

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tollgate-dev/tollgate/internal/testenv"
)

// examples/plugin is what `gateway plugin new blocker` writes, committed so
// that readers see a whole plugin; this keeps the two from drifting apart.
// Its go.mod and SDK copy are left out: in this repository the root
// module's replace of the SDK plays their part.
func TestExampleIsTheScaffold(t *testing.T) {
	root, err := Scaffold(t.TempDir(), "blocker", "dev")
	if err != nil {
		t.Fatal(err)
	}
	example := filepath.Join(testenv.ModuleRoot(t), "examples", "plugin")
	for file := range scaffoldFiles("blocker", "dev") {
		if file == "go.mod" {
			continue
		}
		want, err := os.ReadFile(filepath.Join(root, file))
		if err != nil {
			t.Fatal(err)
		}
		got, err := os.ReadFile(filepath.Join(example, file))
		if err != nil || string(got) != string(want) {
			t.Errorf("examples/plugin/%s differs from the scaffold's (%v); regenerate it with `gateway plugin new blocker`", file, err)
		}
	}
}

// The scaffold's go.mod requires the SDK at the gateway's version when
// that is a release, and always replaces it with the copy written beside
// it, which is the SDK module itself.
func TestScaffoldModule(t *testing.T) {
	for _, tc := range []struct{ version, require string }{
		{"v1.4.2", "v1.4.2"},
		{"v2.0.0-rc.1", "v2.0.0-rc.1"},
		{"dev", "v0.0.0-00010101000000-000000000000"},
		{"39ceb8f-dirty", "v0.0.0-00010101000000-000000000000"},
		{"v1.4.2\nreplace evil => /", "v0.0.0-00010101000000-000000000000"},
	} {
		root, err := Scaffold(t.TempDir(), "p", tc.version)
		if err != nil {
			t.Fatal(err)
		}
		mod, err := os.ReadFile(filepath.Join(root, "go.mod"))
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(string(mod), "\nrequire github.com/tollgate-dev/tollgate/sdk "+tc.require+"\n") ||
			!strings.Contains(string(mod), "\nreplace github.com/tollgate-dev/tollgate/sdk => ./"+SDKDir+"\n") ||
			strings.Contains(string(mod), "evil") {
			t.Errorf("version %q: go.mod:\n%s", tc.version, mod)
		}
		sdkMod, err := os.ReadFile(filepath.Join(root, SDKDir, "go.mod"))
		if err != nil || !strings.HasPrefix(string(sdkMod), "module github.com/tollgate-dev/tollgate/sdk\n") {
			t.Errorf("the SDK copy's go.mod: %q, %v", sdkMod, err)
		}
		for _, f := range []string{"sdk.go", "verdict.go", "ABI.md", "sdktest/sdktest.go"} {
			if _, err := os.Stat(filepath.Join(root, SDKDir, f)); err != nil {
				t.Errorf("the SDK copy lacks %s: %v", f, err)
			}
		}
	}
	if _, err := Scaffold(t.TempDir(), "../up", "dev"); err == nil {
		t.Error("a name with a path in it was accepted")
	}
}
