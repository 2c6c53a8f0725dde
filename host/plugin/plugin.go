package plugin

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
	"github.com/tetratelabs/wazero/imports/wasi_snapshot_preview1"

	"github.com/tollgate-dev/tollgate/host/access/glob"
	"github.com/tollgate-dev/tollgate/host/config"
	"github.com/tollgate-dev/tollgate/host/event"
	"github.com/tollgate-dev/tollgate/host/plugin/internal/fuel"
	"github.com/tollgate-dev/tollgate/internal/detect"
)

// Plugin is one loaded module with its config, its pool of instances and
// the patterns it compiled. It is safe for concurrent use.
type Plugin struct {
	name       string
	allowOnErr bool
	timeout    time.Duration
	poolWait   time.Duration
	fuel       int64
	log        *slog.Logger
	configJSON []byte
	maskKey    []byte
	now        func() time.Time

	rt       wazero.Runtime
	compiled wazero.CompiledModule
	hasRows  bool

	mu     sync.Mutex // guards the fields below, written while loading
	frozen bool       // subs, rowCols, rowFind recorded; read without the lock from now on
	subs   map[string]bool
	// Row batches reach the plugin only when a column name matches one of
	// rowCols or the pattern rowFind finds something; none set: always.
	rowCols []string
	rowFind []int32
	// schema is what the plugin declared of its config (config_schema),
	// nil when it declared nothing; schemaErr, a declaration refused.
	schema    *Schema
	schemaErr error
	patterns  []*detect.Set
	specs     map[string]int32
	streams   map[string]*detect.Stream // session + field → stream being masked
	sqlCache  map[string]string         // SQL text → classification

	idle chan *instance // pooled instances
	sem  chan struct{}  // bounds live instances

	cache   verdictCache
	metrics pluginMetrics
}

type instance struct {
	mod     api.Module
	onEvent api.Function
	onRows  api.Function
	meter   fuel.Meter // one per instance: an instance serves one call at a time
	stderr  crashLog   // what the guest printed during the current call
}

// Limits bound what one plugin may use.
type Limits struct {
	MemoryPages uint32        // 64 KiB pages per instance
	Timeout     time.Duration // wall-clock bound per call
	Fuel        int64         // CPU bound per call, in fuel units (sdk/ABI.md)
	Instances   int           // pooled instances
	PoolWait    time.Duration // bound on waiting for a free instance; 0: DefaultPoolWait
}

// DefaultPoolWait is how long a call waits for a free instance when the
// limits do not say.
const DefaultPoolWait = time.Second

// initFuel bounds a guest's _initialize (a Go guest needs about 12,000
// units; a plugin that compiles its tables at init needs more).
const initFuel = 50_000_000

