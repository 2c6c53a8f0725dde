package plugin

import (
	"strings"
	"unicode/utf8"
)

// recordDecoded is what a record-only mask also searches: the value with
// the encodings a client may wrap a secret in undone, %XX escapes (a
// query, a form body) and JSON's \uXXXX and \/ escapes (a JSON body:
// "ghp\u005f..."), mixed, a few layers deep.
func recordDecoded(s string) string {
	for range 3 {
		d := jsonUnescaped(percentDecoded(s))
		if d == s {
			break
		}
		s = d
	}
	return s
}

// jsonUnescaped replaces JSON's \uXXXX escapes of characters that need no
// escape, and \/, with the characters themselves. Escapes a JSON string
// needs (a quote, a backslash, a control character) and surrogates stay,
// and an escaped backslash is skipped whole, so valid JSON stays valid
// and means the same.
func jsonUnescaped(s string) string {
	i := strings.IndexByte(s, '\\')
	if i < 0 {
		return s
	}
	b := make([]byte, 0, len(s))
	b = append(b, s[:i]...)
	for ; i < len(s); i++ {
		c := s[i]
		if c != '\\' || i+1 >= len(s) {
			b = append(b, c)
			continue
		}
		switch s[i+1] {
		case '/':
			b = append(b, '/')
			i++
			continue
		case 'u':
			if r, ok := hex4(s[i+2:]); ok && r >= 0x20 && r != '"' && r != '\\' && !(r >= 0xd800 && r <= 0xdfff) {
				b = utf8.AppendRune(b, r)
				i += 5
				continue
			}
		}
		// Any other escape, \\ included, is kept as it is, both bytes.
		b = append(b, c, s[i+1])
		i++
	}
	return string(b)
}

// hex4 reads four hex digits at the start of s.
func hex4(s string) (rune, bool) {
	if len(s) < 4 {
		return 0, false
	}
	var r rune
	for j := range 4 {
		if !isHex(s[j]) {
			return 0, false
		}
		r = r<<4 | rune(unhex(s[j]))
	}
	return r, true
}
