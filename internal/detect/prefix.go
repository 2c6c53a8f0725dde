package detect

import (
	"regexp/syntax"
	"strings"
	"unicode"
)

// prefixes returns an expression matching every prefix of every string the
// expression re matches (the empty string and whole matches included), with
// every empty-width assertion dropped. A Stream asks it whether a match may
// still be under way at the end of what it has received: "text[s:] is a
// prefix of a match" is the only way a later byte can change what the
// regexp finds from s. Dropping assertions makes the answer err towards
// "may be": a \b or $ at the end of the input is decided by the next byte.
func prefixes(re *syntax.Regexp) *syntax.Regexp {
	switch re.Op {
	case syntax.OpNoMatch:
		return re
	case syntax.OpEmptyMatch, syntax.OpBeginLine, syntax.OpEndLine, syntax.OpBeginText,
		syntax.OpEndText, syntax.OpWordBoundary, syntax.OpNoWordBoundary:
		return empty()
	case syntax.OpLiteral:
		// r1(r2(r3)?)?)? for the literal r1r2r3.
		var out *syntax.Regexp
		for i := len(re.Rune) - 1; i >= 0; i-- {
			lit := &syntax.Regexp{Op: syntax.OpLiteral, Flags: re.Flags, Rune: []rune{re.Rune[i]}}
			if out != nil {
				lit = concat(lit, out)
			}
			out = quest(lit)
		}
		if out == nil {
			return empty()
		}
		return out
	case syntax.OpCharClass, syntax.OpAnyChar, syntax.OpAnyCharNotNL:
		return quest(re)
	case syntax.OpCapture:
		return prefixes(re.Sub[0])
	case syntax.OpQuest:
		return prefixes(re.Sub[0])
	case syntax.OpStar, syntax.OpPlus:
		return concat(star(noAssert(re.Sub[0])), prefixes(re.Sub[0]))
	case syntax.OpRepeat:
		if re.Max == 0 {
			return empty()
		}
		var head *syntax.Regexp
		if re.Max < 0 {
			head = star(noAssert(re.Sub[0]))
		} else {
			head = &syntax.Regexp{Op: syntax.OpRepeat, Flags: re.Flags, Min: 0, Max: re.Max - 1, Sub: []*syntax.Regexp{noAssert(re.Sub[0])}}
		}
		return concat(head, prefixes(re.Sub[0]))
	case syntax.OpConcat:
		// P(x1 x2 ... xn) = P(x1) | x1 P(x2 ... xn).
		var out *syntax.Regexp
		for i := len(re.Sub) - 1; i >= 0; i-- {
			p := prefixes(re.Sub[i])
			if out != nil {
				p = alternate(p, concat(noAssert(re.Sub[i]), out))
			}
			out = p
		}
		if out == nil {
			return empty()
		}
		return out
	case syntax.OpAlternate:
		subs := make([]*syntax.Regexp, len(re.Sub))
		for i, s := range re.Sub {
			subs[i] = prefixes(s)
		}
		return &syntax.Regexp{Op: syntax.OpAlternate, Sub: subs}
	}
	return quest(&syntax.Regexp{Op: syntax.OpAnyChar}) // unknown: anything may follow
}

// noAssert is re with every empty-width assertion replaced by the empty
// string: it matches a superset of what re matches.
func noAssert(re *syntax.Regexp) *syntax.Regexp {
	switch re.Op {
	case syntax.OpBeginLine, syntax.OpEndLine, syntax.OpBeginText, syntax.OpEndText,
		syntax.OpWordBoundary, syntax.OpNoWordBoundary:
		return empty()
	}
	if len(re.Sub) == 0 {
		return re
	}
	cp := *re
	cp.Sub = make([]*syntax.Regexp, len(re.Sub))
	for i, s := range re.Sub {
		cp.Sub[i] = noAssert(s)
	}
	return &cp
}

func empty() *syntax.Regexp { return &syntax.Regexp{Op: syntax.OpEmptyMatch} }

func quest(re *syntax.Regexp) *syntax.Regexp {
	return &syntax.Regexp{Op: syntax.OpQuest, Sub: []*syntax.Regexp{re}}
}

func star(re *syntax.Regexp) *syntax.Regexp {
	return &syntax.Regexp{Op: syntax.OpStar, Sub: []*syntax.Regexp{re}}
}

