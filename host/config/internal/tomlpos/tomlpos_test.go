package tomlpos

import (
	"strings"
	"testing"

	"github.com/BurntSushi/toml"
)

type posCase struct {
	name   string
	doc    string
	want   map[string]Pos // exact positions that must be indexed
	absent []string       // paths that must not be indexed
}

var cases = []posCase{
	{
		name: "comments",
		doc: `# leading comment

a = 1 # trailing
  b = "x" # c = 3

# d = 4
`,
		want:   map[string]Pos{"a": {3, 1}, "b": {4, 3}},
		absent: []string{"c", "d"},
	},
	{
		name: "quoted keys",
		doc: `"quoted key" = 1
'literal key' = 2
"esc\"aped" = 3
"a.b" = 4
bare-key_1 = 5
"\u00e9t\u00E9" = 6
'c:\x' = 7
`,
		want: map[string]Pos{
			"quoted key": {1, 1}, "literal key": {2, 1}, `esc"aped`: {3, 1},
			"a.b": {4, 1}, "bare-key_1": {5, 1}, "été": {6, 1}, `c:\x`: {7, 1},
		},
	},
	{
		name: "dotted keys",
		doc: `a.b.c = 1
"x y".z = 2
p . q = 3
site."google.com" = true
a.d = 5
`,
		want: map[string]Pos{
			"a": {1, 1}, "a.b": {1, 1}, "a.b.c": {1, 1}, "a.d": {5, 1},
			"x y": {2, 1}, "x y.z": {2, 1}, "p": {3, 1}, "p.q": {3, 1},
			"site": {4, 1}, "site.google.com": {4, 1},
		},
	},
	{
		name: "tables",
		doc: `[server]
host = "h"

[a.b.c]
x = 1

[ d . "e f" ] # comment
y = 2

[a]
z = 3
`,
		want: map[string]Pos{
			"server": {1, 1}, "server.host": {2, 1},
			"a": {10, 1}, "a.b": {4, 1}, "a.b.c": {4, 1}, "a.b.c.x": {5, 1}, "a.z": {11, 1},
			"d": {7, 1}, "d.e f": {7, 1}, "d.e f.y": {8, 1},
		},
		absent: []string{"x", "a.x", "y"},
	},
	{
		name: "arrays of tables",
		doc: `[[listeners]]
listen = ":80"

  [[listeners.routes]]
  target = "a"

  [[listeners.routes]]
  target = "b"

[[listeners]]
listen = ":81"

  [listeners.tls]
  cert = "c"

  [[listeners.routes]]
  target = "c"
`,
		want: map[string]Pos{
			"listeners": {1, 1}, "listeners[0]": {1, 1}, "listeners[0].listen": {2, 1},
			"listeners[0].routes": {4, 3}, "listeners[0].routes[0]": {4, 3},
			"listeners[0].routes[0].target": {5, 3},
			"listeners[0].routes[1]":        {7, 3}, "listeners[0].routes[1].target": {8, 3},
			"listeners[1]": {10, 1}, "listeners[1].listen": {11, 1},
			"listeners[1].tls": {13, 3}, "listeners[1].tls.cert": {14, 3},
			"listeners[1].routes": {16, 3}, "listeners[1].routes[0]": {16, 3},
			"listeners[1].routes[0].target": {17, 3},
		},
		absent: []string{"listeners[2]", "listeners[0].routes[2]", "listeners[1].routes[1]", "listeners.listen", "listeners.routes"},
	},
	{
		name: "inline tables",
		doc: `k = { a = 1, b = { c = 2 } }
m = {}
n = { x.y = "}" , z = [1, 2] }
t = {
  a = 1, # comment
  b = 2,
}
`,
		want: map[string]Pos{
			"k": {1, 1}, "k.a": {1, 7}, "k.b": {1, 14}, "k.b.c": {1, 20},
			"m": {2, 1},
			"n": {3, 1}, "n.x": {3, 7}, "n.x.y": {3, 7}, "n.z": {3, 19}, "n.z[0]": {3, 24}, "n.z[1]": {3, 27},
			"t": {4, 1}, "t.a": {5, 3}, "t.b": {6, 3},
		},
		absent: []string{"a", "c", "n.z[2]"},
	},
	{
		name: "arrays",
		doc: `ports = [
  80,   # http
  443,  # https

  # comment line, with a, comma
  8080,
]
empty = [ ]
nested = [[1, 2], ["a"]]
dates = [1979-05-27 07:32:00Z, 1979-05-28]
`,
		want: map[string]Pos{
			"ports": {1, 1}, "ports[0]": {2, 3}, "ports[1]": {3, 3}, "ports[2]": {6, 3},
			"empty":  {8, 1},
			"nested": {9, 1}, "nested[0]": {9, 11}, "nested[0][0]": {9, 12}, "nested[0][1]": {9, 15},
			"nested[1]": {9, 19}, "nested[1][0]": {9, 20},
			"dates": {10, 1}, "dates[0]": {10, 10}, "dates[1]": {10, 32},
		},
		absent: []string{"ports[3]", "empty[0]"},
	},
	{
		name: "arrays of inline tables",
		doc: `k = [ {a=1}, {a=2, b={c=3}} ]
rules = [
  { name = "x" },
  { name = "y" }, # trailing
]
`,
		want: map[string]Pos{
			"k": {1, 1}, "k[0]": {1, 7}, "k[0].a": {1, 8},
			"k[1]": {1, 14}, "k[1].a": {1, 15}, "k[1].b": {1, 20}, "k[1].b.c": {1, 23},
			"rules": {2, 1}, "rules[0]": {3, 3}, "rules[0].name": {3, 5},
			"rules[1]": {4, 3}, "rules[1].name": {4, 5},
		},
		absent: []string{"k.a", "rules.name", "rules[2]"},
	},
	{
		name: "strings",
		doc: `a = "a \" # not a comment"
b = 'c:\path # not either'
c = "tab\there" # comment with "quote
d = """
multi "quoted" ""
x = 1 # not a key
\""" still inside
"""
e = '''
'' y = 2 '''
f = """line \
    continued"""
g = """ends with quotes"""""
h = ''''single quotes inside''''
i = "\\" # escaped backslash
j = 1
`,
		want: map[string]Pos{
			"a": {1, 1}, "b": {2, 1}, "c": {3, 1}, "d": {4, 1}, "e": {9, 1},
			"f": {11, 1}, "g": {13, 1}, "h": {14, 1}, "i": {15, 1}, "j": {16, 1},
		},
		absent: []string{"x", "y", "continued"},
	},
	{
		name: "deep arrays of tables",
		doc: `[[a]]
[a.b]
[[a.b.c]]
x = 1
[[a.b.c]]
[[a]]
[[a.b.c]]
y.z = 2
`,
		want: map[string]Pos{
			"a[0]": {1, 1}, "a[0].b": {2, 1}, "a[0].b.c": {3, 1}, "a[0].b.c[0]": {3, 1},
			"a[0].b.c[0].x": {4, 1}, "a[0].b.c[1]": {5, 1}, "a[1]": {6, 1},
			"a[1].b": {7, 1}, "a[1].b.c[0]": {7, 1}, "a[1].b.c[0].y.z": {8, 1},
		},
		absent: []string{"a[1].b.c[1]", "a.b"},
	},
	{
		name: "values",
		doc: `f = [inf, -nan, +1.5e3, 0x1F, 1_000]#tight comment
t = 1979-05-27T07:32:00-08:00
3.14159 = "pi"
true = false
q = { # comment with } and ]
  w = "]" }
`,
		want: map[string]Pos{
			"f[0]": {1, 6}, "f[1]": {1, 11}, "f[4]": {1, 31}, "t": {2, 1},
			"3": {3, 1}, "3.14159": {3, 1}, "true": {4, 1}, "q": {5, 1}, "q.w": {6, 3},
		},
		absent: []string{"f[5]"},
	},
	{
		name: "gateway",
		doc:  gatewayTOML,
		want: map[string]Pos{
			"gateway": {2, 1}, "gateway.data_dir": {3, 1}, "gateway.log_level": {4, 1},
			"identity": {6, 1}, "identity.issuers": {6, 1}, "identity.issuers[0]": {6, 1},
			"identity.issuers[0].name": {7, 1}, "identity.issuers[1]": {10, 1},
			"identity.issuers[1].url": {12, 1}, "identity.issuers[1].audiences": {13, 1},
			"identity.issuers[1].audiences[1]": {15, 3},
			"identity.dev":                     {18, 1}, "identity.dev.enabled": {19, 1},
			"targets[0]": {21, 1}, "targets[0].credential": {25, 3},
			"targets[0].credential.token_file": {27, 3},
			"targets[1]":                       {29, 1}, "targets[1].credential": {32, 1},
			"targets[1].credential.user": {32, 32},
			"listeners[0]":               {34, 1}, "listeners[0].listen": {35, 1},
			"listeners[0].routes[0]": {37, 3}, "listeners[0].routes[0].target": {39, 3},
			"listeners[1]": {41, 1}, "listeners[1].listen": {42, 1}, "listeners[1].tls.key": {43, 42},
			"listeners[1].routes[0]": {45, 3}, "listeners[1].routes[0].headers": {48, 3},
			"listeners[1].routes[0].headers.X-Api-Key": {48, 15},
			"listeners[1].routes[1]":                   {50, 3}, "listeners[1].routes[1].target": {52, 3},
			"access[0]": {54, 1}, "access[0].targets[1]": {56, 24},
			"access[0].claims": {58, 1}, "access[0].claims.repository": {59, 1},
			"access[0].claims.job_workflow_ref": {60, 1},
			"access[1].claims":                  {66, 1}, "access[1].claims.project_path": {67, 1},
			"access[2]": {69, 1}, "access[2].claims": {71, 1}, "access[2].claims.repository": {71, 1},
			"plugins": {73, 1}, "plugins.config": {73, 1}, "plugins.config.endpoint": {74, 1},
			"plugins.config.retry.max": {75, 1},
		},
		absent: []string{"listeners[2]", "listeners[0].routes[1]", "access[1].claims.repository"},
	},
}

