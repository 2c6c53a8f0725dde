// Package tomlpos finds where each key of a TOML document is written, so that
// configuration problems can be reported as file:line:col.
//
// BurntSushi/toml keeps key positions private and does not tell the entries
// of an array of tables apart, so this package makes a second, lenient pass
// over the source that tracks only keys and the structure around them.
//
// Paths name keys as "listeners[1].routes[0].target": segments joined by ".",
// with "[i]" (0-based) appended for an entry of an array of tables or an
// element of an array. Quoted keys appear raw, so the key "a.b" and the
// dotted key a.b both become the path "a.b". That ambiguity is accepted:
// such keys are rare, and the worst outcome is a report that points at the
// other of two same-named keys (or, in Lookup's fallback, at a parent).
package tomlpos

import (
	"bytes"
	"sort"
	"strconv"
	"strings"
)

// Pos is a 1-based line and column (column counted in bytes).
type Pos struct{ Line, Col int }

// Index maps a key path to the position where that key is written.
type Index struct {
	keys map[string]entry
}

type entry struct {
	pos Pos
	// implicit marks a table that so far only exists because a longer
	// dotted key or header named it; an explicit definition replaces it.
	implicit bool
}

// maxDepth bounds the nesting of arrays and inline tables so hostile input
// cannot exhaust the stack; real configurations nest a few levels at most.
const maxDepth = 256

// Scan indexes the keys of a TOML document. The document is expected to have
// already parsed successfully with BurntSushi/toml; Scan is lenient and never
// panics on any input (it may return a partial index for invalid TOML).
//
// A key written as `key = value` is indexed at the first byte of the key (for
// a dotted key a.b.c, the position of a, also used for the implied tables a
// and a.b). A header [a.b] or [[a.b]] is indexed at its "[". A table that is
// only implied points at its first mention, unless it is defined later.
// Array elements are indexed at the first byte of their value.
func Scan(src []byte) *Index {
	// Skip a byte order mark the same way BurntSushi/toml does, so that
	// columns on the first line match what editors show.
	for _, bom := range []string{"\xef\xbb\xbf", "\xff\xfe", "\xfe\xff"} {
		if bytes.HasPrefix(src, []byte(bom)) {
			src = src[len(bom):]
			break
		}
	}
	s := &scanner{
		src:    src,
		lines:  []int{0},
		arrays: map[string]int{},
		ix:     &Index{keys: map[string]entry{}},
	}
	for i, c := range src {
		if c == '\n' {
			s.lines = append(s.lines, i+1)
		}
	}
	s.document()
	return s.ix
}

// Lookup returns the position of a path such as "listeners[1].routes[0].target",
// "targets[0].credential", "access[2].claims.repository", "gateway.data_dir",
// or a table header path like "identity.dev". If the exact path is not present
// it falls back to the nearest ancestor that is (so an error on a key that was
// defaulted points at its table), and to Pos{1,1} if none is.
func (ix *Index) Lookup(path string) (Pos, bool) { // bool: exact match found
	if ix == nil {
		return Pos{1, 1}, false
	}
	if e, ok := ix.keys[path]; ok {
		return e.pos, true
	}
	for path != "" {
		// Drop the last ".name" or "[i]".
		i := strings.LastIndexAny(path, ".[")
		if i < 0 {
			break
		}
		path = path[:i]
		if e, ok := ix.keys[path]; ok {
			return e.pos, false
		}
	}
	return Pos{1, 1}, false
}

func (ix *Index) set(path string, p Pos, implicit bool) {
	path = strings.TrimPrefix(path, ".")
	if e, ok := ix.keys[path]; ok && (!e.implicit || implicit) {
		return // the first definition wins
	}
	ix.keys[path] = entry{p, implicit}
}

type scanner struct {
	src    []byte
	off    int            // current byte offset in src
	depth  int            // nesting of arrays and inline tables
	lines  []int          // offset where each line starts
	arrays map[string]int // entries seen per array of tables, by resolved path
	ix     *Index
}

func (s *scanner) pos(off int) Pos {
	line := sort.SearchInts(s.lines, off+1) // lines starting at or before off
	return Pos{line, off - s.lines[line-1] + 1}
}

func (s *scanner) at(c byte) bool { return s.off < len(s.src) && s.src[s.off] == c }

