package plugins_test

import (
	"bufio"
	"context"
	"os"
	"strings"
	"testing"

	"github.com/tollgate-dev/tollgate/host/event"
)

// TestGuardCorpus runs every line of testdata/guard_corpus.txt through the
// guard plugin, compiled to Wasm and loaded by the host, under the policy
// described at the top of that file.
func TestGuardCorpus(t *testing.T) {
	g := load(t, "guard", map[string]any{
		"rules": []map[string]any{
			{"name": "no-ddl-on-prod", "kinds": []string{"pg.query"}, "targets": []string{"prod-*"}, "sql": []string{"ddl", "dcl", "admin"}},
			{"name": "no-blind-writes", "kinds": []string{"pg.query"}, "without_where": true},
			{"name": "no-locks", "kinds": []string{"pg.query"}, "targets": []string{"dev"}, "sql": []string{"lock"}},
			{"name": "no-lifts", "kinds": []string{"pg.query"}, "targets": []string{"dev"}, "sql": []string{"lift_read_only"}},
		},
		"read_only_targets": []string{"ro-*"},
	})
	f, err := os.Open("testdata/guard_corpus.txt")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	n := 0
	for line := 1; sc.Scan(); line++ {
		text := sc.Text()
		if strings.TrimSpace(text) == "" || strings.HasPrefix(text, "#") {
			continue
		}
		verdict, rest, ok1 := strings.Cut(text, " ")
		target, sql, ok2 := strings.Cut(rest, " ")
		if !ok1 || !ok2 || sql == "" {
			t.Fatalf("line %d: want <verdict> <target> <sql>: %q", line, text)
		}
		sql = strings.NewReplacer("{NL}", "\n", "{CR}", "\r", "{VT}", "\v").Replace(sql)
		n++
		v, err := g.Process(context.Background(), query(target, sql))
		if err != nil {
			t.Fatalf("line %d: %v", line, err)
		}
		if got := outcome(v); got != verdict {
			t.Errorf("line %d: %s %q: got %s (%s)", line, target, sql, got, v.Reason)
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	if n < 100 {
		t.Fatalf("only %d corpus lines", n)
	}
}

// outcome names a guard verdict as the corpus does.
func outcome(v event.Verdict) string {
	switch {
	case v.Action == event.Allow:
		return "allow"
	case v.Action != event.Deny:
		return "action-" + v.Reason
	case annotation(v, "guard.rule") != "":
		return "deny:" + annotation(v, "guard.rule")
	case annotation(v, "guard.read_only") != "":
		return "deny:read-only"
	case annotation(v, "guard.sql") == "unknown":
		return "deny:unknown"
	}
	return "deny:?"
}
