// A plugin that allows everything without asking the host anything: the
// floor of what one plugin call costs.
package main

import "github.com/tollgate-dev/tollgate/sdk"

func init() {
	sdk.Subscribe("*")
	sdk.HandleEvent(func(sdk.Event) sdk.Verdict { return sdk.Allow() })
}

func main() {}
