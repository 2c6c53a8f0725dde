package monitoring_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

func promtool(t *testing.T, args ...string) string {
	t.Helper()
	if _, err := exec.LookPath("promtool"); err != nil {
		t.Fatal("promtool (Debian's prometheus package) is needed: run `make deps`")
	}
	out, err := exec.Command("promtool", args...).CombinedOutput()
	if err != nil {
		t.Fatalf("promtool %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// The shipped rules and scrape config are valid, and each alert fires on
// the series that should raise it and not on a healthy gateway
// (alerts_test.yml, promtool's rule unit tests).
func TestShippedRules(t *testing.T) {
	promtool(t, "check", "rules", "alerts.yml")
	promtool(t, "check", "config", "prometheus.yml")
	out := promtool(t, "test", "rules", "alerts_test.yml")
	if !strings.Contains(out, "SUCCESS") {
		t.Fatalf("promtool test rules:\n%s", out)
	}
}

// The unit tests can fail: with a rule's threshold raised, the alert the
// tests expect does not fire and promtool says so.
func TestRuleTestsCatchAChangedRule(t *testing.T) {
	promtool(t, "--version")
	dir := t.TempDir()
	for _, f := range []string{"alerts.yml", "alerts_test.yml"} {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if f == "alerts.yml" {
			old := "tollgate_approvals_oldest_pending_seconds > 300"
			if !strings.Contains(string(b), old) {
				t.Fatalf("alerts.yml has no %q", old)
			}
			b = []byte(strings.Replace(string(b), old, "tollgate_approvals_oldest_pending_seconds > 3000", 1))
		}
		if err := os.WriteFile(filepath.Join(dir, f), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	cmd := exec.Command("promtool", "test", "rules", "alerts_test.yml")
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	if err == nil || !strings.Contains(string(out), "TollgateApprovalWaitingTooLong") {
		t.Fatalf("a changed rule passed its tests: %v\n%s", err, out)
	}
}
