//go:build wasip1

// A plugin that spins on every call until the host's CPU bound (fuel or
// timeout) stops it: the soak swaps it in for a while to show that a
// plugin exhausting its bound on every call is contained (each request is
// refused by on_error, has its row, and the gateway keeps serving).
package main

import "github.com/tollgate-dev/tollgate/sdk"

var n int

func init() {
	sdk.Subscribe("http.request")
	sdk.Subscribe("pg.query")
	sdk.HandleEvent(func(ev sdk.Event) sdk.Verdict {
		for {
			n++
		}
	})
}

func main() {}
