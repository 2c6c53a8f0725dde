package echo

import (
	"context"
	"net"

	"github.com/tollgate-dev/tollgate/host/gate"
)

// Registration: the one thing a protocol does to be configured from
// gateway.toml and built by `gateway serve` (which imports the package).
// Echo is imported by tests only, so no binary serves it.
func init() {
	gate.Register(gate.Protocol{
		Name:        "echo",
		NewListener: func() gate.Options { return &ListenerOptions{} },
		// Echo targets have no keys of their own: NewTarget is nil.
		New: func(l gate.Listener, _ map[string]*gate.Target, deps gate.Deps) (gate.Service, error) {
			o := l.Options.(*ListenerOptions)
			return &service{Listener: New(l.Name, o.Target, deps), addr: l.Listen}, nil
		},
	})
}

// ListenerOptions are an echo [[listeners]] table's own keys.
type ListenerOptions struct {
	// Target is the echo target the listener stands in front of.
	Target string `toml:"target"`
}

// Check requires the target, and that it is an echo target.
func (o *ListenerOptions) Check(t *gate.Table) {
	t.TargetRef("target", o.Target)
}

// service is a Listener as gate.Service: it listens on the configured
// address.
type service struct {
	*Listener
	addr string
}

func (s *service) Start() error                   { return s.Listener.Start(s.addr) }
func (s *service) Name() string                   { return s.name }
func (s *service) Addr() net.Addr                 { return s.ln.Addr() }
func (s *service) Shutdown(context.Context) error { return s.Close() }
