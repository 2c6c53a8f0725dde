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

// memory_limit: absent or 0 sets none (GOMEMLIMIT applies); a written
// value is honoured from 64 MiB; below that, negative or past 1 TiB it is
// refused with the key's position.
func TestMemoryLimit(t *testing.T) {
	if c := mustParse(t, minimal); c.Gateway.MemoryLimit != 0 {
		t.Fatalf("default memory_limit %d, want 0 (none)", c.Gateway.MemoryLimit)
	}
	if c := mustParse(t, "[gateway]\nmemory_limit = 536870912\n"+minimal); c.Gateway.MemoryLimit != 512<<20 {
		t.Fatalf("memory_limit = 512 MiB became %d", c.Gateway.MemoryLimit)
	}
	for name, tc := range map[string]struct{ value, want string }{
		"below 64 MiB": {"1048576", "must be 0 (none) or at least 67108864 (64 MiB)"},
		"negative":     {"-1", "must be between 0 and"},
		"past 1 TiB":   {"1099511627777", "must be between 0 and"},
		"a string":     {`"1GiB"`, "memory_limit"},
	} {
		t.Run(name, func(t *testing.T) {
			wantProblem(t, problemsOf(t, "[gateway]\nmemory_limit = "+tc.value+"\n"+minimal), 2, 1, tc.want)
		})
	}
}
