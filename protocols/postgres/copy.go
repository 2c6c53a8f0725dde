package postgres

import (
	"bytes"
	"strings"

	"github.com/tollgate-dev/tollgate/host/event"
)

// COPY TO STDOUT sends lines, not rows, and no column names. So that the
// masking plugins see the same columns as for a SELECT, the gateway asks
// the server to describe the equivalent query first (Parse and Describe
// of the unnamed statement, which the simple Query that follows discards
// anyway), then splits each line into fields named after those columns.
// When that fails (binary format, options that change how lines split, a
// COPY sent through the extended protocol), the data is withheld with an
// error: masking by column name must not be bypassed by asking for COPY.

// copyFormat is how a COPY TO STDOUT writes its lines.
type copyFormat uint8

const (
	copyText copyFormat = iota
	copyCSV
	copyBinary
)

// copyOut recognizes a single COPY ... TO STDOUT statement and returns a
// SELECT with the same columns, and the format. ok is false for anything
// else (COPY FROM, several statements, a form it does not read).
func copyOut(sql string) (query string, f copyFormat, ok bool) {
	s := strings.TrimSpace(sql)
	s = strings.TrimSuffix(s, ";")
	if len(s) < 5 || !strings.EqualFold(s[:4], "copy") || !isSpace(s[4]) && s[4] != '(' {
		return "", 0, false
	}
	rest := strings.TrimSpace(s[4:])
	var src string
	if strings.HasPrefix(rest, "(") {
		end := matchParen(rest)
		if end < 0 {
			return "", 0, false
		}
		query, rest = rest[1:end], rest[end+1:]
	} else {
		// table [ ( columns ) ]
		i := 0
		for i < len(rest) && (isIdent(rest[i]) || rest[i] == '.' || rest[i] == '"') {
			if rest[i] == '"' {
				j := strings.IndexByte(rest[i+1:], '"')
				if j < 0 {
					return "", 0, false
				}
				i += j + 2
				continue
			}
			i++
		}
		src, rest = rest[:i], strings.TrimSpace(rest[i:])
		if src == "" {
			return "", 0, false
		}
		cols := "*"
		if strings.HasPrefix(rest, "(") {
			end := matchParen(rest)
			if end < 0 {
				return "", 0, false
			}
			cols, rest = rest[1:end], rest[end+1:]
		}
		query = "SELECT " + cols + " FROM " + src
	}
	words := strings.Fields(strings.ToLower(strings.NewReplacer("(", " ", ")", " ", ",", " ", "'", " ").Replace(rest)))
	if len(words) < 2 || words[0] != "to" || words[1] != "stdout" {
		return "", 0, false
	}
	for i, w := range words {
		switch {
		case w == "binary":
			f = copyBinary
		case w == "csv":
			f = copyCSV
		case w == "format" && i+1 < len(words):
			switch words[i+1] {
			case "binary":
				f = copyBinary
			case "csv":
				f = copyCSV
			}
		case w == "delimiter" || w == "null" || w == "quote" || w == "escape":
			// Options that change how lines split: read lines whole.
			return "", 0, false
		}
	}
	return query, f, strings.Count(query, ";") == 0
}

func isSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' }

func isIdent(c byte) bool {
	return c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c >= 0x80
}

// matchParen returns the index of the parenthesis closing s[0], skipping
// quoted text, or -1.
func matchParen(s string) int {
	depth := 0
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case '(':
			depth++
		case ')':
			depth--
			if depth == 0 {
				return i
			}
		case '\'', '"':
			j := strings.IndexByte(s[i+1:], s[i])
			if j < 0 {
				return -1
			}
			i += j + 1
		case '$':
			// Dollar quoting: $tag$ ... $tag$
			j := strings.IndexByte(s[i+1:], '$')
			if j < 0 {
				continue
			}
			tag := s[i : i+j+2]
			k := strings.Index(s[i+len(tag):], tag)
			if k < 0 {
				return -1
			}
			i += len(tag) + k + len(tag) - 1
		}
	}
	return -1
}

