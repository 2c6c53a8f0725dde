package sqlref

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"
)

// testPolicy is the policy of the corpus and the fuzz target.
func testPolicy() *Policy {
	return NewPolicy([]Column{
		{"public", "api_keys", "secret"}, {"public", "api_keys", "token"}, {"billing", "cards", "pan"},
	})
}

type corpusCase struct {
	line int
	sql  string
	want []string
}

func readCorpus(t testing.TB) []corpusCase {
	t.Helper()
	f, err := os.Open("testdata/corpus.txt")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []corpusCase
	var sql []string
	start := 0
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		l := sc.Text()
		switch {
		case strings.HasPrefix(l, "=> "):
			want := strings.Fields(strings.TrimPrefix(l, "=> "))
			if slices.Equal(want, []string{"OK"}) {
				want = nil
			}
			slices.Sort(want)
			out = append(out, corpusCase{line: start, sql: strings.Join(sql, "\n"), want: want})
			sql = nil
		case len(sql) == 0 && (l == "" || strings.HasPrefix(l, "#")):
		default:
			if len(sql) == 0 {
				start = n
			}
			sql = append(sql, l)
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// summary renders an analysis as the corpus writes it.
func summary(a Analysis, err error) []string {
	if err != nil {
		return []string{"error"}
	}
	var out []string
	if a.Direct {
		out = append(out, "direct")
	}
	for _, f := range a.Findings {
		out = append(out, string(f.Use)+":"+f.Column.Column)
	}
	slices.Sort(out)
	return out
}

func TestCorpus(t *testing.T) {
	cases := readCorpus(t)
	if len(cases) < 100 {
		t.Fatalf("corpus has %d cases, want at least 100", len(cases))
	}
	p := testPolicy()
	for _, c := range cases {
		// Twice: the second answer comes from the cache.
		for i := range 2 {
			got := summary(p.Analyze(c.sql))
			if !slices.Equal(got, c.want) {
				t.Errorf("testdata/corpus.txt:%d (run %d): %s\n got  %v\n want %v", c.line, i, c.sql, got, c.want)
			}
		}
	}
}

// TestCacheLiterals: an analysis that read a constant is never reused for
// another statement with the same normalized text.
func TestCacheLiterals(t *testing.T) {
	p := testPolicy()
	for _, c := range []struct{ a, b, wantA, wantB string }{
		{`SELECT id FROM api_keys; DO $$ BEGIN PERFORM 1; END $$`,
			`SELECT id FROM api_keys; DO $$ BEGIN PERFORM secret; END $$`, "", "dynamic-sql:secret"},
		{`SELECT secret, id FROM api_keys WHERE id = 1 ORDER BY 2`,
			`SELECT secret, id FROM api_keys WHERE id = 2 ORDER BY 1`, "direct", "direct ordering:secret"},
		{`CREATE FUNCTION f() RETURNS int LANGUAGE sql AS 'SELECT 1' ; SELECT id FROM api_keys`,
			`CREATE FUNCTION f() RETURNS int LANGUAGE sql AS 'SELECT token' ; SELECT id FROM api_keys`, "", "dynamic-sql:token"},
	} {
		for i := range 2 {
			if got := strings.Join(summary(p.Analyze(c.a)), " "); got != c.wantA {
				t.Errorf("%d %s: %q, want %q", i, c.a, got, c.wantA)
			}
			if got := strings.Join(summary(p.Analyze(c.b)), " "); got != c.wantB {
				t.Errorf("%d %s: %q, want %q", i, c.b, got, c.wantB)
			}
		}
	}
	// A literal-free analysis is shared: the second statement adds only
	// its exact-text entry.
	p = testPolicy()
	p.Analyze(`SELECT upper(secret) FROM api_keys WHERE id = 1`)
	n := p.cache.len()
	a, _ := p.Analyze(`SELECT upper(secret) FROM api_keys WHERE id = 2`)
	if p.cache.len() != n+1 || len(a.Findings) != 1 || a.Findings[0].Use != UseExpression {
		t.Errorf("normalized reuse: %d entries after %d, %v", p.cache.len(), n, a.Findings)
	}
}

func TestCacheBounded(t *testing.T) {
	p := testPolicy()
	for i := range cacheEntries + 100 {
		p.Analyze(fmt.Sprintf("SELECT secret AS s%d FROM api_keys", i))
	}
	if n := p.cache.len(); n > cacheEntries {
		t.Fatalf("cache holds %d entries, bound %d", n, cacheEntries)
	}
	c := newCache(100, 1000)
	for i := range 50 {
		c.put(key{s: strings.Repeat("x", 100) + fmt.Sprint(i)}, result{})
	}
	if c.bytes > 1000 {
		t.Fatalf("cache holds %d bytes, bound 1000", c.bytes)
	}
}

func TestFindingsShared(t *testing.T) {
	p := testPolicy()
	a, _ := p.Analyze(`SELECT upper(secret) FROM api_keys`)
	_ = append(a.Findings, Finding{Use: UseDDL})
	b, _ := p.Analyze(`SELECT upper(secret) FROM api_keys`)
	if len(b.Findings) != 1 || cap(b.Findings) != len(b.Findings) {
		t.Fatalf("cached findings changed: %v", b.Findings)
	}
}

func TestNotUTF8(t *testing.T) {
	if _, err := testPolicy().Analyze("SELECT secret FROM api_keys WHERE name = '\xff'"); !errors.Is(err, ErrNotUTF8) {
		t.Fatalf("err = %v, want ErrNotUTF8", err)
	}
}
