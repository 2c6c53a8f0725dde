// A plugin that fails on purpose, chosen by the request path, to prove the
// host contains every kind of failure.
package main

import "github.com/tollgate-dev/tollgate/sdk"

var sink [][]byte

func recurse(n int) int { return recurse(n+1) + 1 }

func init() {
	sdk.Subscribe("http.request")
	sdk.HandleEvent(func(ev sdk.Event) sdk.Verdict {
		switch ev.Field("path") {
		case "/loop":
			for {
			}
		case "/panic":
			panic("the plugin author's bug")
		case "/oom":
			for {
				sink = append(sink, make([]byte, 1<<20))
			}
		case "/recurse":
			return sdk.Deny(itoa(recurse(0)))
		}
		return sdk.Allow()
	})
}

func itoa(n int) string { return string(rune('0' + n%10)) }

func main() {}
