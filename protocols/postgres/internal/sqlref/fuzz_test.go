package sqlref

import (
	"slices"
	"strings"
	"testing"
)

// FuzzAnalyze: no panic, the same answer twice (the second from the
// cache) and from a fresh policy, and a statement whose top-level target
// is a plain sensitive column gets no finding for it.
func FuzzAnalyze(f *testing.F) {
	for _, c := range readCorpus(f) {
		f.Add(c.sql)
	}
	p := testPolicy()
	f.Fuzz(func(t *testing.T, sql string) {
		a1, err1 := p.Analyze(sql)
		a2, err2 := p.Analyze(sql)
		a3, err3 := testPolicy().Analyze(sql)
		if !slices.Equal(summary(a1, err1), summary(a2, err2)) || !slices.Equal(summary(a1, err1), summary(a3, err3)) {
			t.Fatalf("not deterministic: %v, %v, %v", summary(a1, err1), summary(a2, err2), summary(a3, err3))
		}
		// A plain column in a statement before sql adds only "direct":
		// statements are analysed apart, and a plain column is clean.
		if p.mayMatch(sql) {
			got := summary(p.Analyze("SELECT secret FROM api_keys;\n" + sql))
			want := summary(a1, err1)
			if !slices.Equal(want, []string{"error"}) && !slices.Contains(want, "direct") {
				want = append(want, "direct")
				slices.Sort(want)
			}
			if !slices.Equal(got, want) {
				t.Fatalf("prefixed with a plain column: %v, alone: %v", got, summary(a1, err1))
			}
		}
		// The text as a literal beside a plain column: no finding.
		plain := "SELECT secret FROM api_keys WHERE id IN (SELECT 1 WHERE " + quoteLiteral(sql) + " IS NOT NULL)"
		a, err := p.Analyze(plain)
		if err != nil {
			t.Fatalf("%s: %v", plain, err)
		}
		if !a.Direct {
			t.Fatalf("%s: not direct", plain)
		}
		for _, fd := range a.Findings {
			if fd.Column.Column == "secret" {
				t.Fatalf("%s: finding %v for a plain column", plain, fd)
			}
		}
	})
}

func quoteLiteral(s string) string {
	return "'" + strings.ReplaceAll(strings.ToValidUTF8(strings.ReplaceAll(s, "\x00", ""), ""), "'", "''") + "'"
}
