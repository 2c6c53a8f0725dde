// Package glob matches claim values against the patterns of access rules.
//
// The syntax follows GitHub's branch filters, which CI users already know:
// `*` matches any run of characters except `/`, `**` matches any run
// including `/`, `?` matches one character except `/`, and `\` makes the
// next character literal. A pattern without these is an exact match.
package glob

import (
	"errors"
	"strings"
)

// Validate reports whether pattern is well formed.
func Validate(pattern string) error {
	for i := 0; i < len(pattern); i++ {
		if pattern[i] == '\\' {
			if i+1 == len(pattern) {
				return errors.New("pattern ends with an unfinished escape \\")
			}
			i++
		}
	}
	return nil
}

// token kinds after compiling a pattern.
const (
	lit = iota
	one
	star
	starstar
)

type token struct {
	kind int
	b    byte
}

func compile(pattern string) []token {
	toks := make([]token, 0, len(pattern))
	for i := 0; i < len(pattern); i++ {
		switch c := pattern[i]; c {
		case '\\':
			if i+1 < len(pattern) {
				i++
				toks = append(toks, token{lit, pattern[i]})
			}
		case '?':
			toks = append(toks, token{kind: one})
		case '*':
			if i+1 < len(pattern) && pattern[i+1] == '*' {
				toks = append(toks, token{kind: starstar})
				i++
			} else {
				toks = append(toks, token{kind: star})
			}
		default:
			toks = append(toks, token{lit, c})
		}
	}
	return toks
}

// Match reports whether value matches pattern. It runs in time
// proportional to len(pattern)*len(value): no backtracking blow-up on
// hostile claim values.
func Match(pattern, value string) bool {
	if !strings.ContainsAny(pattern, `*?\`) {
		// A plain name, the common case (a column, a repository): no
		// tokens, no tables.
		return pattern == value
	}
	toks := compile(pattern)
	// ok[j] is true when the tokens seen so far match value[:j]; short
	// values use tables on the stack.
	var small [2][64]bool
	ok, next := small[0][:0], small[1][:0]
	if len(value) >= len(small[0]) {
		ok, next = make([]bool, 0, len(value)+1), make([]bool, 0, len(value)+1)
	}
	ok, next = ok[:len(value)+1], next[:len(value)+1]
	ok[0] = true
	for _, t := range toks {
		clear(next)
		switch t.kind {
		case lit, one:
			for j := 0; j < len(value); j++ {
				if ok[j] && ((t.kind == lit && value[j] == t.b) || (t.kind == one && value[j] != '/')) {
					next[j+1] = true
				}
			}
		case star, starstar:
			for j := 0; j <= len(value); j++ {
				if ok[j] {
					next[j] = true
				} else if j > 0 && next[j-1] && (t.kind == starstar || value[j-1] != '/') {
					next[j] = true
				}
			}
		}
		ok, next = next, ok
	}
	return ok[len(value)]
}
