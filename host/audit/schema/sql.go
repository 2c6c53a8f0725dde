package schema

import "strings"

// readOnlyWords are the statements analysts may run against either store.
var readOnlyWords = []string{"SELECT", "SHOW", "DESCRIBE", "DESC", "EXISTS", "WITH", "EXPLAIN"}

// ReadOnly reports whether sql starts, after comments and parentheses, with
// a statement that only reads. It is a first gate for the stores' Query;
// the servers' own readonly setting is the second.
func ReadOnly(sql string) bool {
	s := Leading(sql)
	for _, w := range readOnlyWords {
		if len(s) > len(w) && strings.EqualFold(s[:len(w)], w) && !isWord(s[len(w)]) {
			return true
		}
	}
	return false
}

// Leading is sql from its first word, after comments and parentheses.
func Leading(sql string) string {
	s := sql
	for {
		s = strings.TrimLeft(s, " \t\r\n(")
		switch {
		case strings.HasPrefix(s, "--"):
			_, s, _ = strings.Cut(s, "\n")
			continue
		case strings.HasPrefix(s, "/*"):
			_, s, _ = strings.Cut(s, "*/")
			continue
		}
		return s
	}
}

func isWord(c byte) bool {
	return c == '_' || c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z'
}

// Map is the inverse of Pairs: parallel key and value arrays as a map
// (nil when empty, as in audit.Row).
func Map(keys, values []string) map[string]string {
	if len(keys) == 0 {
		return nil
	}
	m := make(map[string]string, len(keys))
	for i, k := range keys {
		if i < len(values) {
			m[k] = values[i]
		}
	}
	return m
}