// Load compiles a plugin and creates its first instance, which records the
// plugin's subscriptions and patterns. Errors name the plugin.
func (h *Host) Load(ctx context.Context, cfg config.Plugin, wasm []byte, lim Limits) (*Plugin, error) {
	if lim.Fuel <= 0 {
		lim.Fuel = DefaultFuel
	}
	if lim.Instances <= 0 {
		lim.Instances = 1
	}
	if lim.PoolWait <= 0 {
		lim.PoolWait = DefaultPoolWait
	}
	p := &Plugin{
		name:       cfg.Name,
		allowOnErr: cfg.OnError == "allow",
		timeout:    lim.Timeout,
		poolWait:   lim.PoolWait,
		fuel:       lim.Fuel,
		log:        h.log,
		maskKey:    h.maskKey,
		now:        h.now,
		subs:       map[string]bool{},
		specs:      map[string]int32{},
		streams:    map[string]*detect.Stream{},
		sqlCache:   map[string]string{},
		idle:       make(chan *instance, lim.Instances),
		sem:        make(chan struct{}, lim.Instances),
		metrics:    h.metrics.forPlugin(cfg.Name),
	}
	var err error
	if p.configJSON, err = json.Marshal(cfg.Config); err != nil {
		return nil, fmt.Errorf("plugin %s: config: %w", cfg.Name, err)
	}
	// A runtime per plugin: memory limits are per runtime in wazero. The
	// compilation cache is shared, so a module compiles once per machine.
	// CPU is bounded by fuel metering (RATIONALE.md), not by
	// WithCloseOnContextDone, which slows loop-heavy guests 7-20x.
	rc := wazero.NewRuntimeConfig().
		WithMemoryLimitPages(lim.MemoryPages).
		WithCompilationCache(h.cache)
	p.rt = wazero.NewRuntimeWithConfig(ctx, rc)
	fail := func(err error) (*Plugin, error) {
		p.rt.Close(ctx)
		return nil, fmt.Errorf("plugin %s: %w", cfg.Name, err)
	}
	if _, err := wasi_snapshot_preview1.Instantiate(ctx, p.rt); err != nil {
		return fail(err)
	}
	if err := instantiateHostModule(ctx, p.rt); err != nil {
		return fail(err)
	}
	if _, err := fuel.Instantiate(ctx, p.rt); err != nil {
		return fail(err)
	}
	metered, err := fuel.Rewrite(wasm)
	if err != nil {
		return fail(fmt.Errorf("not a module this host can meter: %w", err))
	}
	if p.compiled, err = p.rt.CompileModule(ctx, metered); err != nil {
		return fail(fmt.Errorf("compile: %w", err))
	}
	exports := p.compiled.ExportedFunctions()
	if _, ok := exports[exportABI]; !ok {
		for name := range exports {
			if v, ok := strings.CutPrefix(name, "tollgate_abi_"); ok {
				return fail(fmt.Errorf("built for plugin ABI %s; this gateway speaks v1 (export %s)", v, exportABI))
			}
		}
		return fail(errors.New("not an ABI v1 plugin: missing export " + exportABI + " (build it with the Tollgate SDK)"))
	}
	_, hasEvent := exports[exportOnEvent]
	_, p.hasRows = exports[exportOnRows]
	if !hasEvent && !p.hasRows {
		return fail(errors.New("exports neither " + exportOnEvent + " nor " + exportOnRows))
	}
	first, err := p.newInstance(ctx)
	p.mu.Lock()
	p.frozen = true
	p.mu.Unlock()
	// The schema before init's own error: a plugin that declared its keys
	// and then failed on its config (a panic in sdk.Config) is reported
	// key by key, where gateway check can place each problem.
	if p.schemaErr == nil && p.schema != nil {
		if ps := p.schema.Validate(cfg.Config); len(ps) > 0 {
			if first != nil {
				first.mod.Close(ctx)
			}
			p.rt.Close(ctx)
			return nil, &ConfigError{Plugin: cfg.Name, Problems: ps}
		}
	}
	if err == nil && p.schemaErr != nil {
		first.mod.Close(ctx)
		err = p.schemaErr
	}
	if err != nil {
		return fail(err)
	}
	if len(p.subs) == 0 {
		first.mod.Close(ctx)
		return fail(errors.New("subscribes to no event kind: call sdk.Subscribe in init"))
	}
	p.sem <- struct{}{}
	p.idle <- first
	return p, nil
}

// Name is the plugin's name from gateway.toml.
func (p *Plugin) Name() string { return p.name }

// Wants reports whether the plugin subscribed to kind.
//
// Subscriptions are recorded while the first instance initializes and are
// read-only afterwards (later instances run the same init), so this costs
// two map lookups and no lock on the per-event path.
func (p *Plugin) Wants(kind string) bool {
	return p.subs["*"] || p.subs[kind]
}

// WantsField reports whether the plugin subscribed to sub by its own
// name (event.WantsBody); "*" does not count: such a field costs a
// buffer and lands in the audit row, so it must be asked for.
func (p *Plugin) WantsField(sub string) bool { return p.subs[sub] }

func (p *Plugin) subscribe(kind string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.frozen {
		p.subs[kind] = true
		if kind == event.WantsBody {
			// The body comes with the request events, which asking for
			// it implies.
			p.subs["http.request"] = true
		}
	}
}

// declareSchema records the config schema the plugin declares while its
// first instance initializes; a later declaration replaces an earlier.
func (p *Plugin) declareSchema(m api.Module, ptr, n uint32) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.frozen {
		return
	}
	if n > maxSchemaBytes {
		p.schema, p.schemaErr = nil, fmt.Errorf("config schema: %d bytes, more than %d", n, maxSchemaBytes)
		return
	}
	b, ok := m.Memory().Read(ptr, n)
	if !ok {
		p.schema, p.schemaErr = nil, errors.New("config schema: out of the guest's memory")
		return
	}
	p.schema, p.schemaErr = ParseSchema(b)
}

// Schema is the config schema the plugin declared, nil if none.
func (p *Plugin) Schema() *Schema { return p.schema }