const gatewayTOML = `# Tollgate gateway configuration.
[gateway]
data_dir = "/var/lib/tollgate"
log_level = "info" # default is "warn"

[[identity.issuers]]
name = "github"
url = "https://token.actions.githubusercontent.com"

[[identity.issuers]]
name = "gitlab"
url = "https://gitlab.com"
audiences = [
  "tollgate", # primary
  "tollgate-dev",
]

[identity.dev]
enabled = true

[[targets]]
name = "registry"
url = "https://registry.example.com"

  [targets.credential]
  type = "bearer"
  token_file = "/run/secrets/registry"

[[targets]]
name = "api"
url = "https://api.example.com"
credential = { type = "basic", user = "svc" }

[[listeners]]
listen = ":8080"

  [[listeners.routes]]
  match = "/v2/"
  target = "registry"

[[listeners]]
listen = ":8080"
tls = { cert = "/etc/tollgate/cert.pem", key = "/etc/tollgate/key.pem" }

  [[listeners.routes]]
  match = "/api/"
  target = "api"
  headers = { "X-Api-Key" = "secret" }

  [[listeners.routes]]
  match = "/"
  target = "registry"

[[access]]
issuer = "github"
targets = ["registry", "api"]

[access.claims]
repository = "tollgate-dev/tollgate"
job_workflow_ref = "tollgate-dev/tollgate/.github/workflows/release.yml@refs/heads/main"

[[access]]
issuer = "gitlab"
targets = ["registry"]

[access.claims]
project_path = "tollgate/gateway"

[[access]]
issuer = "github"
claims.repository = "tollgate-dev/other"

[plugins.config]
endpoint = "http://localhost:9000"
"retry.max" = 3
`

