package gate_test

import (
	"os/exec"
	"strings"
	"testing"
)

const module = "github.com/tollgate-dev/tollgate/"

// The layer's rule, on the packages as built (test files aside): a
// protocol imports the layer, event and its own packages from this
// module, and the host never imports a protocol.
func TestImportRule(t *testing.T) {
	out, err := exec.Command("go", "list", "-f", `{{.ImportPath}} {{join .Imports " "}}`, module+"...").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	protocols := 0
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		f := strings.Fields(line)
		pkg, imports := strings.TrimPrefix(f[0], module), f[1:]
		for _, imp := range imports {
			if !strings.HasPrefix(imp, module) {
				continue
			}
			dep := strings.TrimPrefix(imp, module)
			switch {
			case strings.HasPrefix(pkg, "host/") && strings.HasPrefix(dep, "protocols/"):
				t.Errorf("%s imports %s: the host never imports a protocol", pkg, dep)
			case strings.HasPrefix(pkg, "protocols/"):
				own := strings.Join(strings.SplitN(pkg, "/", 3)[:2], "/") // protocols/<name>
				if strings.HasPrefix(pkg, "protocols/internal/") {
					own = strings.Join(strings.SplitN(pkg, "/", 4)[:3], "/")
				}
				ok := dep == "host/gate" || dep == "host/event" || dep == own || strings.HasPrefix(dep, own+"/")
				if !ok {
					t.Errorf("%s imports %s: a protocol imports host/gate, host/event and its own packages only", pkg, dep)
				}
			}
		}
		if strings.HasPrefix(pkg, "protocols/") {
			protocols++
		}
	}
	if protocols < 3 {
		t.Fatalf("go list found %d protocol packages; the test is not looking where it should:\n%s", protocols, out)
	}
}