// subscribeRows narrows the row batches the plugin wants: to batches with
// a column whose lower-cased name matches glob, or (id >= 0) in which the
// compiled pattern id finds something. Repeated calls add alternatives.
func (p *Plugin) subscribeRows(glob string, id int32) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.frozen {
		return
	}
	if glob != "" && !slices.Contains(p.rowCols, strings.ToLower(glob)) {
		p.rowCols = append(p.rowCols, strings.ToLower(glob))
	}
	if id >= 0 && !slices.Contains(p.rowFind, id) {
		p.rowFind = append(p.rowFind, id)
	}
}

// wantsRows applies subscribeRows to a batch. The pattern pre-scan costs
// a host-side scan of the batch, far less than a Wasm call that would
// find nothing to do.
func (p *Plugin) wantsRows(rs *event.Rows) bool {
	cols, finds := p.rowCols, p.rowFind // frozen after load
	if len(cols) == 0 && len(finds) == 0 {
		return true
	}
	for _, c := range rs.Columns {
		name := strings.ToLower(c.Name)
		for _, g := range cols {
			if glob.Match(g, name) {
				return true
			}
		}
	}
	for _, id := range finds {
		set := (&call{p: p}).pattern(id)
		if set == nil {
			continue
		}
		for _, row := range rs.Values {
			for _, cell := range row {
				if !cell.Null && len(set.Find(cell.Data, nil)) > 0 {
					return true
				}
			}
		}
	}
	return false
}

// newInstance instantiates the module and runs its _initialize, during
// which the SDK subscribes and compiles patterns.
func (p *Plugin) newInstance(ctx context.Context) (*instance, error) {
	ctx = context.WithValue(ctx, stateKey{}, &loading{p: p})
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	in := &instance{}
	in.meter.Budget = initFuel
	mod, err := in.meter.Instantiate(ctx, p.rt, p.compiled, wazero.NewModuleConfig().
		WithName("").WithStartFunctions("_initialize").WithStderr(&in.stderr))
	if err != nil {
		return nil, fmt.Errorf("instantiate: %w", err)
	}
	in.mod, in.onEvent, in.onRows = mod, mod.ExportedFunction(exportOnEvent), mod.ExportedFunction(exportOnRows)
	return in, nil
}

