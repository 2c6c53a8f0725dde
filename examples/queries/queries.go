// Package queries holds the analyst's shipped SQL (README.md here says
// what each answers and documents every column), embedded so that
// `gateway audit query NAME` runs them from any directory.
package queries

import (
	"embed"
	"fmt"
	"io/fs"
	"sort"
	"strings"
)

//go:embed *.sql
var files embed.FS

// Names lists the shipped queries, without ".sql".
func Names() []string {
	entries, _ := fs.ReadDir(files, ".")
	var out []string
	for _, e := range entries {
		if n, ok := strings.CutSuffix(e.Name(), ".sql"); ok {
			out = append(out, n)
		}
	}
	sort.Strings(out)
	return out
}

// Get is the text of the shipped query name.
func Get(name string) (string, error) {
	b, err := files.ReadFile(name + ".sql")
	if err != nil {
		return "", fmt.Errorf("no shipped query %q (there are: %s)", name, strings.Join(Names(), ", "))
	}
	return string(b), nil
}

// Summary is the first sentence (up to a colon or a full stop) of a
// query's leading comment.
func Summary(sql string) string {
	var words []string
	for _, line := range strings.Split(sql, "\n") {
		text, ok := strings.CutPrefix(strings.TrimSpace(line), "--")
		if !ok {
			break
		}
		words = append(words, strings.Fields(text)...)
	}
	s := strings.Join(words, " ")
	if i := strings.IndexAny(s, ":."); i >= 0 {
		s = s[:i]
	}
	return s
}