// splitCopyLine splits one text- or CSV-format line into cells, unescaped,
// appending to cells; the values are copied into arena. ok is false when
// the line is not one it can rebuild exactly.
func splitCopyLine(line []byte, f copyFormat, arena []byte, cells []event.Cell) ([]byte, []event.Cell, bool) {
	line = bytes.TrimSuffix(line, []byte{'\n'})
	if f == copyCSV {
		return splitCSV(line, arena, cells)
	}
	for {
		i := bytes.IndexByte(line, '\t')
		field := line
		if i >= 0 {
			field = line[:i]
		}
		if string(field) == `\N` {
			cells = append(cells, event.Cell{Null: true})
		} else {
			off := len(arena)
			for j := 0; j < len(field); j++ {
				c := field[j]
				if c == '\\' && j+1 < len(field) {
					j++
					switch field[j] {
					case 't':
						c = '\t'
					case 'n':
						c = '\n'
					case 'r':
						c = '\r'
					case '\\':
						c = '\\'
					case 'b':
						c = '\b'
					case 'f':
						c = '\f'
					case 'v':
						c = '\v'
					default:
						// Octal, hex and the rest: keep the line whole.
						return arena, cells, false
					}
				}
				arena = append(arena, c)
			}
			cells = append(cells, event.Cell{Data: arena[off:len(arena):len(arena)]})
		}
		if i < 0 {
			return arena, cells, true
		}
		line = line[i+1:]
	}
}

func splitCSV(line, arena []byte, cells []event.Cell) ([]byte, []event.Cell, bool) {
	for {
		off := len(arena)
		if len(line) > 0 && line[0] == '"' {
			j := 1
			for {
				if j >= len(line) {
					return arena, cells, false // a quoted newline: not one line
				}
				if line[j] == '"' {
					if j+1 < len(line) && line[j+1] == '"' {
						arena = append(arena, '"')
						j += 2
						continue
					}
					break
				}
				arena = append(arena, line[j])
				j++
			}
			cells = append(cells, event.Cell{Data: arena[off:len(arena):len(arena)]})
			line = line[j+1:]
		} else {
			i := bytes.IndexByte(line, ',')
			field := line
			if i >= 0 {
				field = line[:i]
			}
			if len(field) == 0 {
				cells = append(cells, event.Cell{Null: true})
			} else {
				arena = append(arena, field...)
				cells = append(cells, event.Cell{Data: arena[off:len(arena):len(arena)]})
			}
			line = line[len(field):]
		}
		if len(line) == 0 {
			return arena, cells, true
		}
		if line[0] != ',' {
			return arena, cells, false
		}
		line = line[1:]
	}
}

// appendCopyLine encodes cells as one line in format f.
func appendCopyLine(dst []byte, f copyFormat, row []event.Cell) []byte {
	for i, c := range row {
		if i > 0 {
			if f == copyCSV {
				dst = append(dst, ',')
			} else {
				dst = append(dst, '\t')
			}
		}
		switch {
		case c.Null && f == copyCSV:
		case c.Null:
			dst = append(dst, '\\', 'N')
		case f == copyCSV:
			if len(c.Data) == 0 || bytes.ContainsAny(c.Data, ",\"\n\r") {
				dst = append(dst, '"')
				for _, b := range c.Data {
					if b == '"' {
						dst = append(dst, '"')
					}
					dst = append(dst, b)
				}
				dst = append(dst, '"')
			} else {
				dst = append(dst, c.Data...)
			}
		default:
			for _, b := range c.Data {
				switch b {
				case '\\':
					dst = append(dst, '\\', '\\')
				case '\t':
					dst = append(dst, '\\', 't')
				case '\n':
					dst = append(dst, '\\', 'n')
				case '\r':
					dst = append(dst, '\\', 'r')
				case '\b':
					dst = append(dst, '\\', 'b')
				case '\f':
					dst = append(dst, '\\', 'f')
				case '\v':
					dst = append(dst, '\\', 'v')
				default:
					dst = append(dst, b)
				}
			}
		}
	}
	return append(dst, '\n')
}
