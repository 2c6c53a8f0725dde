package sdk

import "embed"

// Source is this SDK's own source, module file included. `gateway plugin
// new` and `gateway plugin sdk` write it beside a plugin, so that the
// plugin builds anywhere with a replace directive, without a module proxy
// that serves the SDK (README.md, "Depending on the SDK").
//
// This file has no build constraint, so that the gateway, a native
// program, can import the package for it.
//
//go:embed go.mod README.md ABI.md *.go sdktest/*.go
var Source embed.FS
