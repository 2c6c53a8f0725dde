package detect

import (
	"bytes"
	"errors"
	"fmt"
	"regexp"
)

// PatternMaxLen bounds a Pattern match: longer matches are dropped, so a
// Stream can decide a pattern with PatternMaxLen bytes of look-ahead.
const PatternMaxLen = 256

type pattern struct {
	kind   string
	re     *regexp.Regexp
	prefix []byte // literal every match starts with, if any
}

// Pattern compiles an operator's RE2 expression (Go regexp syntax) into a
// detector of the given kind. Compile once, at plugin load; the detector is
// safe for concurrent use. If the expression starts with a literal, Find skips
// the regexp entirely on input without that literal. Empty matches and
// matches longer than PatternMaxLen bytes are ignored.
//
// In a Stream a pattern holds back PatternMaxLen bytes, and chunking
// invariance is exact only for patterns whose matches do not depend on where
// the regexp starts scanning (no self-overlapping matches).
func Pattern(kind, expr string) (Detector, error) {
	if kind == "" {
		return nil, errors.New("detect: pattern needs a kind")
	}
	re, err := regexp.Compile(expr)
	if err != nil {
		return nil, fmt.Errorf("detect: pattern %s: %w", kind, err)
	}
	p := &pattern{kind: kind, re: re}
	if lit, _ := re.LiteralPrefix(); lit != "" {
		p.prefix = []byte(lit)
	}
	return p, nil
}

func (p *pattern) Kind() string { return p.kind }

func (p *pattern) Find(b []byte, dst []Span) []Span {
	dst, _ = p.scan(b, dst, true, false)
	return dst
}

func (p *pattern) back() int { return PatternMaxLen }

func (p *pattern) scan(b []byte, dst []Span, eof, _ bool) ([]Span, int) {
	hold := len(b)
	if !eof {
		hold = max(0, len(b)-PatternMaxLen)
	}
	if p.prefix != nil && !bytes.Contains(b, p.prefix) {
		return dst, hold
	}
	for _, m := range p.re.FindAllIndex(b, -1) {
		if m[1] > m[0] && m[1]-m[0] <= PatternMaxLen && (eof || m[0] < hold) {
			dst = append(dst, Span{m[0], m[1], p.kind})
		}
	}
	return dst, hold
}