func concat(a, b *syntax.Regexp) *syntax.Regexp {
	return &syntax.Regexp{Op: syntax.OpConcat, Sub: []*syntax.Regexp{a, b}}
}

func alternate(a, b *syntax.Regexp) *syntax.Regexp {
	return &syntax.Regexp{Op: syntax.OpAlternate, Sub: []*syntax.Regexp{a, b}}
}

// maxMatchLen is the most bytes a match of re can span, or -1 when a
// repetition is unbounded.
func maxMatchLen(re *syntax.Regexp) int {
	switch re.Op {
	case syntax.OpLiteral:
		n := 0
		for _, r := range re.Rune {
			n += runeLen(r)
		}
		return n
	case syntax.OpCharClass:
		m := 1
		for i := 1; i < len(re.Rune); i += 2 {
			m = max(m, runeLen(re.Rune[i]))
		}
		return m
	case syntax.OpAnyChar, syntax.OpAnyCharNotNL:
		return 4
	case syntax.OpCapture, syntax.OpQuest:
		return maxMatchLen(re.Sub[0])
	case syntax.OpStar, syntax.OpPlus:
		return -1
	case syntax.OpRepeat:
		m := maxMatchLen(re.Sub[0])
		if re.Max < 0 || m < 0 {
			return -1
		}
		return m * re.Max
	case syntax.OpConcat:
		n := 0
		for _, s := range re.Sub {
			m := maxMatchLen(s)
			if m < 0 {
				return -1
			}
			n += m
		}
		return n
	case syntax.OpAlternate:
		n := 0
		for _, s := range re.Sub {
			m := maxMatchLen(s)
			if m < 0 {
				return -1
			}
			n = max(n, m)
		}
		return n
	}
	return 0
}

func runeLen(r rune) int {
	switch {
	case r < 0x80:
		return 1
	case r < 0x800:
		return 2
	case r < 0x10000:
		return 3
	}
	return 4
}

// flatten lists the top-level sequence of re: captures opened, concatenations
// spread out.
func flatten(re *syntax.Regexp, out []*syntax.Regexp) []*syntax.Regexp {
	switch re.Op {
	case syntax.OpCapture:
		return flatten(re.Sub[0], out)
	case syntax.OpConcat:
		for _, s := range re.Sub {
			out = flatten(s, out)
		}
		return out
	}
	return append(out, re)
}

// lead bounds how many bytes of a match can come before the end of the
// keyword it holds: the elements before re's first fixed part (a literal,
// an alternation) and that part, when a keyword is among its literals; the
// whole window otherwise (the keyword may sit anywhere).
func lead(re *syntax.Regexp, keywords []string, window int) int {
	n := 0
	for _, e := range flatten(re, nil) {
		switch e.Op {
		case syntax.OpBeginLine, syntax.OpEndLine, syntax.OpBeginText, syntax.OpEndText,
			syntax.OpWordBoundary, syntax.OpNoWordBoundary, syntax.OpEmptyMatch,
			syntax.OpStar, syntax.OpPlus, syntax.OpQuest, syntax.OpRepeat, syntax.OpCharClass,
			syntax.OpAnyChar, syntax.OpAnyCharNotNL:
			m := maxMatchLen(e)
			if m < 0 {
				return window
			}
			n += m
			continue
		}
		m := maxMatchLen(e)
		if m < 0 || !holdsKeyword(e, keywords) {
			return window
		}
		return min(n+m, window)
	}
	return window
}

// holdsKeyword reports whether a keyword is part of a literal of re.
func holdsKeyword(re *syntax.Regexp, keywords []string) bool {
	if re.Op == syntax.OpLiteral {
		lit := strings.ToLower(string(re.Rune))
		for _, k := range keywords {
			if strings.Contains(lit, k) {
				return true
			}
		}
		return false
	}
	if re.Op == syntax.OpAlternate {
		// The key's name among alternatives: a branch without a literal
		// keyword ("(?-i:[Aa]pi)") still sits where the others do.
		for _, s := range re.Sub {
			if holdsKeyword(s, keywords) {
				return true
			}
		}
		return false
	}
	if re.Op == syntax.OpConcat || re.Op == syntax.OpCapture {
		// A literal with its keyword may follow a short fixed head; the
		// concatenation's whole length is counted by the caller.
		for _, s := range re.Sub {
			if holdsKeyword(s, keywords) {
				return true
			}
		}
	}
	return false
}