// variants returns the document as written, with CRLF line endings, and with
// a UTF-8 byte order mark; key positions must be the same in all three.
func variants(doc string) [][2]string {
	return [][2]string{
		{"LF", doc},
		{"CRLF", strings.ReplaceAll(doc, "\n", "\r\n")},
		{"BOM", "\xef\xbb\xbf" + doc},
	}
}

func TestScan(t *testing.T) {
	for _, tc := range cases {
		for _, v := range variants(tc.doc) {
			t.Run(tc.name+"/"+v[0], func(t *testing.T) {
				doc := v[1]
				if _, err := toml.Decode(doc, new(map[string]any)); err != nil {
					t.Fatalf("test document is not valid TOML: %v", err)
				}
				ix := Scan([]byte(doc))
				for path, want := range tc.want {
					if got, ok := ix.Lookup(path); !ok || got != want {
						t.Errorf("Lookup(%q) = %v, %v; want %v, true", path, got, ok, want)
					}
				}
				for _, path := range tc.absent {
					if got, ok := ix.Lookup(path); ok {
						t.Errorf("Lookup(%q) = %v, true; want no exact match", path, got)
					}
				}
				checkIndex(t, []byte(doc), ix)
			})
		}
	}
}

func TestLookupFallback(t *testing.T) {
	ix := Scan([]byte(gatewayTOML))
	tests := []struct {
		path  string
		want  Pos
		exact bool
	}{
		{"gateway.data_dir", Pos{3, 1}, true},
		{"identity.dev", Pos{18, 1}, true},
		{"gateway.listen_timeout", Pos{2, 1}, false},                  // defaulted key: its table
		{"listeners[1].routes[0].timeout", Pos{45, 3}, false},         // the [[listeners.routes]] entry
		{"listeners[1].routes[0].headers.X-Other", Pos{48, 3}, false}, // inline table
		{"targets[1].credential.token_file", Pos{32, 1}, false},
		{"listeners[7].listen", Pos{34, 1}, false}, // no such entry: the array
		{"access[0].targets[5]", Pos{56, 1}, false},
		{"nope.x", Pos{1, 1}, false},
		{"", Pos{1, 1}, false},
		{"[0]", Pos{1, 1}, false},
		{"...", Pos{1, 1}, false},
	}
	for _, tt := range tests {
		got, exact := ix.Lookup(tt.path)
		if got != tt.want || exact != tt.exact {
			t.Errorf("Lookup(%q) = %v, %v; want %v, %v", tt.path, got, exact, tt.want, tt.exact)
		}
	}

	var nilIndex *Index
	if got, exact := nilIndex.Lookup("a"); got != (Pos{1, 1}) || exact {
		t.Errorf("nil Index: Lookup = %v, %v; want {1 1}, false", got, exact)
	}
}

