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
}

const maxCachedVerdicts = 10000

func (vc *verdictCache) key(ev *event.Event, names []string) (string, bool) {
	var b strings.Builder
	b.WriteString(ev.Kind)
	for _, n := range names {
		v, ok := attribute(ev, n)
		if !ok {
			return "", false
		}
		b.WriteByte(0)
		b.WriteString(v)
	}
	return b.String(), true
}

func (vc *verdictCache) lookup(ev *event.Event) (event.Verdict, bool) {
	vc.mu.Lock()
	defer vc.mu.Unlock()
	names, ok := vc.names[ev.Kind]
	if !ok {
		return event.Verdict{}, false
	}
	k, ok := vc.key(ev, names)
	if !ok {
		return event.Verdict{}, false
	}
	v, ok := vc.byKey[k]
	return v, ok
}

// store remembers v. Rewrites are not cached: their key would have to be
// the values before the change, and masking verdicts are cheap to redo.
func (vc *verdictCache) store(ev *event.Event, read []string, v event.Verdict) {
	if len(v.Changes) > 0 {
		return
	}
	vc.mu.Lock()
	defer vc.mu.Unlock()
	if vc.names == nil {
		vc.names, vc.byKey = map[string][]string{}, map[string]event.Verdict{}
	}
	names := dedupe(read)
	k, ok := vc.key(ev, names)
	if !ok {
		return
	}
	if len(vc.byKey) >= maxCachedVerdicts {
		clear(vc.byKey)
	}
	vc.names[ev.Kind] = names
	vc.byKey[k] = v
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