// firstBytes is the set of bytes a non-empty match of re can start with;
// every byte when re can match the empty string.
func firstBytes(re *syntax.Regexp) [256]bool {
	var set [256]bool
	if firstInto(re, &set) {
		for i := range set {
			set[i] = true
		}
	}
	return set
}

// firstInto adds the first bytes of re to set and reports whether re can
// match the empty string.
func firstInto(re *syntax.Regexp, set *[256]bool) bool {
	addRune := func(r rune, fold bool) {
		if r >= 0x80 {
			for c := 0xC0; c < 0x100; c++ {
				set[c] = true
			}
			return
		}
		set[r] = true
		if fold && r < 0x80 {
			set[unicode.ToLower(r)] = true
			set[unicode.ToUpper(r)] = true
		}
	}
	switch re.Op {
	case syntax.OpLiteral:
		if len(re.Rune) == 0 {
			return true
		}
		addRune(re.Rune[0], re.Flags&syntax.FoldCase != 0)
		return false
	case syntax.OpCharClass:
		for i := 0; i+1 < len(re.Rune); i += 2 {
			for r := re.Rune[i]; r <= re.Rune[i+1] && r < 0x80; r++ {
				set[r] = true
			}
			if re.Rune[i+1] >= 0x80 {
				addRune(0x80, false)
			}
		}
		return false
	case syntax.OpAnyChar, syntax.OpAnyCharNotNL:
		for c := range set {
			set[c] = true
		}
		return false
	case syntax.OpCapture, syntax.OpPlus:
		return firstInto(re.Sub[0], set)
	case syntax.OpStar, syntax.OpQuest:
		firstInto(re.Sub[0], set)
		return true
	case syntax.OpRepeat:
		e := firstInto(re.Sub[0], set)
		return e || re.Min == 0
	case syntax.OpConcat:
		for _, s := range re.Sub {
			if !firstInto(s, set) {
				return false
			}
		}
		return true
	case syntax.OpAlternate:
		e := false
		for _, s := range re.Sub {
			if firstInto(s, set) {
				e = true
			}
		}
		return e
	case syntax.OpNoMatch:
		return false
	}
	return true // empty and assertions
}

// secretLeads reports whether the secret of a rule (capture group g of re,
// or its first group when g is 0) may start before the keyword that
// triggers the rule. It may not when a part holding a keyword comes before
// the secret's group, when the group starts with a keyword, or when no
// literal of the group holds a keyword and something comes before it (the
// keyword is then in the key's name, which a factored alternation can hide
// from holdsKeyword). TestGitleaksStreamEqualsWhole would catch a rule
// wrongly said not to lead: a Stream would have let its secret's head go.
func secretLeads(re *syntax.Regexp, g int, keywords []string) bool {
	if g == 0 {
		g = 1
	}
	for i, e := range flattenExcept(re, g, nil) {
		if e.Op == syntax.OpCapture && e.Cap == g {
			for _, in := range flatten(e.Sub[0], nil) {
				switch in.Op {
				case syntax.OpBeginLine, syntax.OpBeginText, syntax.OpWordBoundary,
					syntax.OpNoWordBoundary, syntax.OpEmptyMatch:
					continue
				}
				if holdsKeyword(in, keywords) {
					return false
				}
				break
			}
			return i == 0 || anyLiteralHolds(e, keywords)
		}
		if holdsKeyword(e, keywords) {
			return false
		}
	}
	return true
}

// anyLiteralHolds reports whether some literal within re holds a keyword.
func anyLiteralHolds(re *syntax.Regexp, keywords []string) bool {
	if re.Op == syntax.OpLiteral {
		lit := strings.ToLower(string(re.Rune))
		for _, k := range keywords {
			if strings.Contains(lit, k) {
				return true
			}
		}
	}
	for _, s := range re.Sub {
		if anyLiteralHolds(s, keywords) {
			return true
		}
	}
	return false
}

// flattenExcept is flatten that leaves capture group g closed.
func flattenExcept(re *syntax.Regexp, g int, out []*syntax.Regexp) []*syntax.Regexp {
	switch {
	case re.Op == syntax.OpCapture && re.Cap != g:
		return flattenExcept(re.Sub[0], g, out)
	case re.Op == syntax.OpConcat:
		for _, s := range re.Sub {
			out = flattenExcept(s, g, out)
		}
		return out
	}
	return append(out, re)
}
