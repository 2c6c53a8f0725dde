package gate

import (
	"context"
	"fmt"
	"net"
	"sync"

	"github.com/tollgate-dev/tollgate/host/config"
)

// The config types a protocol package reads and checks, so that it
// imports gate (and event) and nothing else of the host.
type (
	// Listener is the keys every [[listeners]] table has; the protocol's
	// own are in its Options, as its Protocol.NewListener made them.
	Listener = config.Listener
	// Target is the keys every [[targets]] table has; the protocol's own
	// are in its Options.
	Target = config.Target
	// Credential is a target's credential (secrets resolved at start).
	Credential = config.Credential
	// Table is one listener or target table, as Options.Check sees it.
	Table = config.Table
	// Options is a protocol's part of one table (a pointer to a struct
	// with toml tags) with the Check that applies its defaults, ranges
	// and cross-checks.
	Options = config.Options
	// Duration is a duration key ("10s"); Set says it was written.
	Duration = config.Duration
	// Secret is a credential reference (env:NAME or file:PATH).
	Secret = config.Secret
)

// Service is one listener a protocol serves. New builds it without side
// effects; Start binds its socket and serves in the background; Shutdown
// stops accepting, lets in-flight work finish until ctx ends, then cuts
// off the rest.
type Service interface {
	Start() error
	Name() string
	Addr() net.Addr
	Shutdown(ctx context.Context) error
}

// Protocol is what a protocol package registers, from its init, with
// Register: its config (the keys of its listener and target tables,
// their defaults and checks, what serve refuses) and its constructor.
type Protocol struct {
	// Name is the value of `protocol = ...` in gateway.toml.
	Name string
	// NewListener and NewTarget return a fresh options value for one
	// table of the protocol (NewTarget may be nil); see config.Protocol.
	NewListener func() Options
	NewTarget   func() Options
	// Serve, when set, reports what `gateway serve` refuses at start for
	// one listener (dev: serve --dev).
	Serve func(t *Table, dev bool)
	// New builds the service of one listener; targets holds every target
	// of the config by name, with secrets resolved, and l.Options and each
	// target's Options are what the protocol's Check accepted.
	New func(l Listener, targets map[string]*Target, deps Deps) (Service, error)
	// Try, when set, returns the commands a newcomer can run against the
	// listener (`serve --dev` prints them), with $TOKEN standing for the
	// token: a curl, a psql.
	Try func(l Listener, targets []Target) []string
}

// registered is what Register keeps beside the config's registry.
var registered sync.Map // protocol name → Protocol

// Register makes a protocol known to the config (config.Parse decodes
// and checks its tables, `gateway check` validates them) and to NewService.
// A protocol package calls it from init; importing the package is then
// the one line that adds the protocol to a binary.
//
// # Errors
//
// It panics when p has no Name, NewListener or New, or when the name is
// already registered.
func Register(p Protocol) {
	if p.New == nil {
		panic(fmt.Sprintf("gate: protocol %q registered without New", p.Name))
	}
	config.RegisterProtocol(config.Protocol{Name: p.Name, NewListener: p.NewListener, NewTarget: p.NewTarget, Serve: p.Serve})
	registered.Store(p.Name, p)
}

// Protocols lists the registered protocols' names, sorted.
func Protocols() []string { return config.Protocols() }

// NewService builds the service of one listener with its protocol's New.
//
// # Errors
//
// A protocol that is not registered, or New's error.
func NewService(l Listener, targets map[string]*Target, deps Deps) (Service, error) {
	v, ok := registered.Load(l.Protocol)
	if !ok {
		return nil, fmt.Errorf("gate: listener %s: unknown protocol %q", l.Name, l.Protocol)
	}
	return v.(Protocol).New(l, targets, deps)
}

// Try is what the listener's protocol suggests a newcomer runs against
// it (Protocol.Try); nil when it suggests nothing.
func Try(l Listener, targets []Target) []string {
	v, ok := registered.Load(l.Protocol)
	if !ok || v.(Protocol).Try == nil {
		return nil
	}
	return v.(Protocol).Try(l, targets)
}
