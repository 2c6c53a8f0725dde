// Package sqlparam binds named parameters into analyst SQL on the
// client side, for every ClickHouse the audit store runs on.
//
// A query names its parameters as ClickHouse does, {name:Type}; current
// servers could bind those themselves, but 18.16 (the oldest the schema
// supports) rejects them. So the gateway substitutes each placeholder
// with a literal of its type, built from a value it has parsed and
// checked (a number is a number, a time a time, a string escaped): the
// value can never end the literal and become SQL. Placeholders inside
// string literals, quoted identifiers and comments are left alone, so a
// query's comments may show them.
package sqlparam

import (
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"
)

// Param is one {name:Type} placeholder of a query.
type Param struct {
	Name string
	Type string
}

// placeholder is a Param and where it sits in the query text.
type placeholder struct {
	Param
	start, end int // sql[start:end] is the whole {name:Type}
}

// Params lists a query's parameters, each once, in order of first use.
func Params(sql string) ([]Param, error) {
	phs, err := find(sql)
	if err != nil {
		return nil, err
	}
	var out []Param
	seen := map[string]bool{}
	for _, p := range phs {
		if !seen[p.Name] {
			seen[p.Name] = true
			out = append(out, p.Param)
		}
	}
	return out, nil
}

// Bind returns sql with every placeholder replaced by the literal of its
// value in values. It fails, naming them, on a missing value, on a value
// no placeholder uses (a typo would silently widen the answer), and on a
// value its type does not accept. now anchors relative times ("-24h").
func Bind(sql string, values map[string]string, now time.Time) (string, error) {
	phs, err := find(sql)
	if err != nil {
		return "", err
	}
	used := map[string]bool{}
	var missing []string
	for _, p := range phs {
		if _, ok := values[p.Name]; !ok && !used[p.Name] {
			missing = append(missing, fmt.Sprintf("%s (%s)", p.Name, p.Type))
		}
		used[p.Name] = true
	}
	var unknown []string
	for name := range values {
		if !used[name] {
			unknown = append(unknown, name)
		}
	}
	sort.Strings(unknown)
	var errs []error
	if len(missing) > 0 {
		errs = append(errs, fmt.Errorf("missing parameter %s: pass --param name=value", strings.Join(missing, ", ")))
	}
	if len(unknown) > 0 {
		errs = append(errs, fmt.Errorf("unknown parameter %s: the query takes %s", strings.Join(unknown, ", "), describe(phs)))
	}
	if len(errs) > 0 {
		return "", errors.Join(errs...)
	}
	var b strings.Builder
	last := 0
	for _, p := range phs {
		lit, err := Literal(p.Type, values[p.Name], now)
		if err != nil {
			return "", fmt.Errorf("parameter %s: %w", p.Name, err)
		}
		b.WriteString(sql[last:p.start])
		b.WriteString(lit)
		last = p.end
	}
	b.WriteString(sql[last:])
	return b.String(), nil
}

// describe lists the parameters for an error message.
func describe(phs []placeholder) string {
	seen := map[string]bool{}
	var names []string
	for _, p := range phs {
		if !seen[p.Name] {
			seen[p.Name] = true
			names = append(names, p.Name+" ("+p.Type+")")
		}
	}
	if len(names) == 0 {
		return "no parameters"
	}
	return strings.Join(names, ", ")
}

// find locates the placeholders outside literals and comments. A brace
// there that does not open a well-formed {name:Type} is an error: it is
// either a placeholder written wrong (the old {from}) or not ClickHouse.
func find(sql string) ([]placeholder, error) {
	var out []placeholder
	types := map[string]string{}
	var err error
	Scan(sql, func(i int) int {
		if sql[i] != '{' || err != nil {
			return i
		}
		end := strings.IndexByte(sql[i:], '}')
		if end < 0 {
			err = fmt.Errorf("offset %d: '{' without '}': a parameter is written {name:Type}", i)
			return len(sql)
		}
		body := sql[i+1 : i+end]
		name, typ, ok := strings.Cut(body, ":")
		name, typ = strings.TrimSpace(name), strings.TrimSpace(typ)
		switch {
		case !ok:
			err = fmt.Errorf("placeholder {%s} has no type: write {%s:String}, {%s:DateTime}...", body, name, name)
		case !isIdent(name):
			err = fmt.Errorf("placeholder {%s}: %q is not a parameter name (letters, digits, _)", body, name)
		case !Supported(typ):
			err = fmt.Errorf("placeholder {%s}: type %q is not one of %s", body, typ, strings.Join(supported, ", "))
		case types[name] != "" && types[name] != typ:
			err = fmt.Errorf("parameter %s is used as %s and as %s", name, types[name], typ)
		}
		if err != nil {
			return len(sql)
		}
		types[name] = typ
		out = append(out, placeholder{Param{name, typ}, i, i + end + 1})
		return i + end
	})
	return out, err
}

// Scan calls f for each byte of sql outside string literals, quoted
// identifiers and comments; f returns the offset it consumed up to
// (len(sql) stops the scan).
func Scan(sql string, f func(i int) int) {
	for i := 0; i < len(sql); i++ {
		switch c := sql[i]; {
		case c == '\'' || c == '"' || c == '`':
			for i++; i < len(sql) && sql[i] != c; i++ {
				if sql[i] == '\\' {
					i++
				}
			}
		case c == '-' && strings.HasPrefix(sql[i:], "--"), c == '#' && strings.HasPrefix(sql[i:], "#!"):
			for i < len(sql) && sql[i] != '\n' {
				i++
			}
		case c == '/' && strings.HasPrefix(sql[i:], "/*"):
			end := strings.Index(sql[i+2:], "*/")
			if end < 0 {
				return
			}
			i += end + 3
		default:
			i = f(i)
		}
	}
}

func isIdent(s string) bool {
	if s == "" || s[0] >= '0' && s[0] <= '9' {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c == '_' || c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z') {
			return false
		}
	}
	return true
}
