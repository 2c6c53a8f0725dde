package ssh

import (
	"sync"
	"time"
)

// limiter counts failed authentications per source address in a fixed
// window: past max failures, attempts from that address fail at once,
// without the token being looked at, until the window ends.
type limiter struct {
	max    int
	window time.Duration
	now    func() time.Time

	mu sync.Mutex
	m  map[string]*failures
}

type failures struct {
	n     int
	start time.Time
}

func newLimiter(max int, window time.Duration) *limiter {
	return &limiter{max: max, window: window, now: time.Now, m: map[string]*failures{}}
}

// blocked reports whether addr has used up its failures.
func (l *limiter) blocked(addr string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	f := l.m[addr]
	if f == nil {
		return false
	}
	if l.now().Sub(f.start) >= l.window {
		delete(l.m, addr)
		return false
	}
	return f.n >= l.max
}

// fail counts a failure of addr.
func (l *limiter) fail(addr string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	if len(l.m) >= 4096 {
		// Many addresses: forget the expired ones (bounded memory under a
		// spray of sources).
		for a, f := range l.m {
			if now.Sub(f.start) >= l.window {
				delete(l.m, a)
			}
		}
	}
	f := l.m[addr]
	if f == nil || now.Sub(f.start) >= l.window {
		f = &failures{start: now}
		l.m[addr] = f
	}
	f.n++
}
