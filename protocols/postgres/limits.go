package postgres

import (
	"fmt"
	"log/slog"
	"net"
	"sync"
	"time"
)

// maxRefusing bounds the connections over a cap that are still being
// answered (TLS and startup are read so that the client can show the
// 53300): past it, a connection over a cap is closed at once, so that a
// flood holds no more than this many descriptors beyond the caps.
const maxRefusing = 64

// refusal is why a connection over a cap is refused, in the client's words.
type refusal struct {
	cap string // the config key: max_connections or max_connections_per_source
	msg string
}

// admission counts a listener's connections, in all and per source IP,
// from accept to close, whether or not they logged in.
type admission struct {
	mu       sync.Mutex
	total    int
	bySource map[string]int
	refusing int

	drops    int       // closed unanswered since the last log line
	lastDrop time.Time // when that line was written
}

// enter admits a connection from src (nil refusal), or takes one of the
// maxRefusing slots to refuse it properly. ok is false when neither is
// possible: the caller closes the connection at once. Every ok enter is
// paired with a leave with the same refusal.
func (a *admission) enter(src string, maxConns, perSource int) (r *refusal, ok bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	switch {
	case a.total >= maxConns:
		r = &refusal{cap: "max_connections", msg: fmt.Sprintf("too many connections: this gateway listener is at max_connections = %d", maxConns)}
	case a.bySource[src] >= perSource:
		r = &refusal{cap: "max_connections_per_source", msg: fmt.Sprintf("too many connections from %s: this gateway listener allows max_connections_per_source = %d", src, perSource)}
	default:
		if a.bySource == nil {
			a.bySource = map[string]int{}
		}
		a.total++
		a.bySource[src]++
		return nil, true
	}
	if a.refusing >= maxRefusing {
		return nil, false
	}
	a.refusing++
	return r, true
}

func (a *admission) leave(src string, r *refusal) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if r != nil {
		a.refusing--
		return
	}
	a.total--
	if a.bySource[src]--; a.bySource[src] <= 0 {
		delete(a.bySource, src)
	}
}

// dropped counts a connection closed unanswered and logs the count at
// most once a second: a flood must not become a flood of log lines.
func (a *admission) dropped(log *slog.Logger, listener string) {
	a.mu.Lock()
	a.drops++
	if time.Since(a.lastDrop) < time.Second {
		a.mu.Unlock()
		return
	}
	n := a.drops
	a.drops, a.lastDrop = 0, time.Now()
	a.mu.Unlock()
	log.Warn("postgres: connections over the caps closed unanswered (too many refusals in progress)",
		"listener", listener, "closed", n, "refusals_in_progress", maxRefusing)
}

// sourceOf is the client's IP, the key of max_connections_per_source.
func sourceOf(addr net.Addr) string {
	if ta, ok := addr.(*net.TCPAddr); ok {
		return ta.IP.String()
	}
	if host, _, err := net.SplitHostPort(addr.String()); err == nil {
		return host
	}
	return addr.String()
}
