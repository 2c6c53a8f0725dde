package sqlclass

import "strings"

// tokKind is the lexical category of a token.
type tokKind uint8

const (
	tkWord    tokKind = iota + 1 // identifier or keyword (unquoted)
	tkQIdent                     // "quoted identifier"
	tkUQIdent                    // U&"unicode-escaped identifier"
	tkString                     // any single-quoted string constant
	tkDollar                     // $tag$ ... $tag$
	tkNumber                     // numeric constant
	tkParam                      // $1
	tkOp                         // any other single byte (operators, brackets, ::)
	tkLParen                     // (
	tkRParen                     // )
	tkComma                      // ,
	tkDot                        // .
	tkSemi                       // ;
)

// token is one lexical token. start and end are byte offsets into the input;
// depth is the parenthesis depth relative to the start of its statement
// (a '(' and its matching ')' carry the outer depth).
type token struct {
	start, end int32
	depth      int32
	kind       tokKind
}

// lexer is a PostgreSQL lexer reduced to what classification needs: it
// recognizes comments (nested block comments, -- to end of line), string
// constants (”, E”, B”, X”, N”, U&”), quoted identifiers, dollar
// quotes and parameters, and reports everything else as words, numbers or
// single-byte tokens.
type lexer struct {
	s   string
	pos int
	// scsOff lexes plain '...' strings as if standard_conforming_strings
	// were off (backslash escapes, like E'...').
	scsOff bool
	// bs records that a plain string contained a backslash, i.e. that the
	// reading depends on standard_conforming_strings.
	bs bool
	// openLine records that the input ended inside a -- comment.
	openLine bool
	// noCommentJoin: a -- comment ends a string constant (tests only).
	noCommentJoin bool
}

type lexResult uint8

const (
	lexTok lexResult = iota
	lexEOF
	lexBad // unterminated quote, dollar quote or block comment
)

func isSpace(c byte) bool {
	return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v'
}

func isIdentStart(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c == '_' || c >= 0x80
}

