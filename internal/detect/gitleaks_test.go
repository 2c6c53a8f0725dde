package detect

import (
	"bytes"
	"math/rand"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"

	glconfig "github.com/zricethezav/gitleaks/v8/config"
	gldetect "github.com/zricethezav/gitleaks/v8/detect"

	"github.com/tollgate-dev/tollgate/internal/detect/internal/gitleaks"
)

// TestGitleaksConfigPinned holds the embedded rules to the module go.mod
// pins: after a gitleaks upgrade, copy config/gitleaks.toml (and LICENSE)
// from the new module.
func TestGitleaksConfigPinned(t *testing.T) {
	if gitleaksConfig != glconfig.DefaultConfig {
		t.Errorf("gitleaks/gitleaks.toml differs from the module's config.DefaultConfig: copy it again")
	}
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

// engines are what the tests measure: every gitleaks rule, and the redact
// plugin's default set.
func engines(t testing.TB) (*Rules, *Set) {
	t.Helper()
	all, err := NewRules()
	if err != nil {
		t.Fatal(err)
	}
	ds, err := Resolve([]string{GroupSecrets})
	if err != nil {
		t.Fatal(err)
	}
	return all, NewSet(ds...)
}

func TestGitleaksRecall(t *testing.T) {
	ss := gitleaksSamples(t)
	all, redact := engines(t)
	var tp, hitAlone, hitAll, hitRedact, fp, fpAlone int
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
			if len(redact.Find([]byte(v), nil)) > 0 {
				hitRedact++
			} else {
				t.Logf("redact default missed %s: %.120q", s.Rule, v)
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
	for name, got := range map[string]int{"each rule alone": hitAlone, "all rules": hitAll, "the redact default": hitRedact} {
		if r := float64(got) / float64(tp); r < 0.98 {
			t.Errorf("%s: recall %.4f on gitleaks' true positives, want ≥ 0.98", name, r)
		}
	}
	if fpAlone > 0 {
		t.Errorf("%d of gitleaks' false positives flagged by their own rule; gitleaks flags none", fpAlone)
	}
	var worst []string
	for id, n := range missed {
		worst = append(worst, id+"="+strconv.Itoa(n))
	}
	sort.Strings(worst)
	t.Logf("rules %d; true positives %d: each rule alone %.4f, all rules %.4f, the redact default (secrets) %.4f; false positives %d: flagged by their rule %d; missed: %s",
		len(ss), tp, float64(hitAlone)/float64(tp), float64(hitAll)/float64(tp), float64(hitRedact)/float64(tp), fp, fpAlone, strings.Join(worst, " "))
}

// TestGitleaksStreamEqualsWhole cuts every gitleaks sample, true and false
// positive, set in text, into random chunks: a Stream must give what
// masking the whole text gives, with every rule and builtin together.
// `make test` runs it whole, without the race detector, as a step of its
// own (TOLLGATE_DETECT_PROPERTY=full, about two minutes); otherwise it
// takes every tenth sample, every fiftieth under the race detector.
func TestGitleaksStreamEqualsWhole(t *testing.T) {
	ss := gitleaksSamples(t)
	set := fullSet(t)
	r := rand.New(rand.NewSource(11))
	stride := 10
	if raceOn {
		stride = 50
	}
	if os.Getenv("TOLLGATE_DETECT_PROPERTY") == "full" {
		stride = 1
	}
	chunkings, k := 0, 0
	for _, s := range ss {
		for _, v := range append(slices.Clone(s.TruePositives), s.FalsePositives...) {
			if k++; k%stride != 0 {
				continue
			}
			in := []byte("log line before\n" + v + " and after " + v[:len(v)/2] + "\n")
			want := wholeMask(set, in, Redact, nil)
			for iter := 0; iter < 3; iter++ {
				var chunks [][]byte
				maxChunk := 1 + r.Intn(64)
				for rest := in; len(rest) > 0; {
					n := min(len(rest), 1+r.Intn(maxChunk))
					chunks = append(chunks, rest[:n])
					rest = rest[n:]
				}
				chunkings++
				if got := streamMask(set, chunks, Redact, nil); !bytes.Equal(got, want) {
					t.Fatalf("%s: stream != whole over %d chunks\n got %q\nwant %q", s.Rule, len(chunks), got, want)
				}
			}
		}
	}
	t.Logf("%d chunkings of %d rules' samples", chunkings, len(ss))
}

// TestGitleaksFalsePositivesNoWorse runs gitleaks' own detector, with its
// whole default configuration, and ours (every rule; the redact default)
// over every rule's false-positive samples: ours may flag no more of them.
func TestGitleaksFalsePositivesNoWorse(t *testing.T) {
	ss := gitleaksSamples(t)
	gl, err := gldetect.NewDetectorDefaultConfig()
	if err != nil {
		t.Fatal(err)
	}
	all, redact := engines(t)
	var n, theirs, oursAll, oursRedact int
	for _, s := range ss {
		for _, v := range s.FalsePositives {
			n++
			if len(gl.DetectString(v)) > 0 {
				theirs++
			}
			if len(all.Find([]byte(v), nil)) > 0 {
				oursAll++
			}
			if sp := redact.Find([]byte(v), nil); len(sp) > 0 {
				oursRedact++
				if len(gl.DetectString(v)) == 0 {
					t.Logf("redact default flags %s's false positive by %s: %.100q in %.200q", s.Rule, sp[0].Kind, v[sp[0].Start:sp[0].End], v)
				}
			}
		}
	}
	t.Logf("false-positive samples %d: gitleaks flags %d, our rules %d, the redact default %d", n, theirs, oursAll, oursRedact)
	if oursAll > theirs || oursRedact > theirs {
		t.Errorf("we flag more of gitleaks' false positives than gitleaks does: rules %d, redact default %d, gitleaks %d", oursAll, oursRedact, theirs)
	}
}

// FuzzStreamRules: with every gitleaks rule and builtin, a Stream over any
// chunking gives what masking the whole text gives.
func FuzzStreamRules(f *testing.F) {
	fuzzSeeds(f)
	f.Add([]byte(`api_key = "Zx8vQ2mN7pL4kR9sT1wY" and token: `+tGHP+` key`), uint16(5))
	f.Add([]byte("sk-proj-"+strings.Repeat("Ab3", 25)+"T3BlbkFJ"+strings.Repeat("Xy7", 25)), uint16(11))
	set := fullSet(f)
	f.Fuzz(func(t *testing.T, in []byte, seed uint16) {
		want := wholeMask(set, in, Partial, nil)
		var chunks [][]byte
		rest := in
		for x := uint32(seed) | 1; len(rest) > 0; x = x*1103515245 + 12345 {
			n := min(len(rest), 1+int(x>>16)%(int(seed%97)+2))
			chunks = append(chunks, rest[:n])
			rest = rest[n:]
		}
		if got := streamMask(set, chunks, Partial, nil); !bytes.Equal(got, want) {
			t.Fatalf("stream != whole for %q (%d chunks)\n got %q\nwant %q", in, len(chunks), got, want)
		}
	})
}

// TestRulesStreamInteractive: with the redact default, a shell's prompt
// and a typed command line come back as soon as they can: a prompt at
// once, a typed word once a blank ends it.
func TestRulesStreamInteractive(t *testing.T) {
	_, redact := engines(t)
	s := NewStream(redact, Redact, nil)
	if got := string(s.Write([]byte("total 0\r\nuser@host:~$ "))); got != "total 0\r\nuser@host:~$ " {
		t.Fatalf("prompt held: %q", got)
	}
	var echo strings.Builder
	for _, c := range "ls -la /var/log\r\n" {
		echo.Write(s.Write([]byte(string(c))))
	}
	if echo.String() != "ls -la /var/log\r\n" {
		t.Fatalf("typed line held: %q", echo.String())
	}
}
