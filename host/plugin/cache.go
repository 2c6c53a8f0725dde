package plugin

import (
	"strings"
	"sync"

	"github.com/tollgate-dev/tollgate/host/event"
)

// verdictCache remembers verdicts a plugin marked cacheable, keyed by the
// values of the attributes it read. The thousandth identical statement from
// an ORM then costs a map lookup instead of a Wasm call.
//
// A plugin that marks a verdict cacheable promises it depends on nothing
// but what it read, and that it reads the same attributes for every event
// of a kind (the SDK's guard and mask do).
type verdictCache struct {
	mu    sync.Mutex
	names map[string][]string      // kind → attribute names read
	byKey map[string]event.Verdict // kind + values → verdict
	buf   []byte                   // the key being built, under mu
}

const maxCachedVerdicts = 10000

// sqlClassPrefix marks a read of a field's SQL classification (the
// sql_classify host function) rather than of its text.
const sqlClassPrefix = "sqlclass:"

// key builds the cache key of ev in vc.buf, valid until the next call;
// the caller holds mu. A lookup indexes the map with string(key), which
// Go does without copying, so a hit allocates nothing.
func (vc *verdictCache) key(p *Plugin, ev *event.Event, names []string) ([]byte, bool) {
	b := append(vc.buf[:0], ev.Kind...)
	for _, n := range names {
		v, ok := p.attribute(ev, n)
		if !ok {
			return nil, false
		}
		b = append(b, 0)
		b = append(b, v...)
	}
	if cap(b) <= 64<<10 {
		vc.buf = b
	}
	return b, true
}

func (vc *verdictCache) lookup(p *Plugin, ev *event.Event) (event.Verdict, bool) {
	vc.mu.Lock()
	defer vc.mu.Unlock()
	names, ok := vc.names[ev.Kind]
	if !ok {
		return event.Verdict{}, false
	}
	k, ok := vc.key(p, ev, names)
	if !ok {
		return event.Verdict{}, false
	}
	v, ok := vc.byKey[string(k)]
	return v, ok
}

// store remembers v. Rewrites are not cached: their key would have to be
// the values before the change, and masking verdicts are cheap to redo.
func (vc *verdictCache) store(p *Plugin, ev *event.Event, read []string, v event.Verdict) {
	if len(v.Changes) > 0 {
		return
	}
	vc.mu.Lock()
	defer vc.mu.Unlock()
	if vc.names == nil {
		vc.names, vc.byKey = map[string][]string{}, map[string]event.Verdict{}
	}
	names := dedupe(read)
	k, ok := vc.key(p, ev, names)
	if !ok {
		return
	}
	if len(vc.byKey) >= maxCachedVerdicts {
		clear(vc.byKey)
	}
	vc.names[ev.Kind] = names
	vc.byKey[string(k)] = v
}

func dedupe(names []string) []string {
	seen := map[string]bool{}
	out := names[:0:0]
	for _, n := range names {
		if !seen[n] {
			seen[n] = true
			out = append(out, n)
		}
	}
	return out
}

// attribute resolves a name the guest read, including classifications.
func (p *Plugin) attribute(ev *event.Event, name string) (string, bool) {
	if field, ok := strings.CutPrefix(name, sqlClassPrefix); ok {
		v, ok := attribute(ev, field)
		if !ok {
			return "", false
		}
		return p.classify(v), true
	}
	return attribute(ev, name)
}
