package admin

import (
	"strings"

	"github.com/tollgate-dev/tollgate/host/approval"
)

// token is one highlighted piece of a request; Class is one of a fixed set
// (kw, str, num, com, op, or empty) and Text is escaped by the template.
type token struct{ Class, Text string }

// highlight splits the request a reviewer must read into tokens: SQL gets
// keywords, strings, numbers and comments marked; HTTP its method and
// query; anything else is shown as it is.
func highlight(r approval.Record) []token {
	f := r.Fields
	switch {
	case f["sql"] != "":
		return sqlTokens(f["sql"])
	case f["command"] != "":
		return []token{{"", f["command"]}}
	case f["method"] != "":
		t := []token{{"kw", f["method"]}, {"", " " + f["path"]}}
		if q := f["query"]; q != "" {
			t = append(t, token{"op", "?"}, token{"str", q})
		}
		return t
	}
	return nil
}

var sqlKeywords = map[string]bool{}

func init() {
	for _, k := range strings.Fields(`select from where and or not in is null insert into values update set delete
		drop table create alter truncate grant revoke join left right inner outer on as order by group having limit
		offset returning with union all distinct case when then else end begin commit rollback exists like between
		cascade index view database schema primary key references default copy vacuum`) {
		sqlKeywords[k] = true
	}
}

// sqlTokens is a lexer good enough to colour a statement; it never drops a
// byte: the concatenated tokens are the input.
func sqlTokens(s string) []token {
	var out []token
	emit := func(class string, text string) {
		if n := len(out); n > 0 && out[n-1].Class == class {
			out[n-1].Text += text
			return
		}
		out = append(out, token{class, text})
	}
	for i := 0; i < len(s); {
		c := s[i]
		switch {
		case c == '\'' || c == '"':
			j := i + 1
			for j < len(s) {
				if s[j] == c {
					if j+1 < len(s) && s[j+1] == c {
						j += 2
						continue
					}
					j++
					break
				}
				j++
			}
			class := "str"
			if c == '"' {
				class = ""
			}
			emit(class, s[i:j])
			i = j
		case strings.HasPrefix(s[i:], "--"):
			j := strings.IndexByte(s[i:], '\n')
			if j < 0 {
				j = len(s) - i
			}
			emit("com", s[i:i+j])
			i += j
		case strings.HasPrefix(s[i:], "/*"):
			j := strings.Index(s[i+2:], "*/")
			end := len(s)
			if j >= 0 {
				end = i + 2 + j + 2
			}
			emit("com", s[i:end])
			i = end
		case c >= '0' && c <= '9':
			j := i
			for j < len(s) && (s[j] >= '0' && s[j] <= '9' || s[j] == '.') {
				j++
			}
			emit("num", s[i:j])
			i = j
		case isWord(c):
			j := i
			for j < len(s) && (isWord(s[j]) || s[j] >= '0' && s[j] <= '9') {
				j++
			}
			w := s[i:j]
			if sqlKeywords[strings.ToLower(w)] {
				out = append(out, token{"kw", w})
			} else {
				emit("", w)
			}
			i = j
		default:
			emit("", s[i:i+1])
			i++
		}
	}
	return out
}

func isWord(c byte) bool {
	return c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= 0x80
}
