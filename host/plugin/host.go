package plugin

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/tetratelabs/wazero"

	"github.com/tollgate-dev/tollgate/host/config"
	"github.com/tollgate-dev/tollgate/host/event"
)

// Host loads plugins. It owns the on-disk compilation cache they share.
type Host struct {
	cache   wazero.CompilationCache
	log     *slog.Logger
	maskKey []byte
	now     func() time.Time
	metrics *metrics
}

// Options configure a Host.
type Options struct {
	CacheDir string // compiled code, reused across restarts; "" keeps it in memory
	MaskKey  []byte // the per-deployment key of the hash mask strategy
	Log      *slog.Logger
	// Now is the clock behind the "time" attribute; nil: time.Now.
	// `gateway plugin test` sets it to the test event's time.
	Now func() time.Time
}

// NewHost prepares the compilation cache.
func NewHost(o Options) (*Host, error) {
	h := &Host{log: o.Log, maskKey: o.MaskKey, now: o.Now, metrics: newMetrics()}
	if h.now == nil {
		h.now = time.Now
	}
	if h.log == nil {
		h.log = slog.Default()
	}
	if o.CacheDir == "" {
		h.cache = wazero.NewCompilationCache()
		return h, nil
	}
	c, err := wazero.NewCompilationCacheWithDir(o.CacheDir)
	if err != nil {
		return nil, fmt.Errorf("plugin: compilation cache: %w", err)
	}
	h.cache = c
	return h, nil
}

// Close releases the compilation cache (plugins close on their own).
func (h *Host) Close(ctx context.Context) error { return h.cache.Close(ctx) }

// Chain runs plugins in order: each sees the changes of those before it,
// the first deny or hold stops the chain.
type Chain struct{ plugins []*Plugin }

var _ event.Chain = (*Chain)(nil)

// NewChain orders plugins as given.
func NewChain(ps ...*Plugin) *Chain { return &Chain{plugins: ps} }

func (c *Chain) Process(ctx context.Context, ev *event.Event) (event.Verdict, error) {
	out := event.Verdict{Action: event.Allow}
	for _, p := range c.plugins {
		if !p.Wants(ev.Kind) {
			continue
		}
		v, err := p.Process(ctx, ev)
		if err != nil {
			return v, err
		}
		out.Annotations = append(out.Annotations, v.Annotations...)
		switch v.Action {
		case event.Deny, event.Hold:
			v.Annotations = out.Annotations
			if len(out.Changes) > 0 && v.Changes == nil {
				v.Changes = out.Changes
			}
			return v, nil
		case event.Rewrite:
			out.Action, out.Plugin = event.Rewrite, v.Plugin
			if out.Changes == nil {
				out.Changes = map[string]string{}
			}
			for k, val := range v.Changes {
				out.Changes[k] = val
			}
		default:
			if out.Plugin == "" {
				out.Plugin = v.Plugin
			}
		}
	}
	return out, nil
}

// Wants reports whether any plugin subscribed to kind.
func (c *Chain) Wants(kind string) bool {
	for _, p := range c.plugins {
		if p.Wants(kind) {
			return true
		}
	}
	return false
}

// WantsField reports whether any plugin asked for sub (event.WantsBody).
func (c *Chain) WantsField(sub string) bool {
	for _, p := range c.plugins {
		if p.WantsField(sub) {
			return true
		}
	}
	return false
}

// Close releases every plugin.
func (c *Chain) Close(ctx context.Context) error {
	for _, p := range c.plugins {
		p.Close(ctx)
	}
	return nil
}

// LoadChain loads gateway.toml's [[plugins]] in order. Paths resolve with
// resolve (the config's directory).
func (h *Host) LoadChain(ctx context.Context, cfgs []config.Plugin, resolve func(string) string) (*Chain, error) {
	var ps []*Plugin
	for _, pc := range cfgs {
		p, err := h.LoadConfigured(ctx, pc, resolve)
		if err != nil {
			NewChain(ps...).Close(ctx)
			return nil, err
		}
		ps = append(ps, p)
	}
	return NewChain(ps...), nil
}

// LoadConfigured loads one [[plugins]] entry as LoadChain does: its file
// (path resolved with resolve), its limits and its config.
func (h *Host) LoadConfigured(ctx context.Context, pc config.Plugin, resolve func(string) string) (*Plugin, error) {
	wasm, err := os.ReadFile(resolve(pc.Path))
	if err != nil {
		return nil, fmt.Errorf("plugin %s: %w", pc.Name, err)
	}
	return h.Load(ctx, pc, wasm, limitsOf(pc))
}

func limitsOf(pc config.Plugin) Limits {
	l := Limits{MemoryPages: pc.MemoryPages, Timeout: pc.Timeout.Duration, Fuel: pc.Fuel, Instances: pc.Instances, PoolWait: pc.PoolWait.Duration}
	if l.MemoryPages == 0 {
		l.MemoryPages = 512 // 32 MiB; a Go guest needs at least 37 pages
	}
	if l.Timeout == 0 {
		l.Timeout = 100 * time.Millisecond
	}
	if l.Fuel == 0 {
		l.Fuel = DefaultFuel
	}
	if l.Instances == 0 {
		l.Instances = 4
	}
	return l
}

// DefaultFuel is the CPU bound per call: about 0.1-0.3 s of guest CPU at
// 2-6 ns per unit, far above what a policy decision needs, low enough that
// a looping plugin stops long before a client gives up.
const DefaultFuel = 50_000_000

// CacheDir is where compiled plugin code is kept under the data directory.
func CacheDir(dataDir string) string { return filepath.Join(dataDir, "wasm-cache") }
