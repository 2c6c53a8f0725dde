package main_test

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tollgate-dev/tollgate/internal/testenv"
)

// posOf is where the n-th (1-based) occurrence of s starts in src, as
// gateway check prints a place.
func posOf(t *testing.T, src, s string, n int) string {
	t.Helper()
	off := -1
	for range n {
		i := strings.Index(src[off+1:], s)
		if i < 0 {
			t.Fatalf("%q not in the config", s)
		}
		off += 1 + i
	}
	line := strings.Count(src[:off], "\n") + 1
	col := off - (strings.LastIndex(src[:off], "\n") + 1) + 1
	return fmt.Sprintf("gateway.toml:%d:%d", line, col)
}

// gateway check loads every plugin: a missing or garbage .wasm is a
// problem at its path; each key of [plugins.config] the plugin does not
// declare, or of another type, is a problem at its place, at the top of
// the table, in an inline table of an array, in a [[...]] table under
// it; a plugin that declares no schema passes with a warning.
func TestCheckPlugins(t *testing.T) {
	guard := testenv.BuildWasm(t, "plugins/guard")
	mask := testenv.BuildWasm(t, "plugins/mask")
	noop := testenv.BuildWasm(t, "host/plugin/testdata/guests/noop")
	afterHours := testenv.BuildWasm(t, "examples/plugins/after-hours")
	env := []string{"CHECK_TEST_TOKEN=x"}

	good := valid + fmt.Sprintf(`
[[plugins]]
name = "guard"
path = %q
[plugins.config]
rules = [ { name = "no-ddl", kinds = ["pg.query"], sql = ["ddl"] } ]

[[plugins]]
name = "noop"
path = %q
[plugins.config]
whatever = 1
`, guard, noop)
	dir := writeConfig(t, good)
	out, errOut, code := testenv.RunGateway(t, dir, env, "check", "-c", "gateway.toml")
	if code != 0 || !strings.HasPrefix(out, "ok: 1 listeners, 1 targets, 0 access rules, 2 plugins") {
		t.Fatalf("a good config: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	wantWarn := posOf(t, good, "[[plugins]]", 2) + `: plugins[1]: warning: plugin "noop" declares no config schema`
	if !strings.Contains(errOut, wantWarn) || strings.Count(errOut, "warning") != 1 {
		t.Errorf("stderr = %q, want one warning %q", errOut, wantWarn)
	}

	bad := valid + fmt.Sprintf(`
[[plugins]]
name = "guard"
path = %q
[plugins.config]
allow_unknown_sql = "yes"
rules = [ { name = "no-ddl", sql = ["ddl"] }, { name = "ro", methds = ["POST"] } ]
rulez = []

[[plugins]]
name = "mask"
path = %q
[plugins.config]
strategy = "partial"
[[plugins.config.allow]]
targets = ["api"]
valuez = ["x"]

[[plugins]]
name = "gone"
path = "plugins/gone.wasm"

[[plugins]]
name = "garbage"
path = "garbage.wasm"

[[plugins]]
name = "after-hours"
path = %q
[plugins.config]
timezone = "UTC"
`, guard, mask, afterHours)
	dir = writeConfig(t, bad)
	if err := os.WriteFile(filepath.Join(dir, "garbage.wasm"), []byte("\x00asm\x01\x00\x00\x00garbage"), 0o644); err != nil {
		t.Fatal(err)
	}
	out, errOut, code = testenv.RunGateway(t, dir, env, "check", "-c", "gateway.toml")
	if code != 1 || out != "" {
		t.Fatalf("exit %d, stdout %q, stderr:\n%s", code, out, errOut)
	}
	for _, want := range []string{
		posOf(t, bad, "allow_unknown_sql", 1) + ": plugins[0].config.allow_unknown_sql: expected a boolean, not a string",
		posOf(t, bad, "methds", 1) + `: plugins[0].config.rules[1].methds: unknown key (did you mean "methods"?)`,
		posOf(t, bad, "rulez", 1) + `: plugins[0].config.rulez: unknown key (did you mean "rules"?)`,
		posOf(t, bad, "valuez", 1) + `: plugins[1].config.allow[0].valuez: unknown key (did you mean "values"?)`,
		posOf(t, bad, `path = "plugins/gone.wasm"`, 1) + `: plugins[2].path: plugin "gone": no file ` + filepath.Join(dir, "plugins", "gone.wasm"),
		posOf(t, bad, `path = "garbage.wasm"`, 1) + ": plugins[3].path: plugin garbage: ",
		posOf(t, bad, "[plugins.config]", 3) + `: plugins[4].config: the key "tables" is required`,
	} {
		if !strings.Contains(errOut, want) {
			t.Errorf("stderr lacks %q:\n%s", want, errOut)
		}
	}
	if n := strings.Count(strings.TrimSpace(errOut), "\n") + 1; n != 7 {
		t.Errorf("%d lines of problems, want 7:\n%s", n, errOut)
	}

	// serve refuses the same config before it listens.
	_, errOut, code = testenv.RunGateway(t, dir, env, "serve", "-c", "gateway.toml")
	if code == 0 || !strings.Contains(errOut, "allow_unknown_sql") {
		t.Errorf("serve: exit %d, stderr %q", code, errOut)
	}
}
