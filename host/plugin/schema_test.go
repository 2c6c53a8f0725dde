package plugin

import (
	"context"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/BurntSushi/toml"

	"github.com/tollgate-dev/tollgate/host/config"
	"github.com/tollgate-dev/tollgate/internal/testenv"
)

func decodeTOML(t *testing.T, src string) map[string]any {
	t.Helper()
	m := map[string]any{}
	if _, err := toml.Decode(src, &m); err != nil {
		t.Fatal(err)
	}
	return m
}

func TestSchemaValidate(t *testing.T) {
	s, err := ParseSchema([]byte(`{"type":"table","required":["name"],"keys":{
		"name":{"type":"string"},
		"ratio":{"type":"number"},
		"count":{"type":"integer"},
		"on":{"type":"boolean"},
		"tags":{"type":"array","items":{"type":"string"}},
		"rules":{"type":"array","items":{"type":"table","keys":{"methods":{"type":"array"},"reason":{"type":"string"}}}},
		"free":{"type":"table"},
		"anything":{"type":"any"}}}`))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		src  string
		want []ConfigProblem
	}{
		{`name = "a"
ratio = 1
count = 2
on = true
tags = ["x"]
rules = [{methods = ["GET"]}, {reason = "r"}]
free = {whatever = 1}
anything = 2024-01-01T00:00:00Z`, nil},
		{`name = "a"
[[rules]]
methds = ["GET"]
[[rules]]
reason = 3`, []ConfigProblem{
			{"rules[0].methds", `unknown key (did you mean "methods"?)`},
			{"rules[1].reason", "expected a string, not an integer"},
		}},
		{`nam = "a"`, []ConfigProblem{
			{"", `the key "name" is required`},
			{"nam", `unknown key (did you mean "name"?)`},
		}},
		{`name = 1
ratio = "1"
count = 1.5
on = "true"
tags = "x"
free = 1
rules = [1]`, []ConfigProblem{
			{"count", "expected an integer, not a number"},
			{"free", "expected a table, not an integer"},
			{"name", "expected a string, not an integer"},
			{"on", "expected a boolean, not a string"},
			{"ratio", "expected a number, not a string"},
			{"rules[0]", "expected a table, not an integer"},
			{"tags", "expected an array, not a string"},
		}},
		{`name = "a"
tags = ["x", 1, 1979-05-27T07:32:00Z]
zzzzzzzzzzzz = 1`, []ConfigProblem{
			{"tags[1]", "expected a string, not an integer"},
			{"tags[2]", "expected a string, not a datetime"},
			{"zzzzzzzzzzzz", "unknown key"},
		}},
	} {
		got := s.Validate(decodeTOML(t, tc.src))
		if !reflect.DeepEqual(got, tc.want) {
			t.Errorf("%s:\n got %q\nwant %q", tc.src, got, tc.want)
		}
	}
}

// A declaration the host cannot use is refused, not taken for "no schema".
func TestParseSchemaRefuses(t *testing.T) {
	for _, s := range []string{
		``, `null`, `[]`, `{"type":"string"}`, `{"type":"table","keys":{"a":null}}`,
		`{"type":"table","keys":{"a":{"type":"strnig"}}}`, `{"type":"table","required":["b"],"keys":{"a":{"type":"string"}}}`,
		`{"type":"table","keys":{"a":{"type":"string","keys":{}}}}`, `{"type":"table","extra":1}`,
		`{"type":"table"} {"type":"table"}`[:18] + `x`,
		`{"type":"table","keys":{"a":` + strings.Repeat(`{"type":"array","items":`, 40) + `{"type":"any"}` + strings.Repeat(`}`, 40) + `}}`,
	} {
		if _, err := ParseSchema([]byte(s)); err == nil {
			t.Errorf("accepted %q", s)
		}
	}
	if _, err := ParseSchema([]byte(`{"type":"table","keys":{"x":{"type":"string"}}}` + strings.Repeat(" ", maxSchemaBytes))); err == nil {
		t.Error("accepted a schema over the size bound")
	}
}

