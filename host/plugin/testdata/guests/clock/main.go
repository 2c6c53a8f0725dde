// A plugin that decides by the host's clock and (wrongly) calls it
// cacheable: the host must still call it for every event.
package main

import "github.com/tollgate-dev/tollgate/sdk"

func init() {
	sdk.Subscribe("http.request")
	sdk.HandleEvent(func(ev sdk.Event) sdk.Verdict {
		sdk.Cacheable()
		if ev.Time().Hour() >= 18 {
			return sdk.Deny("after 18:00 UTC")
		}
		return sdk.Allow()
	})
}

func main() {}