func (s *scanner) has(prefix string) bool {
	return bytes.HasPrefix(s.src[s.off:], []byte(prefix))
}

// skipSpace skips spaces and tabs; a '\r' is skipped too so CRLF files work.
func (s *scanner) skipSpace() {
	for s.at(' ') || s.at('\t') || s.at('\r') {
		s.off++
	}
}

// skipBlank skips whitespace, newlines and comments.
func (s *scanner) skipBlank() {
	for {
		s.skipSpace()
		switch {
		case s.at('\n'):
			s.off++
		case s.at('#'):
			s.skipLine()
		default:
			return
		}
	}
}

// skipLine moves to the next newline; used after a top-level item to drop a
// trailing comment, or whatever is left of a line we could not understand.
func (s *scanner) skipLine() {
	for s.off < len(s.src) && s.src[s.off] != '\n' {
		s.off++
	}
}

func (s *scanner) document() {
	table := "" // path of the current [table] or [[array]] entry
	for s.skipBlank(); s.off < len(s.src); s.skipBlank() {
		if s.at('[') {
			table = s.header(table)
		} else {
			s.keyval(table)
		}
		s.skipLine()
	}
}

// header reads [a.b] or [[a.b]] and returns the path that following keys
// belong to. Every segment but the last refers to the latest entry if it
// names an array of tables, which is how [[listeners.routes]] attaches to
// the last [[listeners]].
func (s *scanner) header(table string) string {
	p := s.pos(s.off)
	s.off++
	isArray := s.at('[')
	if isArray {
		s.off++
	}
	s.skipSpace()
	segs, ok := s.key()
	if !ok {
		return table
	}
	path := ""
	for _, seg := range segs[:len(segs)-1] {
		path = join(path, seg)
		s.ix.set(path, p, true)
		if n := s.arrays[path]; n > 0 {
			path += index(n - 1)
		}
	}
	path = join(path, segs[len(segs)-1])
	if !isArray {
		s.ix.set(path, p, false)
		return path
	}
	n := s.arrays[path]
	s.arrays[path] = n + 1
	s.ix.set(path, p, false)
	path += index(n)
	s.ix.set(path, p, false)
	return path
}

// keyval reads `key = value` inside table (a path, "" for the root) and
// reports whether it was well formed.
func (s *scanner) keyval(table string) bool {
	p := s.pos(s.off)
	segs, ok := s.key()
	if !ok {
		return false
	}
	path := table
	for _, seg := range segs[:len(segs)-1] {
		path = join(path, seg)
		s.ix.set(path, p, true)
	}
	path = join(path, segs[len(segs)-1])
	s.ix.set(path, p, false)
	s.skipSpace()
	if !s.at('=') {
		return false
	}
	s.off++
	s.skipSpace()
	return s.value(path)
}

// key reads a possibly dotted key and returns its unquoted segments.
func (s *scanner) key() ([]string, bool) {
	var segs []string
	for {
		seg, ok := s.keySegment()
		if !ok {
			return nil, false
		}
		segs = append(segs, seg)
		s.skipSpace()
		if !s.at('.') {
			return segs, true
		}
		s.off++
		s.skipSpace()
	}
}

func (s *scanner) keySegment() (string, bool) {
	switch {
	case s.at('"'):
		return s.basicString()
	case s.at('\''):
		return s.literalString()
	}
	start := s.off
	for s.off < len(s.src) && isBare(s.src[s.off]) {
		s.off++
	}
	return string(s.src[start:s.off]), s.off > start
}

// isBare accepts more than TOML's [A-Za-z0-9_-] so that stray bytes in
// invalid input still form some key instead of stopping the scan.
func isBare(c byte) bool {
	return !strings.ContainsRune(" \t\r\n=.[]\"'#,{}", rune(c))
}

