//go:build wasip1

package sdk

import (
	"encoding"
	"encoding/json"
	"reflect"
	"strings"
	"unsafe"
)

//go:wasmimport tollgate config_schema
func hostConfigSchema(p unsafe.Pointer, n uint32)

// declareConfig tells the host which keys v's type takes (sdk/ABI.md,
// "Config schema"): the gateway then refuses a [plugins.config] key the
// plugin would ignore, with its place in gateway.toml.
func declareConfig(v any) {
	t := reflect.TypeOf(v)
	for t != nil && t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if t == nil || t.Kind() != reflect.Struct {
		return // a map or an any takes every key: nothing to declare
	}
	b, err := json.Marshal(schemaOf(t, map[reflect.Type]bool{}))
	if err != nil {
		return
	}
	hostConfigSchema(ptr(b), uint32(len(b)))
}

// node is one value of the schema: sdk/ABI.md names its fields.
type node struct {
	Type     string           `json:"type"`
	Keys     map[string]*node `json:"keys,omitempty"`
	Required []string         `json:"required,omitempty"`
	Items    *node            `json:"items,omitempty"`
}

var (
	jsonUnmarshaler = reflect.TypeOf((*json.Unmarshaler)(nil)).Elem()
	textUnmarshaler = reflect.TypeOf((*encoding.TextUnmarshaler)(nil)).Elem()
)

// schemaOf describes what encoding/json decodes into t. seen stops a
// recursive type, which is then "any" below its first level.
func schemaOf(t reflect.Type, seen map[reflect.Type]bool) *node {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if pt := reflect.PointerTo(t); pt.Implements(textUnmarshaler) {
		return &node{Type: "string"}
	} else if pt.Implements(jsonUnmarshaler) {
		return &node{Type: "any"} // it decodes itself
	}
	switch t.Kind() {
	case reflect.String:
		return &node{Type: "string"}
	case reflect.Bool:
		return &node{Type: "boolean"}
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return &node{Type: "integer"}
	case reflect.Float32, reflect.Float64:
		return &node{Type: "number"}
	case reflect.Slice, reflect.Array:
		if t.Elem().Kind() == reflect.Uint8 && t.Kind() == reflect.Slice {
			return &node{Type: "string"} // []byte is base64 text in JSON
		}
		return &node{Type: "array", Items: schemaOf(t.Elem(), seen)}
	case reflect.Map:
		return &node{Type: "table"}
	case reflect.Struct:
		if seen[t] {
			return &node{Type: "any"}
		}
		seen[t] = true
		defer delete(seen, t)
		n := &node{Type: "table", Keys: map[string]*node{}}
		addFields(n, t, seen)
		return n
	}
	return &node{Type: "any"}
}

// addFields adds a struct's fields as encoding/json names them, embedded
// structs' fields flattened into their parent. A field tagged
// `tollgate:"required"` must be present.
func addFields(n *node, t reflect.Type, seen map[reflect.Type]bool) {
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		tag := f.Tag.Get("json")
		if tag == "-" {
			continue
		}
		name, _, _ := strings.Cut(tag, ",")
		if f.Anonymous && name == "" {
			ft := f.Type
			if ft.Kind() == reflect.Pointer {
				ft = ft.Elem()
			}
			if ft.Kind() == reflect.Struct {
				addFields(n, ft, seen)
				continue
			}
		}
		if !f.IsExported() {
			continue
		}
		if name == "" {
			name = f.Name
		}
		n.Keys[name] = schemaOf(f.Type, seen)
		if f.Tag.Get("tollgate") == "required" {
			n.Required = append(n.Required, name)
		}
	}
}
