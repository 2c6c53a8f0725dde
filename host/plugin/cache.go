package plugin

import (
	"slices"
	"strings"
	"sync"

	"github.com/tollgate-dev/tollgate/host/event"
)

// verdictCache remembers verdicts a plugin marked cacheable, keyed by the
// values of the attributes it read. The thousandth identical statement from
// an ORM then costs a map lookup instead of a Wasm call.
//
// A plugin that marks a verdict cacheable promises it depends on nothing
// but what it read. It may read different attributes for different
// events (guard reads the target only when it has read-only targets to
// check): each set of attributes a call read is kept, and a lookup tries
// each. That is sound because a plugin's path depends only on what it
// read: an event with the same values for one set would take the same
// path, read the same set, and get the same verdict.
type verdictCache struct {
	mu    sync.Mutex
	names map[string][][]string    // kind → the sets of attribute names calls read
	byKey map[string]event.Verdict // kind + set + values → verdict
	buf   []byte                   // the key being built, under mu
}

// maxNameSets bounds the attribute sets kept per kind; a plugin reading
// more shapes than this is answered by calls for the rest.
const maxNameSets = 8

const maxCachedVerdicts = 10000

// sqlClassPrefix marks a read of a field's SQL classification (the
// sql_classify host function) rather than of its text.
const sqlClassPrefix = "sqlclass:"

// key builds the cache key of ev in vc.buf, valid until the next call;
// the caller holds mu. A lookup indexes the map with string(key), which
// Go does without copying, so a hit allocates nothing.
func (vc *verdictCache) key(p *Plugin, ev *event.Event, set int, names []string) ([]byte, bool) {
	b := append(vc.buf[:0], ev.Kind...)
	b = append(b, 0, byte(set))
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
	for i, names := range vc.names[ev.Kind] {
		k, ok := vc.key(p, ev, i, names)
		if !ok {
			continue
		}
		if v, ok := vc.byKey[string(k)]; ok {
			return v, true
		}
	}
	return event.Verdict{}, false
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
		vc.names, vc.byKey = map[string][][]string{}, map[string]event.Verdict{}
	}
	names := dedupe(read)
	sets := vc.names[ev.Kind]
	set := slices.IndexFunc(sets, func(s []string) bool { return slices.Equal(s, names) })
	if set < 0 {
		if len(sets) >= maxNameSets {
			return
		}
		set = len(sets)
		vc.names[ev.Kind] = append(sets, names)
	}
	k, ok := vc.key(p, ev, set, names)
	if !ok {
		return
	}
	if len(vc.byKey) >= maxCachedVerdicts {
		clear(vc.byKey)
	}
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
