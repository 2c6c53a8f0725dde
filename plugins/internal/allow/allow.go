// Package allow is the per-target allowlist of the mask and redact plugins:
// values an operator knows are not secrets (test keys, a service's public
// address) stay unmasked on the targets the entry names. It only builds
// pattern specs and picks one per target; the host does the matching. Plain
// Go, tested natively and compiled into each plugin.
package allow

import (
	"fmt"
	"regexp"
	"strings"

	"github.com/tollgate-dev/tollgate/plugins/internal/rules"
)

// Entry is one [[plugins.config.allow]] table.
type Entry struct {
	Targets []string `json:"targets"` // target name globs; none: every target
	Values  []string `json:"values"`  // RE2 expressions a whole value must match
}

// Spec is the pattern spec of detector names with the entry's values
// allowed ("<names>|allow:(?:v1)|(?:v2)", see sdk/ABI.md). An entry whose
// expression does not compile is an error, named by its index.
func Spec(names string, e Entry) (string, error) {
	parts := make([]string, len(e.Values))
	for i, v := range e.Values {
		if _, err := regexp.Compile(v); err != nil {
			return "", err
		}
		parts[i] = "(?:" + v + ")"
	}
	return names + "|allow:" + strings.Join(parts, "|"), nil
}

// Pick returns the index of the first entry whose targets match target,
// or -1.
func Pick(entries []Entry, target string) int {
	for i, e := range entries {
		if len(e.Values) == 0 {
			continue
		}
		if len(e.Targets) == 0 {
			return i
		}
		for _, g := range e.Targets {
			if rules.Glob(g, target) {
				return i
			}
		}
	}
	return -1
}

// Compile compiles, for each entry, the pattern of names with the entry's
// values allowed, with the plugin's compile (sdk.Compile in a guest).
func Compile[P any](names string, entries []Entry, compile func(spec string) (P, bool)) ([]P, error) {
	out := make([]P, 0, len(entries))
	for i, e := range entries {
		spec, err := Spec(names, e)
		if err != nil {
			return nil, fmt.Errorf("allow[%d]: %w", i, err)
		}
		p, ok := compile(spec)
		if !ok {
			return nil, fmt.Errorf("allow[%d]: the host refused %q", i, spec)
		}
		out = append(out, p)
	}
	return out, nil
}
