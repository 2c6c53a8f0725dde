package ssh

import (
	"errors"
	"strings"
)

// Split splits a command line into words the way a POSIX shell does before
// expansion, for plugins that reason about argv (guard's command rules):
// blanks separate words; single quotes keep everything literally; inside
// double quotes a backslash escapes only $ ` " \ and newline; outside
// quotes a backslash escapes the next character and a backslash-newline
// disappears; a # at the start of a word starts a comment. The control
// operators && || ;; ; & | ( ) and the redirections < > >> <& >& <> >|
// are words of their own, so that "a;b" splits as [a ; b], and so is a
// newline (one "\n" word for a run of them, none at the start).
//
// Nothing is expanded: $VAR, $(cmd), `cmd`, globs and ~ stay as written.
// An unterminated quote or a trailing backslash is an error (the command
// still runs if policy allows it; the remote shell decides what it means).
func Split(line string) ([]string, error) {
	var (
		words  []string
		cur    strings.Builder
		inWord bool
	)
	flush := func() {
		if inWord {
			words = append(words, cur.String())
			cur.Reset()
			inWord = false
		}
	}
	for i := 0; i < len(line); i++ {
		c := line[i]
		switch {
		case c == ' ' || c == '\t':
			flush()
		case c == '\n':
			// A newline separates commands as ; does: a word of its own,
			// so that "true\nrm -rf /" does not read as one command.
			flush()
			if len(words) > 0 && words[len(words)-1] != "\n" {
				words = append(words, "\n")
			}
		case c == '\\':
			if i+1 >= len(line) {
				return words, errors.New("trailing backslash")
			}
			i++
			if line[i] == '\n' {
				continue // line continuation
			}
			cur.WriteByte(line[i])
			inWord = true
		case c == '\'':
			j := strings.IndexByte(line[i+1:], '\'')
			if j < 0 {
				return words, errors.New("unterminated single quote")
			}
			cur.WriteString(line[i+1 : i+1+j])
			inWord = true
			i += j + 1
		case c == '"':
			inWord = true
			closed := false
			for i++; i < len(line); i++ {
				d := line[i]
				if d == '"' {
					closed = true
					break
				}
				if d == '\\' && i+1 < len(line) {
					switch n := line[i+1]; n {
					case '$', '`', '"', '\\':
						cur.WriteByte(n)
						i++
						continue
					case '\n':
						i++
						continue
					}
				}
				cur.WriteByte(d)
			}
			if !closed {
				return words, errors.New("unterminated double quote")
			}
		case c == '$' && i+1 < len(line) && (line[i+1] == '(' || line[i+1] == '{'),
			c == '`':
			// A substitution is part of the word, kept as written.
			n, err := substitution(line[i:])
			if err != nil {
				return words, err
			}
			cur.WriteString(line[i : i+n])
			inWord = true
			i += n - 1
		case c == '#' && !inWord:
			j := strings.IndexByte(line[i:], '\n')
			if j < 0 {
				i = len(line)
			} else {
				i += j - 1 // the newline still ends the command
			}
		case strings.IndexByte(";&|()<>", c) >= 0:
			flush()
			op := operator(line[i:])
			words = append(words, op)
			i += len(op) - 1
		default:
			cur.WriteByte(c)
			inWord = true
		}
	}
	flush()
	return words, nil
}

// substitution is the length of the $(...), ${...} or `...` at the
// start of s, nested parentheses and braces counted.
func substitution(s string) (int, error) {
	if s[0] == '`' {
		for i := 1; i < len(s); i++ {
			switch s[i] {
			case '\\':
				i++
			case '`':
				return i + 1, nil
			}
		}
		return 0, errors.New("unterminated backquote")
	}
	open, closing := s[1], byte(')')
	if open == '{' {
		closing = '}'
	}
	depth := 0
	for i := 1; i < len(s); i++ {
		switch s[i] {
		case '\\':
			i++
		case open:
			depth++
		case closing:
			depth--
			if depth == 0 {
				return i + 1, nil
			}
		}
	}
	return 0, errors.New("unterminated " + s[:2])
}

// operators, longest first.
var operators = []string{"\n", "&&", "||", ";;", ">>", "<<", "<&", ">&", "<>", ">|", ";", "&", "|", "(", ")", "<", ">"}

func operator(s string) string {
	for _, op := range operators {
		if strings.HasPrefix(s, op) {
			return op
		}
	}
	return s[:1]
}

// Quote returns w quoted so that Split gives it back as one word.
func Quote(w string) string {
	if w != "" && strings.IndexFunc(w, func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("-_./=:,+@%", r))
	}) < 0 {
		return w
	}
	return "'" + strings.ReplaceAll(w, "'", `'\''`) + "'"
}

// separators end a simple command.
var separators = map[string]bool{"\n": true, ";": true, "&": true, "&&": true, "||": true, "|": true, "(": true, ")": true, ";;": true}

// shells whose -c argument is itself a command line.
var shells = map[string]bool{"sh": true, "bash": true, "dash": true, "zsh": true, "ksh": true, "ash": true}

// SimpleCommands lists the simple commands of a split command line, in a
// form policy globs can match: words joined by one space, the program's
// directory removed ("/bin/rm -rf /" is "rm -rf /"), leading VAR=value
// assignments dropped. The command lines inside `sh -c '...'` (and bash,
// dash, zsh, ksh, ash) and inside $(...) and `...` are listed too, so that
// "true; rm -rf /", "bash -c 'rm -rf /'" and "echo $(rm -rf /)" all show
// "rm -rf /". Best effort: a shell can always build a command at run time
// (eval, variables), which no parser sees.
func SimpleCommands(words []string) []string {
	var out []string
	simpleCommands(words, 0, &out)
	return out
}

const maxNesting = 4

func simpleCommands(words []string, depth int, out *[]string) {
	var cur []string
	end := func() {
		for len(cur) > 0 && isAssignment(cur[0]) {
			cur = cur[1:]
		}
		if len(cur) == 0 {
			return
		}
		if i := strings.LastIndexByte(cur[0], '/'); i >= 0 && i < len(cur[0])-1 {
			cur[0] = cur[0][i+1:]
		}
		*out = append(*out, strings.Join(cur, " "))
		if depth < maxNesting && shells[cur[0]] && len(cur) >= 3 && cur[1] == "-c" {
			if inner, err := Split(cur[2]); err == nil {
				simpleCommands(inner, depth+1, out)
			}
		}
		cur = nil
	}
	for _, w := range words {
		if separators[w] {
			end()
			continue
		}
		if depth < maxNesting {
			for _, inner := range substitutions(w) {
				if iw, err := Split(inner); err == nil {
					simpleCommands(iw, depth+1, out)
				}
			}
		}
		cur = append(cur, w)
	}
	end()
}

// substitutions are the command lines inside a word's $(...) and `...`.
func substitutions(w string) []string {
	var out []string
	for i := 0; i < len(w); i++ {
		if w[i] != '`' && (w[i] != '$' || i+1 >= len(w) || w[i+1] != '(') {
			continue
		}
		n, err := substitution(w[i:])
		if err != nil {
			return out
		}
		if w[i] == '`' {
			out = append(out, w[i+1:i+n-1])
		} else {
			out = append(out, w[i+2:i+n-1])
		}
		i += n - 1
	}
	return out
}

func isAssignment(w string) bool {
	eq := strings.IndexByte(w, '=')
	if eq <= 0 {
		return false
	}
	for i, c := range w[:eq] {
		if !(c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || i > 0 && c >= '0' && c <= '9') {
			return false
		}
	}
	return true
}
