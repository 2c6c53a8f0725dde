//go:build wasip1

// Command blocker is a Tollgate plugin. Build it with
//
//	gateway plugin build .
package main

import (
	"strings"

	"github.com/tollgate-dev/tollgate/sdk"
)

// cfg is this plugin's [plugins.config] table from gateway.toml. sdk.Config
// also declares its keys to the gateway: `gateway check` and the gateway's
// start refuse a key this struct does not have, or a value of another type.
var cfg struct {
	BlockedPaths []string `json:"blocked_paths"`
}

func init() {
	if err := sdk.Config(&cfg); err != nil {
		panic("blocker: config: " + err.Error())
	}
	sdk.Subscribe("http.request")
	sdk.HandleEvent(func(ev sdk.Event) sdk.Verdict {
		path := ev.Field("path")
		for _, p := range cfg.BlockedPaths {
			if strings.HasPrefix(path, p) {
				sdk.Annotate("blocker.blocked", p)
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
