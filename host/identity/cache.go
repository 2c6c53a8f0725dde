package identity

import (
	"sync"
	"time"

	"github.com/tollgate-dev/tollgate/host/event"
)

// tokenCache remembers verified tokens by their SHA-256 until they expire,
// because checking a signature costs tens of microseconds and an agent
// sends the same token with every request. It holds hashes, never tokens.
type tokenCache struct {
	mu      sync.Mutex
	max     int
	entries map[[32]byte]cached
}

type cached struct {
	p     *event.Principal
	until time.Time
}

func newTokenCache(max int) *tokenCache {
	return &tokenCache{max: max, entries: make(map[[32]byte]cached)}
}

func (c *tokenCache) get(key [32]byte, now time.Time) (*event.Principal, bool) {
	if c.max <= 0 {
		return nil, false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.entries[key]
	if !ok {
		return nil, false
	}
	if now.After(e.until) {
		delete(c.entries, key)
		return nil, false
	}
	return e.p, true
}

func (c *tokenCache) put(key [32]byte, p *event.Principal, until time.Time) {
	if c.max <= 0 {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.entries) >= c.max {
		now := time.Now()
		for k, e := range c.entries {
			if now.After(e.until) {
				delete(c.entries, k)
			}
		}
		// Still full: drop arbitrary entries (map order is random), which
		// costs those tokens one more signature check, nothing more.
		for k := range c.entries {
			if len(c.entries) < c.max {
				break
			}
			delete(c.entries, k)
		}
	}
	c.entries[key] = cached{p: p, until: until}
}
