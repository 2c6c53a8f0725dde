package plugintool

import "strings"

func scaffoldFiles(name string) map[string]string {
	r := strings.NewReplacer("NAME", name)
	return map[string]string{
		"main.go":      r.Replace(mainTemplate),
		"main_test.go": r.Replace(testTemplate),
		"event.json":   eventTemplate,
		"config.toml":  configTemplate,
		"README.md":    r.Replace(readmeTemplate),
	}
}

const mainTemplate = `//go:build wasip1

// Command NAME is a Tollgate plugin. Build it with
//
//	gateway plugin build .
package main

import (
	"strings"

	"github.com/tollgate-dev/tollgate/sdk"
)

// cfg is this plugin's [plugins.config] table from gateway.toml.
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
	"context"
	"os"
	"testing"

	"github.com/tollgate-dev/tollgate/host/plugin/plugintool"
)

// The sample event in event.json is denied by the sample config.
func TestSampleEvent(t *testing.T) {
	wasm, err := plugintool.Build(".", t.TempDir()+"/NAME.wasm")
	if err != nil {
		t.Fatal(err)
	}
	code, _ := os.ReadFile(wasm)
	cfg, _ := os.ReadFile("config.toml")
	ev, _ := os.ReadFile("event.json")
	r, err := plugintool.Run(context.Background(), code, cfg, ev)
	if err != nil {
		t.Fatal(err)
	}
	if r.Action != "deny" || r.Annotations["NAME.blocked"] != "/admin" {
		t.Fatalf("result: %+v", r)
	}
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
    "claims": {"repository": "acme/app", "run_id": "42"}
  },
  "fields": {"method": "GET", "path": "/admin/users", "query": ""}
}
`

const configTemplate = `# This plugin's [plugins.config] table, as it will appear in gateway.toml.
blocked_paths = ["/admin"]
`

const readmeTemplate = "# NAME\n\n" +
	"A Tollgate plugin.\n\n" +
	"## Build and try\n\n" +
	"```sh\n" +
	"gateway plugin build .\n" +
	"gateway plugin test NAME.wasm --event event.json --config config.toml\n" +
	"go test ./...\n" +
	"```\n\n" +
	"## Configure\n\n" +
	"```toml\n" +
	"[[plugins]]\n" +
	"name = \"NAME\"\n" +
	"path = \"plugins/NAME.wasm\"\n" +
	"on_error = \"deny\"\n" +
	"[plugins.config]\n" +
	"blocked_paths = [\"/admin\"]\n" +
	"```\n\n" +
	"## Audit annotations\n\n" +
	"- `NAME.blocked`: the prefix that blocked a request.\n"
