package plugin

import (
	"bytes"
	"strings"
	"sync/atomic"
)

// crashLog keeps what a guest writes to stderr during one call, bounded:
// a Go guest prints its panic there before it traps.
type crashLog struct{ buf []byte }

// crashLogMax bounds what is kept of one call's stderr.
const crashLogMax = 4 << 10

func (c *crashLog) Write(p []byte) (int, error) {
	if room := crashLogMax - len(c.buf); room > 0 {
		c.buf = append(c.buf, p[:min(room, len(p))]...)
	}
	return len(p), nil
}

func (c *crashLog) reset() { c.buf = c.buf[:0] }

// failureMax bounds the message a failure leaves in the row and the log.
const failureMax = 512

// failure says what went wrong in a failed call: the guest's panic
// message when it printed one (Go and TinyGo guests write "panic: ..."
// then their goroutines), else the first line of the host's error (a
// timeout, fuel or memory exhausted; the wasm stack trace that follows
// is for the debug log).
func failure(stderr []byte, err error) string {
	if i := bytes.Index(stderr, []byte("panic: ")); i >= 0 {
		msg := stderr[i:]
		if j := bytes.Index(msg, []byte("\n\ngoroutine ")); j >= 0 {
			msg = msg[:j]
		}
		return cut(strings.TrimSpace(string(msg)))
	}
	line, _, _ := strings.Cut(err.Error(), "\n")
	if s := strings.TrimSpace(string(stderr)); s != "" {
		line += " (stderr: " + s + ")"
	}
	return cut(line)
}

func cut(s string) string {
	if len(s) > failureMax {
		return s[:failureMax] + "…"
	}
	return s
}

// pluginStats counts what went wrong with a plugin, for /metrics.
type pluginStats struct {
	failures      atomic.Uint64 // calls answered by on_error
	poolWaits     atomic.Uint64 // calls that found no idle instance
	poolExhausted atomic.Uint64 // calls refused after pool_wait
}

// Stats is a plugin's counters since it was loaded.
type Stats struct {
	Name          string
	Failures      uint64
	PoolWaits     uint64
	PoolExhausted uint64
}

// Stats reports the counters of every plugin of the chain, in order.
func (c *Chain) Stats() []Stats {
	out := make([]Stats, len(c.plugins))
	for i, p := range c.plugins {
		out[i] = p.Stats()
	}
	return out
}

// Stats reports the current chain's plugin counters (they start again
// from zero when a reload loads the plugins anew).
func (r *Reloadable) Stats() []Stats {
	c, release := r.Acquire()
	defer release()
	if s, ok := c.(interface{ Stats() []Stats }); ok {
		return s.Stats()
	}
	return nil
}

// Stats reports the plugin's counters.
func (p *Plugin) Stats() Stats {
	return Stats{Name: p.name, Failures: p.stats.failures.Load(), PoolWaits: p.stats.poolWaits.Load(), PoolExhausted: p.stats.poolExhausted.Load()}
}
