package config

import (
	"fmt"
	"reflect"
	"sort"
	"strings"
	"sync"
	"time"
)

// Protocol is what a protocol package tells the config about itself: its
// name (the value of `protocol = ...`) and its own part of a
// [[listeners]] and a [[targets]] table, the way a Caddy module or a
// CoreDNS plugin parses its own configuration. The host decodes the keys
// every protocol has into [Listener] and [Target]; the rest of the same
// table is decoded into the value NewListener or NewTarget makes, which
// lands in Listener.Options or Target.Options.
//
// Problems keep their FILE:LINE:COL: an unknown key is reported against
// the common keys and the protocol's own (with a "did you mean"), a value
// of the wrong type where it is written, and each Options.Check reports
// with keys relative to its table.
type Protocol struct {
	Name string
	// NewListener returns a fresh options value for one listener table: a
	// pointer to a struct whose fields carry toml tags.
	NewListener func() Options
	// NewTarget does the same for one target table; nil when the
	// protocol's targets have no keys of their own (Options is then nil,
	// and the target's common keys are not checked beyond the shared
	// rules).
	NewTarget func() Options
	// Serve, when set, reports what `gateway serve` refuses at start for
	// one of the protocol's listeners (dev: serve --dev), so that `gateway
	// check` says it first ([Config.ValidateServe]). t is the listener's
	// table; its options have been checked.
	Serve func(t *Table, dev bool)
}

// Options is a protocol's part of one table. Check runs after the whole
// file is decoded and the host's defaults are applied, in file order,
// targets before listeners. It applies the defaults of keys left out
// ([Table.Written]), checks the ranges of the keys written (the range
// helpers: a written value is honoured or refused, never replaced), and
// relates the table to the rest of the config ([Table.TargetRef]).
type Options interface {
	Check(t *Table)
}

func (p Protocol) listenerOptions() func() Options { return p.NewListener }
func (p Protocol) targetOptions() func() Options   { return p.NewTarget }

var registry = struct {
	sync.RWMutex
	m map[string]Protocol
}{m: map[string]Protocol{}}

// RegisterProtocol makes a protocol known to Parse. Protocol packages
// call it from init (through gate), so a binary serves, and `gateway
// check` validates, the protocols it imports.
//
// # Errors
//
// It panics when p has no name or no NewListener, or when the name is
// already registered: both are mistakes in the program, not the config.
func RegisterProtocol(p Protocol) {
	if p.Name == "" || p.NewListener == nil {
		panic("config: RegisterProtocol needs a Name and NewListener")
	}
	registry.Lock()
	defer registry.Unlock()
	if _, dup := registry.m[p.Name]; dup {
		panic(fmt.Sprintf("config: protocol %q registered twice", p.Name))
	}
	registry.m[p.Name] = p
}

// LookupProtocol returns the registered protocol called name.
func LookupProtocol(name string) (Protocol, bool) {
	registry.RLock()
	defer registry.RUnlock()
	p, ok := registry.m[name]
	return p, ok
}

