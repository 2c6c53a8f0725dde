package config

import (
	"strings"
	"testing"
)

// The profiles are off unless asked for, need the admin listener, and the
// key takes a boolean only: gateway check refuses anything else with the
// key's position.
func TestAdminPProf(t *testing.T) {
	if c := mustParse(t, minimal+"[admin]\nlisten = \"127.0.0.1:8090\"\n"); c.Admin.PProf {
		t.Fatal("admin.pprof is on by default")
	}
	if c := mustParse(t, minimal+"[admin]\nlisten = \"127.0.0.1:8090\"\npprof = true\n"); !c.Admin.PProf {
		t.Fatal("admin.pprof = true not honoured")
	}
	lines := strings.Count(minimal, "\n")
	for name, tc := range map[string]struct {
		src       string
		line, col int
		want      string
	}{
		"without the listener": {"[admin]\npprof = true\n", lines + 2, 1, "set admin.listen"},
		"not a boolean":        {"[admin]\nlisten = \"127.0.0.1:8090\"\npprof = \"yes\"\n", lines + 3, 1, "pprof"},
		"misspelt":             {"[admin]\nlisten = \"127.0.0.1:8090\"\nprof = true\n", lines + 3, 1, "pprof"},
	} {
		t.Run(name, func(t *testing.T) {
			wantProblem(t, problemsOf(t, minimal+tc.src), tc.line, tc.col, tc.want)
		})
	}
}