func TestEmptyKeys(t *testing.T) {
	ix := Scan([]byte("\"\" = 1\n\"\".a = 2\n[\"\"]\nb = 3\n"))
	for path, want := range map[string]Pos{"": {1, 1}, ".a": {2, 1}, ".b": {4, 1}} {
		if got, ok := ix.keys[path]; !ok || got.pos != want {
			t.Errorf("keys[%q] = %v, %v; want %v", path, got.pos, ok, want)
		}
	}
}

func FuzzScan(f *testing.F) {
	for _, tc := range cases {
		for _, v := range variants(tc.doc) {
			f.Add([]byte(v[1]))
		}
	}
	for _, s := range []string{"[[a", "a = [", "a = \"\"\"", "a = {b = [{", "\xff\xfea=1", "a.=1\n[.]", "\r\r\n", "x = '''\n"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, src []byte) {
		checkIndex(t, src, Scan(src))
	})
}

// checkIndex checks that every indexed position lies inside src and, if
// BurntSushi/toml accepts src, that every key it reports outside arrays is
// indexed under the same path.
func checkIndex(t *testing.T, src []byte, ix *Index) {
	t.Helper()
	lines := strings.Count(string(src), "\n") + 1
	for path, e := range ix.keys {
		if e.pos.Line < 1 || e.pos.Line > lines || e.pos.Col < 1 {
			t.Errorf("%q at %v, outside the %d-line document", path, e.pos, lines)
		}
	}
	var doc map[string]any
	md, err := toml.Decode(string(src), &doc)
	if err != nil {
		return
	}
	for _, key := range md.Keys() {
		if underArray(doc, key) {
			continue // BurntSushi does not say which entry a key is in
		}
		if path := strings.Join(key, "."); ix.keys[path] == (entry{}) {
			t.Errorf("key %q (%v) not indexed", path, []string(key))
		}
	}
}

// underArray reports whether a key lies inside an array of tables or an
// array of inline tables. It walks the decoded value rather than asking
// MetaData.Type, which a child key named "" overwrites (see testdata/fuzz).
func underArray(doc map[string]any, key toml.Key) bool {
	m := doc
	for _, k := range key[:len(key)-1] {
		var ok bool
		if m, ok = m[k].(map[string]any); !ok {
			return true // []map[string]any or []any
		}
	}
	return false
}