// Protocols lists the registered protocols' names, sorted.
func Protocols() []string {
	registry.RLock()
	defer registry.RUnlock()
	out := make([]string, 0, len(registry.m))
	for n := range registry.m {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

// unknownProtocol is the problem of a table whose protocol is not
// registered: it names the ones that are.
func unknownProtocol(ps *problemList, path, name string) {
	known := Protocols()
	if len(known) == 0 {
		ps.add(path, "unknown protocol %q (this build serves none)", name)
		return
	}
	ps.add(path, "unknown protocol %q (this build serves: %s)", name, strings.Join(known, ", "))
}

// Table is one [[listeners]] or [[targets]] table, as its protocol's
// Options.Check sees it. Keys are relative to the table ("max_connections",
// "sensitive[0].columns"); problems are placed at the key in the file, or
// at the table when the key is not written.
type Table struct {
	path     string
	c        *Config
	ps       *problemList
	listener *Listener
	target   *Target
}

// Path is the table's place in the file, e.g. "listeners[1]".
func (t *Table) Path() string { return t.path }

// Listener is the common part of a listener table; nil for a target table.
func (t *Table) Listener() *Listener { return t.listener }

// Self is the common part of a target table; nil for a listener table.
func (t *Table) Self() *Target { return t.target }

// Problem reports something wrong with key (relative to the table; ""
// for the table itself).
func (t *Table) Problem(key, format string, args ...any) {
	t.ps.add(t.key(key), format, args...)
}

func (t *Table) key(key string) string {
	if key == "" {
		return t.path
	}
	return t.path + "." + key
}

// Written reports whether key (relative to the table) is written in the
// file: a default fills only a key that is not.
func (t *Table) Written(key string) bool {
	if t.c.src.index == nil {
		return false
	}
	_, ok := t.c.src.index.Lookup(t.key(key))
	return ok
}

// Target returns the target called name.
func (t *Table) Target(name string) (*Target, bool) { return t.c.Target(name) }

// TargetRef checks that key names a target of the table's protocol and
// returns it; it reports the problem and returns nil otherwise. An empty
// name reports "target is required" at the table that holds key.
func (t *Table) TargetRef(key, name string) *Target {
	proto := t.protocol()
	tg, ok := t.c.Target(name)
	switch {
	case name == "":
		parent, leaf := "", key
		if i := strings.LastIndexByte(key, '.'); i >= 0 {
			parent, leaf = key[:i], key[i+1:]
		}
		t.Problem(parent, "%s is required", leaf)
	case !ok:
		t.Problem(key, "no target named %q", name)
	case tg.Protocol != proto:
		t.Problem(key, "target %q speaks %s, the listener %s", name, tg.Protocol, proto)
	default:
		return tg
	}
	return nil
}

func (t *Table) protocol() string {
	if t.listener != nil {
		return t.listener.Protocol
	}
	return t.target.Protocol
}

// Duration checks a duration key against [min, max] when it is written,
// and sets it to def when it is not. A written value is honoured or
// refused, never replaced; when min is 0, a written zero is honoured.
func (t *Table) Duration(key string, d *Duration, min, max, def time.Duration) {
	if !t.Written(key) {
		d.Duration = def
		return
	}
	if d.Duration < min || d.Duration > max {
		t.Problem(key, "must be %s", Between(int64(min), int64(max), true))
	}
}

// Int checks a count or size key against [min, max] when it is written,
// and sets it to def when it is not, as Duration does.
func (t *Table) Int(key string, n *int, min, max, def int) {
	if !t.Written(key) {
		*n = def
		return
	}
	if *n < min || *n > max {
		t.Problem(key, "must be %s", Between(int64(min), int64(max), false))
	}
}

// Int64 is Int for an int64 key.
func (t *Table) Int64(key string, n *int64, min, max, def int64) {
	if !t.Written(key) {
		*n = def
		return
	}
	if *n < min || *n > max {
		t.Problem(key, "must be %s", Between(min, max, false))
	}
}

// Between words a range as every range problem does: "between 1s and
// 10m", "between 1024 and 1073741824 (1 GiB)". duration says whether min
// and max are nanoseconds.
func Between(min, max int64, duration bool) string {
	r := keyRange{min: min, max: max}
	if duration {
		return "between " + formatDuration(time.Duration(min)) + " and " + formatDuration(time.Duration(max))
	}
	return "between " + r.formatNumber(min) + " and " + r.formatNumber(max)
}

// optionsType is the struct type behind a protocol's options value, for
// unknown keys and suggestions; nil when it makes none.
func optionsType(newOpts func() Options) reflect.Type {
	if newOpts == nil {
		return nil
	}
	t := reflect.TypeOf(newOpts())
	for t != nil && t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if t == nil || t.Kind() != reflect.Struct {
		return nil
	}
	return t
}

// RequireSecret reports a secret key (relative to the table) that is not
// written; that a written one is a reference, never the secret inline,
// the host checks for every credential.
func (t *Table) RequireSecret(key string, s Secret) {
	if !s.IsSet() {
		t.Problem(key, "is required (env:NAME or file:PATH)")
	}
}
