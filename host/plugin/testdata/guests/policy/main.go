// A policy plugin for the host's tests: it denies, holds, rewrites,
// annotates and caches, driven by its config.
package main

import (
	"strings"

	"github.com/tollgate-dev/tollgate/sdk"
)

var cfg struct {
	DenyMethod string `json:"deny_method"`
}

var calls int

func init() {
	if err := sdk.Config(&cfg); err != nil {
		panic(err)
	}
	sdk.Subscribe("http.request")
	sdk.Subscribe("http.response")
	sdk.Subscribe("pg.query")
	sdk.HandleEvent(func(ev sdk.Event) sdk.Verdict {
		calls++
		if ev.Kind() == "pg.query" {
			// Reads only the classification: cacheable across literals.
			sdk.Annotate("calls", itoa(calls))
			sdk.Cacheable()
			for _, st := range ev.Statements("sql") {
				if st.Class == "ddl" {
					return sdk.Deny("no DDL")
				}
				// Reads the target for writes only, as guard does
				// with read-only targets: two shapes of call.
				if st.Class == "write" && ev.Target() == "read-only-db" {
					return sdk.Deny("read-only target")
				}
			}
			return sdk.Allow()
		}
		if ev.Kind() == "http.response" {
			if ev.Field("status") == "418" {
				return sdk.Deny("teapots are not shown to agents")
			}
			return sdk.Allow()
		}
		method, path := ev.Field("method"), ev.Field("path")
		switch {
		case method == cfg.DenyMethod:
			return sdk.Deny(method + " is not allowed for " + ev.Subject())
		case strings.HasPrefix(path, "/deploy"):
			return sdk.Hold("deploys need a human", "sre", "leads")
		case strings.HasPrefix(path, "/rewrite"):
			ev.SetField("path", "/rewritten")
			ev.SetField("header.X-Policy", "seen")
			return sdk.Allow()
		case strings.HasPrefix(path, "/cached"):
			sdk.Annotate("calls", itoa(calls))
			sdk.Cacheable()
			return sdk.Allow()
		}
		sdk.Annotate("repository", ev.Claim("repository"))
		return sdk.Allow()
	})
}

func itoa(n int) string {
	s := ""
	for n > 0 {
		s = string(rune('0'+n%10)) + s
		n /= 10
	}
	if s == "" {
		return "0"
	}
	return s
}

func main() {}
