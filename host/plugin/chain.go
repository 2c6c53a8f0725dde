// Package plugin runs the chain of plugins every event passes through.
//
// This build has the chain's contract and its empty form; the WebAssembly
// runtime that loads [[plugins]] from gateway.toml lands with ABI v1.
package plugin

import (
	"context"
	"errors"

	"github.com/tollgate-dev/tollgate/host/config"
	"github.com/tollgate-dev/tollgate/host/event"
)

// Empty is the chain with no plugins: every event is allowed unchanged.
type Empty struct{}

var _ event.Chain = Empty{}

func (Empty) Process(context.Context, *event.Event) (event.Verdict, error) {
	return event.Verdict{Action: event.Allow}, nil
}

// ErrNoRuntime is returned by New when plugins are configured but this
// build cannot run them. Refusing to start is the only safe answer: a
// gateway that silently skipped the operator's masking would leak data.
var ErrNoRuntime = errors.New("plugin: this build has no WebAssembly runtime yet; remove [[plugins]] from the config")

// New builds the chain that gateway.toml describes.
func New(plugins []config.Plugin) (event.Chain, error) {
	if len(plugins) > 0 {
		return nil, ErrNoRuntime
	}
	return Empty{}, nil
}
