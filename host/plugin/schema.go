package plugin

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"reflect"
	"sort"
	"strings"
	"time"

	"github.com/tollgate-dev/tollgate/host/config"
)

// Schema is what a plugin declares of its [plugins.config] table with the
// config_schema import (sdk/ABI.md, "Config schema"): one node per value.
type Schema struct {
	// Type is string, integer, number, boolean, array, table or any.
	Type string `json:"type"`
	// Keys are a table's keys; a table without Keys takes any key.
	Keys map[string]*Schema `json:"keys,omitempty"`
	// Required names the keys a table must have.
	Required []string `json:"required,omitempty"`
	// Items is the node of an array's elements; nil: any.
	Items *Schema `json:"items,omitempty"`
}

// maxSchemaBytes bounds a declared schema; real ones are a few KiB.
const maxSchemaBytes = 256 << 10

// maxSchemaDepth bounds nesting, in the schema and in the walk over the
// config, so that neither can exhaust the stack.
const maxSchemaDepth = 32

// ParseSchema decodes and checks a declared schema.
func ParseSchema(b []byte) (*Schema, error) {
	if len(b) > maxSchemaBytes {
		return nil, fmt.Errorf("config schema: %d bytes, more than %d", len(b), maxSchemaBytes)
	}
	var s Schema
	dec := json.NewDecoder(strings.NewReader(string(b)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&s); err != nil {
		return nil, fmt.Errorf("config schema: %w", err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, errors.New("config schema: more after the schema")
	}
	if s.Type != "table" {
		return nil, fmt.Errorf("config schema: the top is a %q, want a table", s.Type)
	}
	if err := s.check(0); err != nil {
		return nil, fmt.Errorf("config schema: %w", err)
	}
	return &s, nil
}

func (s *Schema) check(depth int) error {
	if s == nil {
		return errors.New("a null node")
	}
	if depth > maxSchemaDepth {
		return fmt.Errorf("nested deeper than %d", maxSchemaDepth)
	}
	switch s.Type {
	case "string", "integer", "number", "boolean", "any":
		if s.Keys != nil || s.Items != nil || s.Required != nil {
			return fmt.Errorf("a %s has no keys, items or required", s.Type)
		}
	case "array":
		if s.Keys != nil || s.Required != nil {
			return errors.New("an array has items, not keys")
		}
		if s.Items != nil {
			return s.Items.check(depth + 1)
		}
	case "table":
		if s.Items != nil {
			return errors.New("a table has keys, not items")
		}
		for _, r := range s.Required {
			if _, ok := s.Keys[r]; !ok {
				return fmt.Errorf("required key %q is not among the keys", r)
			}
		}
		for k, n := range s.Keys {
			if err := n.check(depth + 1); err != nil {
				return fmt.Errorf("%s: %w", k, err)
			}
		}
	default:
		return fmt.Errorf("unknown type %q", s.Type)
	}
	return nil
}

// ConfigProblem is one way a config table does not fit its schema. Path
// is relative to the table, e.g. "rules[1].methods"; "" is the table.
type ConfigProblem struct {
	Path    string
	Message string
}

// ConfigError is Load's error when the plugin's config does not fit the
// schema the plugin declares.
type ConfigError struct {
	Plugin   string
	Problems []ConfigProblem
}

func (e *ConfigError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "plugin %s: config:", e.Plugin)
	for _, p := range e.Problems {
		b.WriteString(" ")
		if p.Path != "" {
			b.WriteString(p.Path + ": ")
		}
		b.WriteString(p.Message + ";")
	}
	return strings.TrimSuffix(b.String(), ";")
}

// Validate judges a config table, as gateway.toml decodes it, against s.
// Problems come in a stable order: by path.
func (s *Schema) Validate(cfg map[string]any) []ConfigProblem {
	var ps []ConfigProblem
	s.validate(&ps, "", cfg, 0)
	sort.SliceStable(ps, func(i, j int) bool { return ps[i].Path < ps[j].Path })
	return ps
}

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

func (s *Schema) validate(ps *[]ConfigProblem, path string, v any, depth int) {
	add := func(p, format string, args ...any) {
		*ps = append(*ps, ConfigProblem{Path: p, Message: fmt.Sprintf(format, args...)})
	}
	if depth > maxSchemaDepth {
		add(path, "nested deeper than %d", maxSchemaDepth)
		return
	}
	if s == nil || s.Type == "any" {
		return
	}
	got := kindOf(v)
	switch s.Type {
	case "number":
		if got != "integer" && got != "number" {
			add(path, "expected a number, not %s", article(got))
		}
	case "string", "integer", "boolean":
		if got != s.Type {
			add(path, "expected %s, not %s", article(s.Type), article(got))
		}
	case "array":
		if got != "array" {
			add(path, "expected an array, not %s", article(got))
			return
		}
		rv := reflect.ValueOf(v)
		for i := 0; i < rv.Len(); i++ {
			s.Items.validate(ps, fmt.Sprintf("%s[%d]", path, i), rv.Index(i).Interface(), depth+1)
		}
	case "table":
		if got != "table" {
			add(path, "expected a table, not %s", article(got))
			return
		}
		m := asTable(v)
		for _, r := range s.Required {
			if _, ok := m[r]; !ok {
				add(path, "the key %q is required", r)
			}
		}
		if s.Keys == nil {
			return
		}
		keys := make([]string, 0, len(m))
		for k := range m {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			n, ok := s.Keys[k]
			if !ok {
				msg := "unknown key"
				if c := closestKey(k, s.Keys); c != "" {
					msg += fmt.Sprintf(" (did you mean %q?)", c)
				}
				add(join(path, k), "%s", msg)
				continue
			}
			n.validate(ps, join(path, k), m[k], depth+1)
		}
	}
}

// kindOf names a value as BurntSushi/toml decodes it into an any, or as a
// Go caller builds a config ([]string, []map[string]any, int...).
func kindOf(v any) string {
	switch v.(type) {
	case nil:
		return "nothing"
	case time.Time:
		return "datetime"
	}
	rv := reflect.ValueOf(v)
	switch rv.Kind() {
	case reflect.String:
		return "string"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "integer"
	case reflect.Float32, reflect.Float64:
		return "number"
	case reflect.Bool:
		return "boolean"
	case reflect.Slice, reflect.Array:
		return "array"
	case reflect.Map:
		if rv.Type().Key().Kind() == reflect.String {
			return "table"
		}
	}
	if rv.Kind() == reflect.Struct {
		return "datetime" // toml's local date and time types
	}
	return "unsupported value"
}

// asTable is a table value (a map with string keys) as a map[string]any.
func asTable(v any) map[string]any {
	if m, ok := v.(map[string]any); ok {
		return m
	}
	rv := reflect.ValueOf(v)
	m := make(map[string]any, rv.Len())
	for it := rv.MapRange(); it.Next(); {
		m[it.Key().String()] = it.Value().Interface()
	}
	return m
}

func article(kind string) string {
	switch {
	case kind == "nothing":
		return kind
	case strings.IndexByte("aeiou", kind[0]) >= 0:
		return "an " + kind
	}
	return "a " + kind
}

// closestKey is the key at most two edits from k, if one is.
func closestKey(k string, keys map[string]*Schema) string {
	names := make([]string, 0, len(keys))
	for n := range keys {
		names = append(names, n)
	}
	sort.Strings(names)
	return config.Closest(k, names)
}
