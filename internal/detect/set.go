package detect

import (
	"fmt"
	"regexp"
	"slices"
)

// foreignWindow is the look-ahead and left context a Stream gives detectors
// that are neither builtins nor Patterns.
const foreignWindow = 256

// Set runs several detectors over the same input. It is immutable and safe
// for concurrent use.
type Set struct {
	ds    []Detector
	sc    []scanner            // sc[i] is ds[i] as a scanner, or nil
	needs []func(summary) bool // needs[i] is ds[i]'s need if a builtin with one, or nil
	back  int                  // left context a Stream keeps
	allow *regexp.Regexp       // spans whose whole text matches are kept unmasked
}

// WithAllow returns a copy of s that drops every span whose whole text
// matches the RE2 expression expr: an operator's allowlist (test keys, a
// service's own public address). The decision reads only the span, so a
// Stream still gives what masking the whole text gives.
func (s *Set) WithAllow(expr string) (*Set, error) {
	re, err := regexp.Compile(`^(?:` + expr + `)$`)
	if err != nil {
		return nil, fmt.Errorf("detect: allowlist: %w", err)
	}
	cp := *s
	cp.allow = re
	return &cp, nil
}

// allowed drops from dst[base:] the spans the allowlist keeps.
func (s *Set) allowed(b []byte, dst []Span, base int) []Span {
	if s.allow == nil {
		return dst
	}
	k := base
	for _, sp := range dst[base:] {
		st, en := max(sp.Start, 0), min(sp.End, len(b))
		if st < en && s.allow.Match(b[st:en]) {
			continue
		}
		dst[k] = sp
		k++
	}
	return dst[:k]
}

// NewSet returns a Set running ds in order. When spans of two kinds start at
// the same byte the longer wins; for equal extents the earlier detector's kind
// is kept.
func NewSet(ds ...Detector) *Set {
	s := &Set{ds: slices.Clone(ds), sc: make([]scanner, len(ds)), needs: make([]func(summary) bool, len(ds))}
	for i, d := range ds {
		if b, ok := d.(*builtin); ok {
			s.needs[i] = b.need
		}
		if sc, ok := d.(scanner); ok {
			s.sc[i] = sc
			s.back = max(s.back, sc.back())
		} else {
			s.back = max(s.back, foreignWindow)
		}
	}
	return s
}

// Find appends to dst the spans of every detector in b, merged: sorted by
// Start, non-overlapping (overlapping spans become their union, which keeps
// the kind of the span starting first), within [0, len(b)) and non-empty.
// Spans that only touch are kept apart.
func (s *Set) Find(b []byte, dst []Span) []Span {
	base := len(dst)
	var sum summary
	summed := false
	short := len(b) <= maxSummarized
	for i, d := range s.ds {
		if need := s.needs[i]; need != nil && short {
			if !summed {
				sum, summed = summarize(b), true
			}
			if !need(sum) {
				continue
			}
		}
		dst = d.Find(b, dst)
	}
	return mergeSpans(s.allowed(b, dst, base), base, len(b))
}

// maxSummarized bounds the inputs a Set summarizes for the builtins'
// needs: row cells are short and mostly lack what the detectors need; a
// long text almost always has it all, and the pass would be wasted.
const maxSummarized = 256

// scan is Find's streaming form (see scanner.scan); spans are not merged.
// A Stream has returned b[:from] already, which detectors that can may use
// to skip work whose spans would all start there.
func (s *Set) scan(b []byte, dst []Span, eof, cut bool, from int, early bool, memo *Memo, base int) ([]Span, int) {
	hold := len(b)
	for i, d := range s.ds {
		if rs, ok := d.(*Rules); ok {
			var h int
			dst, h = rs.scanFrom(b, dst, eof, cut, from, early, memo, base)
			hold = min(hold, h)
			continue
		}
		if sc := s.sc[i]; sc != nil {
			var h int
			dst, h = sc.scan(b, dst, eof, cut)
			hold = min(hold, h)
			continue
		}
		dst = d.Find(b, dst)
		if !eof {
			hold = min(hold, max(0, len(b)-foreignWindow))
		}
	}
	return s.allowed(b, dst, 0), hold
}

// mergeSpans sorts dst[base:], clamps it to [0, n), drops empty spans and
// merges overlapping ones in place.
func mergeSpans(dst []Span, base, n int) []Span {
	sp := dst[base:]
	k := 0
	for _, x := range sp {
		x.Start, x.End = max(x.Start, 0), min(x.End, n)
		if x.Start < x.End {
			sp[k] = x
			k++
		}
	}
	sp = sp[:k]
	slices.SortStableFunc(sp, func(a, b Span) int {
		if a.Start != b.Start {
			return a.Start - b.Start
		}
		return b.End - a.End
	})
	out := 0
	for _, x := range sp {
		if out > 0 && x.Start < sp[out-1].End {
			sp[out-1].End = max(sp[out-1].End, x.End)
			continue
		}
		sp[out] = x
		out++
	}
	return dst[:base+out]
}
