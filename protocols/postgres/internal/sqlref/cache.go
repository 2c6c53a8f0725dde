package sqlref

import (
	"container/list"
	"sync"
)

// The cache's bounds, per policy: entries, and bytes of statement text.
// Longer statements are not cached (they are rare and costly to hold).
const (
	cacheEntries  = 4096
	cacheBytes    = 4 << 20
	cacheMaxQuery = 16 << 10
)

// key is a statement's exact text, or its text with literals normalized
// (the two never share an entry: a normalized text can be a real query).
type key struct {
	norm bool
	s    string
}

type result struct {
	a   Analysis
	err error
}

type entry struct {
	k key
	r result
}

// cache is a bounded LRU of analyses.
type cache struct {
	mu         sync.Mutex
	max, bytes int
	maxBytes   int
	ll         *list.List
	m          map[key]*list.Element
}

func newCache(entries, bytes int) *cache {
	return &cache{max: entries, maxBytes: bytes, ll: list.New(), m: map[key]*list.Element{}}
}

func (c *cache) get(k key) (result, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.m[k]
	if !ok {
		return result{}, false
	}
	c.ll.MoveToFront(e)
	return e.Value.(*entry).r, true
}

func (c *cache) put(k key, r result) {
	if len(k.s) > cacheMaxQuery {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if e, ok := c.m[k]; ok {
		e.Value.(*entry).r = r
		c.ll.MoveToFront(e)
		return
	}
	c.m[k] = c.ll.PushFront(&entry{k: k, r: r})
	c.bytes += len(k.s)
	for c.ll.Len() > c.max || c.bytes > c.maxBytes {
		e := c.ll.Back()
		c.ll.Remove(e)
		old := e.Value.(*entry).k
		delete(c.m, old)
		c.bytes -= len(old.s)
	}
}

func (c *cache) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.ll.Len()
}