func isIdentCont(c byte) bool {
	return isIdentStart(c) || c >= '0' && c <= '9' || c == '$'
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

// skip skips whitespace and comments. It returns false on an unterminated
// block comment.
func (l *lexer) skip() bool {
	s := l.s
	for l.pos < len(s) {
		c := s[l.pos]
		switch {
		case isSpace(c):
			l.pos++
		case c == '-' && l.pos+1 < len(s) && s[l.pos+1] == '-':
			// PostgreSQL ends a line comment at \n or \r.
			i := l.pos + 2
			for i < len(s) && s[i] != '\n' && s[i] != '\r' {
				i++
			}
			if i == len(s) {
				l.openLine = true
			}
			l.pos = i
		case c == '/' && l.pos+1 < len(s) && s[l.pos+1] == '*':
			depth := 1
			i := l.pos + 2
			for depth > 0 {
				if i+1 >= len(s) {
					l.pos = len(s)
					return false
				}
				if s[i] == '/' && s[i+1] == '*' {
					depth++
					i += 2
				} else if s[i] == '*' && s[i+1] == '/' {
					depth--
					i += 2
				} else {
					i++
				}
			}
			l.pos = i
		default:
			return true
		}
	}
	return true
}

// quoted scans a quoted construct whose opening quote is at l.pos-1.
// A doubled quote is an escaped quote; if backslash is set, a backslash
// escapes the next byte. It returns false if the quote is not closed.
func (l *lexer) quoted(q byte, backslash, plain bool) bool {
	s := l.s
	i := l.pos
	for i < len(s) {
		c := s[i]
		if c == '\\' {
			if plain && !l.scsOff {
				l.bs = true
			}
			if backslash {
				i += 2
				continue
			}
		}
		if c == q {
			if i+1 < len(s) && s[i+1] == q {
				i += 2
				continue
			}
			if q == '\'' {
				if j := l.continuation(i + 1); j > 0 {
					i = j
					continue
				}
			}
			l.pos = i + 1
			return true
		}
		i++
	}
	l.pos = len(s)
	return false
}

// bits scans a B'...' or X'...' string whose opening quote is at l.pos-1:
// it ends at the first quote (there is no escape, not even ”), unless a
// continuation follows.
func (l *lexer) bits() bool {
	s := l.s
	i := l.pos
	for {
		j := strings.IndexByte(s[i:], '\'')
		if j < 0 {
			l.pos = len(s)
			return false
		}
		i += j + 1
		if k := l.continuation(i); k > 0 {
			i = k
			continue
		}
		l.pos = i
		return true
	}
}

// continuation returns the index after the opening quote of a string
// constant that continues one ending just before i, or 0. As in the
// server's lexer, 'a'<newline>'b' is one constant 'ab', read on in the
// first part's mode (so E'x'<newline>'\” is one escaped string): between
// the parts, whitespace and -- comments with at least one newline.
// (libpg_query returns -- comments as tokens and does not continue across
// one; PostgreSQL 15 does, as checked against a server. noCommentJoin
// gives libpg_query's reading, for the tests that compare with it.)
func (l *lexer) continuation(i int) int {
	s := l.s
	nl := false
	for i < len(s) {
		c := s[i]
		switch {
		case c == '\n' || c == '\r':
			nl = true
			i++
		case c == ' ' || c == '\t' || c == '\f' || c == '\v':
			i++
		case c == '-' && i+1 < len(s) && s[i+1] == '-' && !l.noCommentJoin:
			j := i + 2
			for j < len(s) && s[j] != '\n' && s[j] != '\r' {
				j++
			}
			if j == len(s) {
				return 0
			}
			i = j
		case c == '\'' && nl:
			return i + 1
		default:
			return 0
		}
	}
	return 0
}

// dollarTag returns the length of a dollar-quote delimiter ($$ or $tag$)
// starting at i, or 0.
func dollarTag(s string, i int) int {
	j := i + 1
	if j < len(s) && s[j] != '$' {
		if !isIdentStart(s[j]) {
			return 0
		}
		for j < len(s) && (isIdentStart(s[j]) || isDigit(s[j])) {
			j++
		}
	}
	if j < len(s) && s[j] == '$' {
		return j + 1 - i
	}
	return 0
}

// next returns the next token.
func (l *lexer) next() (token, lexResult) {
	if !l.skip() {
		return token{}, lexBad
	}
	s := l.s
	if l.pos >= len(s) {
		return token{}, lexEOF
	}
	start := l.pos
	c := s[start]
	tok := token{start: int32(start)}
	ok := true
	switch {
	case isIdentStart(c):
		i := start + 1
		for i < len(s) && isIdentCont(s[i]) {
			i++
		}
		l.pos = i
		tok.kind = tkWord
		if i-start == 1 && i < len(s) {
			switch c | 0x20 {
			case 'e':
				if s[i] == '\'' {
					l.pos = i + 1
					tok.kind = tkString
					ok = l.quoted('\'', true, false)
				}
			case 'b', 'x':
				// Bit strings end at the first quote; there is no escape.
				if s[i] == '\'' {
					tok.kind = tkString
					l.pos = i + 1
					ok = l.bits()
				}
			case 'n':
				if s[i] == '\'' {
					l.pos = i + 1
					tok.kind = tkString
					ok = l.quoted('\'', l.scsOff, true)
				}
			case 'u':
				if s[i] == '&' && i+1 < len(s) && (s[i+1] == '\'' || s[i+1] == '"') {
					l.pos = i + 2
					if s[i+1] == '\'' {
						tok.kind = tkString
						ok = l.quoted('\'', false, false)
					} else {
						tok.kind = tkUQIdent
						ok = l.quoted('"', false, false)
					}
				}
			}
		}
	case c == '\'':
		l.pos = start + 1
		tok.kind = tkString
		ok = l.quoted('\'', l.scsOff, true)
	case c == '"':
		l.pos = start + 1
		tok.kind = tkQIdent
		ok = l.quoted('"', false, false)
	case c == '$':
		if start+1 < len(s) && isDigit(s[start+1]) {
			i := start + 1
			for i < len(s) && isDigit(s[i]) {
				i++
			}
			l.pos = i
			tok.kind = tkParam
			break
		}
		if n := dollarTag(s, start); n > 0 {
			tok.kind = tkDollar
			j := strings.Index(s[start+n:], s[start:start+n])
			if j < 0 {
				l.pos = len(s)
				ok = false
			} else {
				l.pos = start + n + j + n
			}
			break
		}
		l.pos = start + 1
		tok.kind = tkOp
	case isDigit(c) || c == '.' && start+1 < len(s) && isDigit(s[start+1]):
		// Only digits, one fraction and an exponent: anything glued after a
		// number is lexed as a separate token, which can only make more
		// keywords visible (older servers accept "1into t").
		i := start
		for i < len(s) && isDigit(s[i]) {
			i++
		}
		if i < len(s) && s[i] == '.' && !(i+1 < len(s) && s[i+1] == '.') {
			i++
			for i < len(s) && isDigit(s[i]) {
				i++
			}
		}
		if i < len(s) && (s[i] == 'e' || s[i] == 'E') {
			j := i + 1
			if j < len(s) && (s[j] == '+' || s[j] == '-') {
				j++
			}
			if j < len(s) && isDigit(s[j]) {
				for j < len(s) && isDigit(s[j]) {
					j++
				}
				i = j
			}
		}
		l.pos = i
		tok.kind = tkNumber
	default:
		l.pos = start + 1
		switch c {
		case '(':
			tok.kind = tkLParen
		case ')':
			tok.kind = tkRParen
		case ',':
			tok.kind = tkComma
		case '.':
			tok.kind = tkDot
		case ';':
			tok.kind = tkSemi
		default:
			tok.kind = tkOp
		}
	}
	tok.end = int32(l.pos)
	if !ok {
		return tok, lexBad
	}
	return tok, lexTok
}

// span is one statement found by split: the byte range [start,end) of the
// input (without the terminating semicolon) and its tokens toks[t0:t1].
type span struct {
	start, end int
	t0, t1     int
	bad        bool // unterminated quote/comment: the span runs to the end
	unbalanced bool // parentheses do not balance
}

// split lexes s and cuts it at top-level semicolons the way the server's
// simple-query parser sees statement boundaries. Statements without tokens
// (only whitespace and comments) are dropped. toks is reused as the token
// buffer and returned.
func split(s string, scsOff bool, toks []token) (spans []span, out []token, bs bool) {
	l := lexer{s: s, scsOff: scsOff}
	stmtStart := 0
	t0 := len(toks)
	var depth int32
	unbalanced := false
	for {
		tok, r := l.next()
		if r == lexBad {
			spans = append(spans, span{start: stmtStart, end: len(s), t0: t0, t1: len(toks), bad: true})
			return spans, toks, l.bs
		}
		if r == lexEOF {
			break
		}
		switch tok.kind {
		case tkSemi:
			if len(toks) > t0 {
				spans = append(spans, span{start: stmtStart, end: int(tok.start), t0: t0, t1: len(toks), unbalanced: unbalanced || depth != 0})
			}
			stmtStart = int(tok.end)
			t0 = len(toks)
			depth = 0
			unbalanced = false
			continue
		case tkLParen:
			tok.depth = depth
			depth++
		case tkRParen:
			depth--
			if depth < 0 {
				unbalanced = true
				depth = 0
			}
			tok.depth = depth
		default:
			tok.depth = depth
		}
		toks = append(toks, tok)
	}
	if len(toks) > t0 {
		spans = append(spans, span{start: stmtStart, end: len(s), t0: t0, t1: len(toks), unbalanced: unbalanced || depth != 0})
	}
	return spans, toks, l.bs
}

// complete reports whether s lexes to its end in both string modes without
// an unterminated quote, dollar quote or comment (a trailing -- comment
// counts as open, since text appended to s would be commented out).
func complete(s string) bool {
	for _, off := range []bool{false, true} {
		l := lexer{s: s, scsOff: off}
		for {
			_, r := l.next()
			if r == lexBad {
				return false
			}
			if r == lexEOF {
				break
			}
		}
		if l.openLine {
			return false
		}
	}
	return true
}

func trimSpace(s string) string {
	i, j := 0, len(s)
	for i < j && isSpace(s[i]) {
		i++
	}
	for j > i && isSpace(s[j-1]) {
		j--
	}
	return s[i:j]
}
