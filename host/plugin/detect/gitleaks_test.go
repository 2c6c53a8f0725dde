package detect

import (
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"

	"github.com/tollgate-dev/tollgate/host/plugin/detect/internal/gitleaks"
)

// TestGitleaksConfigPinned holds the embedded rules to the module go.mod
// pins: after a gitleaks upgrade, copy config/gitleaks.toml (and LICENSE)
// from the new module.
func TestGitleaksConfigPinned(t *testing.T) {
	dir, err := gitleaks.ModuleDir()
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"gitleaks.toml", "LICENSE"} {
		src := filepath.Join(dir, "config", name)
		if name == "LICENSE" {
			src = filepath.Join(dir, name)
		}
		want, err := os.ReadFile(src)
		if err != nil {
			t.Fatal(err)
		}
		got, err := os.ReadFile(filepath.Join("gitleaks", name))
		if err != nil {
			t.Fatal(err)
		}
		if string(got) != string(want) {
			t.Errorf("gitleaks/%s differs from %s: copy it again", name, src)
		}
	}
}

var (
	samplesOnce sync.Once
	samples     []gitleaks.Sample
	samplesErr  error
)

// gitleaksSamples are gitleaks' own true and false positives of every
// rule the engine imports.
func gitleaksSamples(t testing.TB) []gitleaks.Sample {
	t.Helper()
	samplesOnce.Do(func() { samples, samplesErr = gitleaks.Samples() })
	if samplesErr != nil {
		t.Fatalf("gitleaks samples (needs the Go module proxy or a filled module cache): %v", samplesErr)
	}
	ids, err := RuleIDs()
	if err != nil {
		t.Fatal(err)
	}
	imported := map[string]bool{}
	for _, id := range ids {
		imported[id] = true
	}
	var out []gitleaks.Sample
	for _, s := range samples {
		if imported[s.Rule] {
			out = append(out, s)
		}
	}
	return out
}

// found reports whether spans cover the secret a true positive holds.
func foundAny(b []byte, spans []Span) bool { return len(spans) > 0 }

func TestGitleaksRecall(t *testing.T) {
	ss := gitleaksSamples(t)
	all, err := NewRules()
	if err != nil {
		t.Fatal(err)
	}
	var tp, hitAlone, hitAll, fp, fpAlone int
	missed := map[string]int{}
	for _, s := range ss {
		alone, err := NewRules(s.Rule)
		if err != nil {
			t.Fatal(err)
		}
		for _, v := range s.TruePositives {
			tp++
			if len(alone.Find([]byte(v), nil)) > 0 {
				hitAlone++
			} else {
				missed[s.Rule]++
				if missed[s.Rule] == 1 {
					t.Logf("missed %s: %.200q", s.Rule, v)
				}
			}
			if len(all.Find([]byte(v), nil)) > 0 {
				hitAll++
			}
		}
		for _, v := range s.FalsePositives {
			fp++
			if sp := alone.Find([]byte(v), nil); len(sp) > 0 {
				fpAlone++
				t.Logf("false positive %s: %.200q", s.Rule, v)
			}
		}
	}
	var worst []string
	for id, n := range missed {
		worst = append(worst, id+"="+itoa(n))
	}
	sort.Strings(worst)
	t.Logf("rules %d; true positives %d: each rule alone %.4f, all rules %.4f; false positives %d: flagged by their rule %d; missed: %s",
		len(ss), tp, float64(hitAlone)/float64(tp), float64(hitAll)/float64(tp), fp, fpAlone, strings.Join(worst, " "))
}

func itoa(n int) string { return strings.TrimSpace(strings.Repeat(" ", 0) + fmtInt(n)) }
func fmtInt(n int) string {
	if n == 0 {
		return "0"
	}
	var b []byte
	for n > 0 {
		b = append([]byte{byte('0' + n%10)}, b...)
		n /= 10
	}
	return string(b)
}