// The built-in guard declares its keys through sdk.Config: a typo in its
// config, at the top or inside a rule, stops the load with the key's path;
// a good config loads; a plugin that declares nothing has no schema.
func TestLoadValidatesDeclaredSchema(t *testing.T) {
	h := newHost(t)
	ctx := context.Background()
	guard := testenv.WasmBytes(t, "plugins/guard")
	lim := limitsOf(config.Plugin{Instances: 1, Timeout: config.Duration{Duration: 5 * time.Second}})
	for _, tc := range []struct {
		src  string
		want []ConfigProblem
	}{
		{`rulez = []`, []ConfigProblem{{"rulez", `unknown key (did you mean "rules"?)`}}},
		{`rules = [{name = "r", methds = ["POST"]}]`, []ConfigProblem{{"rules[0].methds", `unknown key (did you mean "methods"?)`}}},
		// A type sdk.Config would choke on (and panic in init) is still
		// reported as the key's problem.
		{`allow_unknown_sql = "yes"`, []ConfigProblem{{"allow_unknown_sql", "expected a boolean, not a string"}}},
	} {
		_, err := h.Load(ctx, config.Plugin{Name: "guard", Config: decodeTOML(t, tc.src)}, guard, lim)
		var ce *ConfigError
		if !errors.As(err, &ce) || ce.Plugin != "guard" || !reflect.DeepEqual(ce.Problems, tc.want) {
			t.Errorf("%s: %v (%#v), want %q", tc.src, err, ce, tc.want)
		}
	}
	p, err := h.Load(ctx, config.Plugin{Name: "guard", Config: decodeTOML(t, `rules = [{name = "r", methods = ["POST"]}]`)}, guard, lim)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close(ctx)
	if s := p.Schema(); s == nil || s.Keys["rules"] == nil || s.Keys["rules"].Items == nil || s.Keys["rules"].Items.Keys["methods"] == nil {
		t.Errorf("guard's schema: %+v", s)
	}
	noop := load(t, h, "noop", config.Plugin{Config: map[string]any{"anything": 1}}, Limits{})
	if noop.Schema() != nil {
		t.Errorf("noop declared %+v", noop.Schema())
	}
}

// A hostile declaration (not JSON, not a schema, out of memory, too big)
// fails the load; it never passes as "no schema".
func TestLoadRefusesBadSchema(t *testing.T) {
	h := newHost(t)
	ctx := context.Background()
	wasm := testenv.WasmBytes(t, "host/plugin/testdata/guests/badschema")
	lim := limitsOf(config.Plugin{Instances: 1, Timeout: config.Duration{Duration: 5 * time.Second}})
	for _, cfg := range []map[string]any{
		{"schema": "not json"},
		{"schema": `{"type":"array"}`},
		{"schema": `{"type":"table","keys":{"schema":{"type":"nope"}}}`},
		{}, // a length past the guest's memory
		{"huge": true},
	} {
		p, err := h.Load(ctx, config.Plugin{Name: "bad", Config: cfg}, wasm, lim)
		if err == nil {
			p.Close(ctx)
			t.Errorf("config %v: loaded", cfg)
		} else if !strings.Contains(err.Error(), "config schema") {
			t.Errorf("config %v: %v", cfg, err)
		}
	}
	// The same guest with a good declaration loads, and its schema applies.
	good := `{"type":"table","keys":{"schema":{"type":"string"}}}`
	p, err := h.Load(ctx, config.Plugin{Name: "bad", Config: map[string]any{"schema": good}}, wasm, lim)
	if err != nil {
		t.Fatal(err)
	}
	p.Close(ctx)
}

// Any declaration either parses into a schema that can judge any config
// without panicking, or is refused.
func FuzzParseSchema(f *testing.F) {
	f.Add([]byte(`{"type":"table","required":["a"],"keys":{"a":{"type":"array","items":{"type":"table","keys":{"b":{"type":"integer"}}}}}}`), `a = [{b = 1}, {c = "x"}, 3]`)
	f.Add([]byte(`{"type":"table"}`), `x = 1`)
	f.Add([]byte(`{"type":"table","keys":{}}`), `[t]
u = [[1], ["a"]]`)
	f.Fuzz(func(t *testing.T, schema []byte, cfg string) {
		s, err := ParseSchema(schema)
		if err != nil {
			return
		}
		m := map[string]any{}
		if _, err := toml.Decode(cfg, &m); err != nil {
			return
		}
		for _, p := range s.Validate(m) {
			if p.Message == "" {
				t.Fatalf("a problem without a message at %q", p.Path)
			}
		}
	})
}

// A config built in Go (as the protocols' tests and embedders do) is
// judged like the same config decoded from TOML.
func TestSchemaValidateGoValues(t *testing.T) {
	s, err := ParseSchema([]byte(`{"type":"table","keys":{"cols":{"type":"array","items":{"type":"string"}},"n":{"type":"integer"},
		"rules":{"type":"array","items":{"type":"table","keys":{"name":{"type":"string"}}}},"m":{"type":"table","keys":{"a":{"type":"boolean"}}}}}`))
	if err != nil {
		t.Fatal(err)
	}
	ok := map[string]any{"cols": []string{"a"}, "n": 3, "rules": []map[string]any{{"name": "x"}}, "m": map[string]bool{"a": true}}
	if ps := s.Validate(ok); ps != nil {
		t.Errorf("%v", ps)
	}
	bad := map[string]any{"cols": []int{1}, "n": "3", "rules": []map[string]string{{"nme": "x"}}, "m": map[int]bool{1: true}}
	want := []ConfigProblem{
		{"cols[0]", "expected a string, not an integer"},
		{"m", "expected a table, not an unsupported value"},
		{"n", "expected an integer, not a string"},
		{"rules[0].nme", `unknown key (did you mean "name"?)`},
	}
	if ps := s.Validate(bad); !reflect.DeepEqual(ps, want) {
		t.Errorf("got %q\nwant %q", ps, want)
	}
}