// get takes an idle instance or makes one, waiting when all are busy,
// for at most the pool wait: a plugin whose instances all spin on some
// requests then refuses the others at once instead of stalling them.
func (p *Plugin) get(ctx context.Context) (*instance, error) {
	select {
	case in := <-p.idle:
		return in, nil
	default:
	}
	p.metrics.waits.Inc()
	t := time.NewTimer(p.poolWait)
	defer t.Stop()
	select {
	case in := <-p.idle:
		return in, nil
	case p.sem <- struct{}{}:
		in, err := p.newInstance(ctx)
		if err != nil {
			<-p.sem
			return nil, err
		}
		return in, nil
	case <-t.C:
		p.metrics.exhausted.Inc()
		return nil, fmt.Errorf("all %d instances busy for %s (pool_wait)", cap(p.sem), p.poolWait)
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

func (p *Plugin) put(in *instance) { p.idle <- in }

// discard throws an instance away after any error: its memory may be in
// any state, and a trap in a Go guest leaves its runtime unusable.
func (p *Plugin) discard(ctx context.Context, in *instance) {
	in.mod.Close(ctx)
	<-p.sem
}

// Close releases the plugin's runtime and every instance.
func (p *Plugin) Close(ctx context.Context) error { return p.rt.Close(ctx) }

// errPlugin wraps a failure of the guest (trap, timeout, out of memory).
type errPlugin struct {
	plugin string
	err    error
}

func (e *errPlugin) Error() string { return "plugin " + e.plugin + ": " + e.err.Error() }
func (e *errPlugin) Unwrap() error { return e.err }

// Process runs the plugin on ev. A failing guest yields the plugin's
// on_error verdict and the error, for the log.
func (p *Plugin) Process(ctx context.Context, ev *event.Event) (event.Verdict, error) {
	rows := ev.Rows != nil && strings.HasSuffix(ev.Kind, ".rows")
	if rows && !p.wantsRows(ev.Rows) {
		return event.Verdict{Action: event.Allow}, nil
	}
	if !rows {
		if v, ok := p.cache.lookup(p, ev); ok {
			return v, nil
		}
	}
	in, err := p.get(ctx)
	if err != nil {
		return p.onError(ev, err, err.Error())
	}
	c := &call{p: p, ev: ev, v: event.Verdict{Plugin: p.name}}
	cctx := &callCtx{Context: ctx, c: c, deadline: time.Now().Add(p.timeout)}
	fn := in.onEvent
	if rows {
		fn = in.onRows
	}
	if fn == nil {
		p.put(in)
		return event.Verdict{Action: event.Allow}, nil
	}
	in.meter.Budget = p.fuel
	in.stderr.reset()
	start := time.Now()
	res, err := in.meter.Call(cctx, in.mod, fn)
	p.metrics.calls.Observe(time.Since(start).Seconds())
	if err != nil {
		p.metrics.failed(err)
		msg := failure(in.stderr.buf, err)
		p.discard(ctx, in)
		return p.onError(ev, err, msg)
	}
	p.put(in)
	v := c.verdict(int32(res[0]))
	// A record-only change is not in the verdict: a cached verdict would
	// skip it and record the value as sent.
	if c.cacheable && !rows && !c.readTime && !c.recorded {
		p.cache.store(p, ev, c.read, v)
	}
	return v, nil
}

// callCtx is the context of one call: the caller's, with the call's state
// and the plugin's timeout. The timeout is checked when Err is asked,
// which the fuel refill does at every slice (a call out of the guest
// every 0.15-0.4 ms of its work): a call that runs past it is stopped at
// its next refill, as with a context.WithTimeout, without the timer and
// the registration on the caller's context that WithTimeout made twice per
// HTTP response (about 2% of the gateway's CPU under load). Nothing in a
// call waits on Done (the runtime does not close modules on it).
type callCtx struct {
	context.Context
	c        *call
	deadline time.Time
}

func (x *callCtx) Deadline() (time.Time, bool) {
	if d, ok := x.Context.Deadline(); ok && d.Before(x.deadline) {
		return d, true
	}
	return x.deadline, true
}

func (x *callCtx) Err() error {
	if err := x.Context.Err(); err != nil {
		return err
	}
	if !time.Now().Before(x.deadline) {
		return context.DeadlineExceeded
	}
	return nil
}

func (x *callCtx) Value(key any) any {
	if _, ok := key.(stateKey); ok {
		return x.c
	}
	return x.Context.Value(key)
}

// onError answers a failed call with the plugin's on_error verdict. msg
// says what failed (the guest's panic message, or the host's first line:
// timeout, fuel, memory); the log line names the session, the full
// error (with its wasm stack trace) is at debug level. The client sees
// only that the plugin failed: a panic message may quote what the
// plugin was looking at.
func (p *Plugin) onError(ev *event.Event, err error, msg string) (event.Verdict, error) {
	p.metrics.failures.Inc()
	p.log.Error("plugin failed", "plugin", p.name, "session_id", ev.SessionID, "kind", ev.Kind, "error", msg)
	p.log.Debug("plugin failure detail", "plugin", p.name, "session_id", ev.SessionID, "err", &errPlugin{p.name, err})
	if p.allowOnErr {
		return event.Verdict{Action: event.Allow, Annotations: []event.Annotation{{Key: "plugin_error." + p.name, Value: "allowed by on_error: " + msg}}}, nil
	}
	return event.Verdict{Action: event.Deny, Plugin: p.name, Reason: "plugin " + p.name + " failed", Failed: msg,
		Annotations: []event.Annotation{{Key: "plugin_error." + p.name, Value: msg}}}, nil
}

// Warm fills the pool with n instances (at most its capacity), so that the
// first requests do not pay for instantiation.
func (p *Plugin) Warm(ctx context.Context, n int) error {
	var got []*instance
	defer func() {
		for _, in := range got {
			p.put(in)
		}
	}()
	for i := 0; i < n && i < cap(p.sem); i++ {
		in, err := p.get(ctx)
		if err != nil {
			return fmt.Errorf("plugin %s: warm: %w", p.name, err)
		}
		got = append(got, in)
	}
	return nil
}

// InstanceMemory is the linear memory of one idle instance, in bytes: what
// each pooled instance costs beyond the shared compiled code.
func (p *Plugin) InstanceMemory() uint32 {
	select {
	case in := <-p.idle:
		defer p.put(in)
		return in.mod.Memory().Size()
	default:
		return 0
	}
}
