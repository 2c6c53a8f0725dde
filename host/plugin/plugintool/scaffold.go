package plugintool

import (
	"regexp"
	"strings"
)

// SDKDir is the folder, inside a scaffolded plugin, that holds its copy of
// the SDK module; go.mod's replace points at it.
const SDKDir = "tollgate-sdk"

// semver is a release version a go.mod may require as it is.
var semver = regexp.MustCompile(`^v\d+\.\d+\.\d+(-[0-9A-Za-z.-]+)?$`)

var printable = regexp.MustCompile(`^[0-9A-Za-z.+-]{1,64}$`)

// sdkVersion is the SDK version a plugin requires: the gateway's own when
// it is a release, else Go's placeholder for a module that only a replace
// provides.
func sdkVersion(gatewayVersion string) string {
	if semver.MatchString(gatewayVersion) {
		return gatewayVersion
	}
	return "v0.0.0-00010101000000-000000000000"
}

// scaffoldFiles are the files of a new plugin (the SDK copy aside).
func scaffoldFiles(name, gatewayVersion string) map[string]string {
	shown := gatewayVersion
	if !printable.MatchString(shown) {
		shown = "(unnamed)" // it goes into a comment of go.mod
	}
	r := strings.NewReplacer("NAME", name, "SDKVERSION", sdkVersion(gatewayVersion), "GATEWAYVERSION", shown, "SDKDIR", SDKDir)
	return map[string]string{
		"go.mod":       r.Replace(modTemplate),
		"main.go":      r.Replace(mainTemplate),
		"main_test.go": r.Replace(testTemplate),
		"event.json":   eventTemplate,
		"config.toml":  configTemplate,
		"README.md":    r.Replace(readmeTemplate),
	}
}

const modTemplate = `module NAME

go 1.26.0

require github.com/tollgate-dev/tollgate/sdk SDKVERSION

// The SDK comes from the copy beside this file, written by gateway
// GATEWAYVERSION (` + "`gateway plugin sdk --out SDKDIR`" + ` refreshes it from another
// gateway): no module proxy serves it yet.
replace github.com/tollgate-dev/tollgate/sdk => ./SDKDIR
`

const mainTemplate = `//go:build wasip1

// Command NAME is a Tollgate plugin. Build it with
//
//	gateway plugin build .
package main

import (
	"strings"

	"github.com/tollgate-dev/tollgate/sdk"
)

// cfg is this plugin's [plugins.config] table from gateway.toml. sdk.Config
// also declares its keys to the gateway: ` + "`gateway check`" + ` and the gateway's
// start refuse a key this struct does not have, or a value of another type.
var cfg struct {
	BlockedPaths []string ` + "`json:\"blocked_paths\"`" + `
}

func init() {
	if err := sdk.Config(&cfg); err != nil {
		panic("NAME: config: " + err.Error())
	}
	sdk.Subscribe("http.request")
	sdk.HandleEvent(func(ev sdk.Event) sdk.Verdict {
		path := ev.Field("path")
		for _, p := range cfg.BlockedPaths {
			if strings.HasPrefix(path, p) {
				sdk.Annotate("NAME.blocked", p)
				return sdk.Deny("path " + p + " is blocked for " + ev.Subject())
			}
		}
		// The verdict depends only on what this call read: identical
		// requests skip the plugin next time.
		sdk.Cacheable()
		return sdk.Allow()
	})
}

func main() {}
`

const testTemplate = `package main_test

import (
	"encoding/json"
	"os"
	"testing"

	"github.com/tollgate-dev/tollgate/sdk/sdktest"
)

// The plugin runs in the gateway's own plugin host (sdktest drives
// ` + "`gateway plugin build`" + ` and ` + "`gateway plugin test`" + `): a blocked path is denied,
// any other passes.
func TestBlockedPaths(t *testing.T) {
	wasm := sdktest.Build(t, ".")
	cfg, err := os.ReadFile("config.toml")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ path, want string }{
		{"/admin/users", "deny"},
		{"/admin", "deny"},
		{"/orders/42", "allow"},
		{"/", "allow"},
	} {
		r := sdktest.Run(t, wasm, string(cfg), sampleEvent(t, tc.path))
		if r.Action != tc.want {
			t.Errorf("GET %s: %s (%s), want %s", tc.path, r.Action, r.Reason, tc.want)
		}
	}
	// Without a config nothing is blocked.
	if r := sdktest.Run(t, wasm, "", sampleEvent(t, "/admin")); r.Action != "allow" {
		t.Errorf("no config: %s (%s), want allow", r.Action, r.Reason)
	}
}

// sampleEvent is event.json with another path.
func sampleEvent(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile("event.json")
	if err != nil {
		t.Fatal(err)
	}
	var ev map[string]any
	if err := json.Unmarshal(b, &ev); err != nil {
		t.Fatal(err)
	}
	ev["fields"].(map[string]any)["path"] = path
	out, err := json.Marshal(ev)
	if err != nil {
		t.Fatal(err)
	}
	return string(out)
}
`

const eventTemplate = `{
  "kind": "http.request",
  "protocol": "http",
  "target": "orders",
  "principal": {
    "issuer": "github",
    "subject": "repo:acme/app:ref:refs/heads/main",
    "groups": ["ci"],
    "claims": {"repository": "acme/app", "ref": "refs/heads/main", "run_id": "42"}
  },
  "fields": {"method": "GET", "path": "/admin/users", "query": ""}
}
`

const configTemplate = `# This plugin's [plugins.config] table, as it will appear in gateway.toml.
blocked_paths = ["/admin"]
`

const readmeTemplate = "# NAME\n\n" +
	"A Tollgate plugin, made by `gateway plugin new NAME`.\n\n" +
	"## Build and test\n\n" +
	"```sh\n" +
	"go test ./...            # builds the plugin and runs events through the gateway's plugin host\n" +
	"gateway plugin build .   # writes NAME.wasm\n" +
	"gateway plugin test NAME.wasm --event event.json --config config.toml\n" +
	"```\n\n" +
	"The tests need the `gateway` binary: on PATH, or named by `TOLLGATE_GATEWAY`.\n" +
	"The SDK is the copy in `SDKDIR/` (go.mod's `replace`); refresh it from a\n" +
	"newer gateway with `gateway plugin sdk --out SDKDIR`.\n\n" +
	"## Configure\n\n" +
	"Copy NAME.wasm next to gateway.toml (a relative `path` is read from\n" +
	"gateway.toml's folder) and add the plugin to the chain, in the place\n" +
	"where it should run:\n\n" +
	"```toml\n" +
	"[[plugins]]\n" +
	"name = \"NAME\"\n" +
	"path = \"plugins/NAME.wasm\"\n" +
	"on_error = \"deny\"\n" +
	"[plugins.config]\n" +
	"blocked_paths = [\"/admin\"]\n" +
	"```\n\n" +
	"`gateway check` loads it and checks `[plugins.config]` against the keys\n" +
	"the plugin declares; a running gateway picks up a new build on SIGHUP or\n" +
	"`gateway reload`.\n\n" +
	"## Audit annotations\n\n" +
	"- `NAME.blocked`: the prefix that blocked a request.\n"
