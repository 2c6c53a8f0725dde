package plugintool

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/tollgate-dev/tollgate/internal/testenv"
)

// examples/plugin is what `gateway plugin new blocker` writes, committed so
// that readers see a whole plugin; this keeps the two from drifting apart.
func TestExampleIsTheScaffold(t *testing.T) {
	root, err := Scaffold(t.TempDir(), "blocker")
	if err != nil {
		t.Fatal(err)
	}
	example := filepath.Join(testenv.ModuleRoot(t), "examples", "plugin")
	for file := range scaffoldFiles("blocker") {
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