// value skips one value, indexing the keys of inline tables and the elements
// of arrays under path.
func (s *scanner) value(path string) bool {
	if s.depth >= maxDepth {
		return false
	}
	s.depth++
	defer func() { s.depth-- }()
	switch {
	case s.off >= len(s.src):
		return false
	case s.has(`"""`):
		return s.multiline('"')
	case s.has(`'''`):
		return s.multiline('\'')
	case s.at('"'):
		_, ok := s.basicString()
		return ok
	case s.at('\''):
		_, ok := s.literalString()
		return ok
	case s.at('['):
		return s.array(path)
	case s.at('{'):
		return s.inlineTable(path)
	}
	// Numbers, booleans and dates; a date may contain a space.
	start := s.off
	for s.off < len(s.src) && !strings.ContainsRune(",]}#\n", rune(s.src[s.off])) {
		s.off++
	}
	return s.off > start
}

func (s *scanner) array(path string) bool {
	s.off++
	for i := 0; ; i++ {
		s.skipBlank()
		if s.at(']') {
			s.off++
			return true
		}
		if s.off >= len(s.src) {
			return false
		}
		elem := path + index(i)
		s.ix.set(elem, s.pos(s.off), false)
		if !s.value(elem) {
			return false
		}
		s.skipBlank()
		if !s.at(',') && !s.at(']') {
			return false
		}
		if s.at(',') {
			s.off++
		}
	}
}

// inlineTable also accepts newlines, comments and a trailing comma, which
// TOML 1.1 (and so BurntSushi/toml v1.6) allows.
func (s *scanner) inlineTable(path string) bool {
	s.off++
	for {
		s.skipBlank()
		if s.at('}') {
			s.off++
			return true
		}
		if !s.keyval(path) {
			return false
		}
		s.skipBlank()
		if !s.at(',') && !s.at('}') {
			return false
		}
		if s.at(',') {
			s.off++
		}
	}
}

// basicString reads a "..." string and decodes its escapes, because a quoted
// key must match the name BurntSushi/toml reports.
func (s *scanner) basicString() (string, bool) {
	var b strings.Builder
	s.off++
	for s.off < len(s.src) {
		c := s.src[s.off]
		switch {
		case c == '"':
			s.off++
			return b.String(), true
		case c == '\n':
			return "", false
		case c == '\\' && s.off+1 < len(s.src) && s.src[s.off+1] != '\n':
			s.off += 2
			s.escape(&b, s.src[s.off-1])
		default:
			b.WriteByte(c)
			s.off++
		}
	}
	return "", false
}

var escapes = map[byte]string{
	'b': "\b", 't': "\t", 'n': "\n", 'f': "\f", 'r': "\r",
	'e': "\x1b", '"': `"`, '\\': `\`,
}

var hexLen = map[byte]int{'x': 2, 'u': 4, 'U': 8}

// escape writes the character for the escape \e that was just read.
func (s *scanner) escape(b *strings.Builder, e byte) {
	if r, ok := escapes[e]; ok {
		b.WriteString(r)
		return
	}
	if n := hexLen[e]; n > 0 && s.off+n <= len(s.src) {
		if v, err := strconv.ParseUint(string(s.src[s.off:s.off+n]), 16, 32); err == nil {
			b.WriteRune(rune(v)) // invalid code points become U+FFFD
			s.off += n
			return
		}
	}
	b.WriteByte('\\')
	b.WriteByte(e)
}

func (s *scanner) literalString() (string, bool) {
	s.off++
	start := s.off
	for s.off < len(s.src) && s.src[s.off] != '\'' && s.src[s.off] != '\n' {
		s.off++
	}
	if !s.at('\'') {
		return "", false
	}
	s.off++
	return string(s.src[start : s.off-1]), true
}

// multiline skips a """ or ”' string. Up to two extra quotes before the
// closing delimiter belong to the content, as TOML specifies.
func (s *scanner) multiline(q byte) bool {
	delim := strings.Repeat(string(q), 3)
	s.off += 3
	for s.off < len(s.src) {
		switch {
		case q == '"' && s.at('\\'):
			s.off = min(s.off+2, len(s.src)) // also covers line continuations
		case s.has(delim):
			s.off += 3
			for k := 0; k < 2 && s.at(q); k++ {
				s.off++
			}
			return true
		default:
			s.off++
		}
	}
	return false
}

// join adds a segment to a path. Paths are built with a leading "." that
// set removes, so that an empty quoted key at the root ("" = 1) stays
// distinct from the root itself.
func join(path, seg string) string { return path + "." + seg }

func index(i int) string { return "[" + strconv.Itoa(i) + "]" }
