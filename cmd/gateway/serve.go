package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"math"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"runtime/debug"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/tollgate-dev/tollgate/cmd/gateway/internal/demo"
	"github.com/tollgate-dev/tollgate/host/access"
	"github.com/tollgate-dev/tollgate/host/admin"
	"github.com/tollgate-dev/tollgate/host/audit"
	"github.com/tollgate-dev/tollgate/host/audit/spool"
	"github.com/tollgate-dev/tollgate/host/config"
	"github.com/tollgate-dev/tollgate/host/event"
	"github.com/tollgate-dev/tollgate/host/gate"
	"github.com/tollgate-dev/tollgate/host/identity"
	"github.com/tollgate-dev/tollgate/host/plugin"
	"github.com/tollgate-dev/tollgate/host/supervisor"
	"github.com/tollgate-dev/tollgate/internal/progress"
)

func cmdServe(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("serve", `Usage: gateway serve [-c gateway.toml] [--dev]

Starts every listener in the config and serves until SIGINT or SIGTERM, then
stops accepting, lets in-flight requests finish within gateway.shutdown_grace,
and flushes the audit trail. SIGHUP reloads [[plugins]] and their config from
the file: in-flight requests finish on the old chain, and a plugin that fails
to load keeps the old chain (the log says why).

Long steps at start (opening the embedded audit store, compiling the
plugins on a first start, shipping the rows a previous run left in the
spool, making the demo database) show a status line with their progress
when stderr is a terminal, and are logged (started, every 5 s, done)
when it is not.

--dev also starts the development issuer and the demo upstream from [dev],
and trusts that issuer's tokens. With [dev] postgres it also runs the
demo database: a PostgreSQL 15 cluster of its own (Debian's postgresql;
as root it runs as the postgres user) on the named target's upstream,
kept in <data_dir>/demo-postgres, its tables customers and api_keys
seeded again at every start, stopped with the gateway. It writes the
credential files [dev] needs (echo_token, that target's password) when
they do not exist yet. Never use it in production.`, stderr)
	path := configFlag(fs)
	dev := fs.Bool("dev", false, "start the development issuer and demo upstream from [dev]")
	if err := parse(fs, args); err != nil {
		return err
	}
	cfg, err := loadConfig(fs, *path)
	if err != nil {
		return err
	}
	var madeCredentials []string
	if *dev {
		if madeCredentials, err = demo.MakeCredentials(cfg); err != nil {
			return err
		}
	}
	if err := cfg.ResolveSecrets(); err != nil {
		return err
	}
	// What check reports for this mode, refused here before anything starts.
	if err := cfg.ValidateServe(*dev); err != nil {
		return err
	}
	// Long steps at start show their progress on a terminal, and are
	// logged on a service.
	prog := progress.New(stderr)
	log := newLogger(cfg, prog.Wrap(stderr))
	prog.SetLogger(log)
	tuneGC(cfg.Gateway.MemoryLimit, log)
	for _, f := range madeCredentials {
		log.Info("development mode: made a demo credential", "file", f)
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	// Services start in order and stop in reverse; if one fails to start,
	// those already running are stopped (nothing is left half up).
	grace := cfg.Gateway.ShutdownGrace.Duration
	sup := supervisor.New(log, grace)
	defer sup.Stop()

	issuers := cfg.Identity.Issuers
	var demoDB *config.Target // the demo database, when it runs
	if *dev {
		if cfg.Dev == nil {
			return errors.New("--dev needs a [dev] table in the config")
		}
		devIssuer, err := identity.NewDevIssuer(cfg.Dev, cfg.Path(cfg.Gateway.DataDir))
		if err != nil {
			return err
		}
		if err := sup.Start(supervisor.Named("dev issuer", devIssuer)); err != nil {
			return err
		}
		issuers = append(issuers, devIssuer.IssuerConfig())
		if cfg.Dev.EchoListen != "" {
			echo, err := startHTTP(cfg.Dev.EchoListen, demo.Echo(cfg.Dev.EchoToken.Value()))
			if err != nil {
				return fmt.Errorf("demo upstream: %w", err)
			}
			sup.Start(supervisor.Running("demo upstream", echo.Shutdown))
		}
		if t := demo.DatabaseTarget(cfg); t != nil {
			// The HTTP demo works without it: a missing PostgreSQL is a
			// warning, and the next steps leave the database out.
			db, err := demo.StartDatabase(ctx, demo.DatabaseOptions{Dir: cfg.DataPath("demo-postgres"), Addr: t.Upstream,
				User: t.Credential.Username, Password: t.Credential.Password.Value(), Log: log, Progress: prog})
			if err != nil {
				log.Warn("development mode: the demo database did not start", "target", t.Name, "err", err)
			} else {
				sup.Start(supervisor.Running("demo database", db.Shutdown))
				demoDB = t
				log.Info("demo database ready", "target", t.Name, "addr", t.Upstream, "dir", db.Dir)
			}
		}
		log.Warn("development mode: the dev issuer's tokens are trusted", "issuer", devIssuer.URL)
	}

	pl, err := loadPlugins(ctx, cfg, log, prog)
	if err != nil {
		return err
	}
	sup.Start(supervisor.Running("plugins", pl.Shutdown))
	policy := access.New(cfg.Access)
	rl := &reloader{load: func() (*config.Config, error) { return loadConfig(fs, *path) }, plugins: pl, policy: policy, log: log}
	rec, reader, pipe, err := openRecorder(cfg, log, prog)
	if err != nil {
		return err
	}
	if pipe != nil {
		go replayProgress(ctx, pipe, prog)
	}
	if rec, err = auditCheckpoints(cfg, rec, log); err != nil {
		return err
	}
	// Stopped after the listeners: their last rows are flushed.
	sup.Start(supervisor.Running("audit", func(context.Context) error {
		if err := rec.Close(); err != nil {
			return fmt.Errorf("audit flush failed: %w", err)
		}
		return nil
	}))
	auth := identity.NewVerifier(issuers, cfg.Identity.TokenCacheSize, identity.Options{})
	appr, err := startApprovals(cfg, rec, log)
	if err != nil {
		return err
	}
	// Started before the listeners (they hold requests with it), and
	// stopped before them once they run (below): it fails the requests
	// still held, so that the listeners do not wait out the grace period
	// for them. Until then, it stops here.
	var apprOnce sync.Once
	stopApprovals := supervisor.Running("approvals", func(ctx context.Context) (err error) {
		apprOnce.Do(func() { err = appr.Shutdown(ctx) })
		return err
	})
	sup.Start(stopApprovals)
	// One registry per process: every part of the host counts where its
	// numbers live, and the admin listener serves them all at /metrics.
	gm := gate.NewMetrics()
	reg := admin.NewRegistry()
	var pipeMetrics prometheus.Collector
	if pipe != nil {
		pipeMetrics = pipe.Collector()
	}
	if err := admin.Register(reg, gm, pl.host.Collector(), pipeMetrics, appr.manager().Collector()); err != nil {
		return err
	}
	deps := gate.Deps{
		GatewayID: cfg.Gateway.ID,
		Auth:      auth,
		Policy:    policy,
		Chain:     pl.chain,
		Recorder:  rec,
		Log:       log,

		Approvals:    appr.manager(),
		ApprovalWait: appr.httpWait(),
		DevTLS:       *dev, // a listener without tls_cert that needs one gets a self-signed one
		Metrics:      gm,
	}
	// Each listener is built by its protocol (registered by the imports
	// in protocols.go); they start in order and stop together.
	targets := map[string]*gate.Target{}
	for i := range cfg.Targets {
		targets[cfg.Targets[i].Name] = &cfg.Targets[i]
	}
	var listeners []gate.Service
	var units []supervisor.Unit
	for _, lc := range cfg.Listeners {
		l, err := gate.NewService(lc, targets, deps)
		if err != nil {
			return err
		}
		listeners = append(listeners, l)
		units = append(units, supervisor.Named("listener "+lc.Name, l))
	}
	// The listeners' own API routes (the SSH certificates) are served by
	// the admin listener, which starts before them: a route answers 503
	// until its listener has started.
	var routes []gate.Route
	for _, l := range listeners {
		if a, ok := l.(gate.APIService); ok {
			routes = append(routes, a.API()...)
		}
	}
	if cfg.Admin.Listen != "" {
		o := admin.Options{Auth: auth, Groups: cfg.Admin.Groups, Audit: reader, Log: log,
			Approvals: appr.manager(), Secure: appr.secureCookies(), Webhooks: appr.webhookStats(), AuditDatabase: auditDatabase(cfg),
			PProf: cfg.Admin.PProf, Metrics: reg, Routes: routes}
		o.Reload = rl.reload
		h := admin.New(o)
		srv, err := startHTTP(cfg.Admin.Listen, h)
		if err != nil {
			return fmt.Errorf("admin: %w", err)
		}
		sup.Start(supervisor.Running("admin", srv.Shutdown))
		log.Info("listening", "listener", "admin", "addr", cfg.Admin.Listen)
		if cfg.Admin.PProf {
			log.Warn("admin: Go runtime profiles served at /debug/pprof/ to the admin groups (admin.pprof = true)", "groups", cfg.Admin.Groups)
		}
	}
	if err := sup.Start(units...); err != nil {
		return err
	}
	for i, l := range listeners {
		log.Info("listening", "listener", l.Name(), "protocol", cfg.Listeners[i].Protocol, "addr", l.Addr().String())
	}
	sup.Start(stopApprovals) // stops first: see above
	log.Info("gateway ready", "gateway_id", cfg.Gateway.ID, "version", version)
	if *dev {
		printNextSteps(stdout, cfg, *path, demoDB)
	}

	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
wait:
	for {
		select {
		case <-ctx.Done():
			break wait
		case <-hup:
			log.Info("SIGHUP: reloading the access rules and the plugins")
			rl.reload(ctx)
		}
	}
	log.Info("shutting down", "grace", grace.String())
	sup.Stop()
	log.Info("stopped")
	return nil
}

// plugins owns the plugin host and the reloadable chain serve hands to
// every listener.
type plugins struct {
	host  *plugin.Host
	chain *plugin.Reloadable
	log   *slog.Logger
}

// loadPlugins loads [[plugins]] in order; with none, events pass unchanged.
func loadPlugins(ctx context.Context, cfg *config.Config, log *slog.Logger, prog *progress.Reporter) (*plugins, error) {
	dataDir := cfg.Path(cfg.Gateway.DataDir)
	key, err := plugin.LoadOrCreateKey(plugin.MaskKeyPath(dataDir))
	if err != nil {
		return nil, err
	}
	// wazero's compilation cache holds no code on a first start: each
	// plugin then takes a second or more to compile.
	first := noFiles(plugin.CacheDir(dataDir))
	host, err := plugin.NewHost(plugin.Options{CacheDir: plugin.CacheDir(dataDir), MaskKey: key, Log: log})
	if err != nil {
		return nil, err
	}
	ps := &plugins{host: host, log: log}
	var step *progress.Step
	if n := len(cfg.Plugins); n > 0 {
		what := fmt.Sprintf("plugins: loading %d", n)
		if first {
			what = fmt.Sprintf("plugins: compiling %d on first start (cached afterwards)", n)
		}
		// The host loads the chain as a whole: elapsed time only.
		step = prog.Start(what, "cache", plugin.CacheDir(dataDir))
	}
	c, closeFn, err := ps.load(ctx, cfg)
	if err := step.Done(err); err != nil {
		host.Close(ctx)
		return nil, err
	}
	ps.chain = plugin.NewReloadable(c, closeFn)
	return ps, nil
}

// noFiles reports whether no regular file is below dir (or dir is missing).
func noFiles(dir string) bool {
	found := errors.New("found")
	err := filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			return found
		}
		return nil
	})
	return err != found
}

func (ps *plugins) load(ctx context.Context, cfg *config.Config) (event.Chain, func(context.Context) error, error) {
	if len(cfg.Plugins) == 0 {
		return plugin.Empty{}, nil, nil
	}
	c, err := ps.host.LoadChain(ctx, cfg.Plugins, cfg.Path)
	if err != nil {
		return nil, nil, err
	}
	for _, p := range cfg.Plugins {
		ps.log.Info("plugin loaded", "plugin", p.Name, "path", p.Path, "on_error", p.OnError)
	}
	return c, c.Close, nil
}

func (ps *plugins) Shutdown(ctx context.Context) error {
	ps.chain.Close(ctx)
	return ps.host.Close(ctx)
}

// openRecorder opens the audit store; reader is its read side for the
// admin API (nil for the file store), pipe the spooling pipeline in front
// of it (nil for the file store), for the metrics.
func openRecorder(cfg *config.Config, log *slog.Logger, prog *progress.Reporter) (rec audit.Recorder, reader admin.AuditReader, pipe *audit.Pipeline, err error) {
	a := cfg.Audit
	switch a.Store {
	case "file":
		rec, err = audit.OpenFile(cfg.DataPath(a.Path))
		return rec, nil, nil, err
	case "clickhouse", "embedded":
		var store auditStore
		if a.Store == "clickhouse" {
			// A server, which may be down while the gateway starts: the
			// store connects and applies the schema when it first answers,
			// and the pipeline keeps rows in the spool meanwhile (with a
			// loud log line and the tollgate_audit_store_reachable metric).
			store, err = clickhouseStore(cfg)
		} else {
			// In-process: it fails only for a local reason (the library,
			// the data directory), which waiting would not fix.
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			step := prog.Start("audit: opening the embedded store (loading chDB, applying the schema)", "dir", cfg.DataPath(a.Embedded.Dir))
			store, err = openAuditStore(ctx, cfg)
			step.Done(err)
		}
		if err != nil {
			return nil, nil, nil, fmt.Errorf("audit: %w", err)
		}
		sync := map[string]spool.SyncPolicy{"batch": spool.SyncBatch, "always": spool.SyncAlways, "never": spool.SyncNever}[a.Spool.Sync]
		pipe, err = audit.OpenPipeline(audit.PipelineOptions{
			Store:     store,
			Spool:     spool.Options{Dir: cfg.DataPath(a.Spool.Dir), MaxBytes: a.Spool.MaxBytes, Sync: sync, Logger: log},
			OnFull:    a.OnFull,
			BatchRows: a.BatchRows,
			BatchAge:  a.BatchAge.Duration,
			Log:       log,
		})
		if err != nil {
			store.Close()
			return nil, nil, nil, err
		}
		return pipe, store, pipe, nil
	}
	return nil, nil, nil, fmt.Errorf("audit: unknown store %q", a.Store)
}

// replayProgress shows the spool's backlog a previous run left going out:
// the pipeline replays it first, in order, so it is gone once as many
// rows have been shipped since the start.
func replayProgress(ctx context.Context, pipe *audit.Pipeline, prog *progress.Reporter) {
	left := pipe.Stats().SpoolPending
	if left == 0 {
		return
	}
	step := prog.Start(fmt.Sprintf("audit: shipping %d rows the last run left in the spool", left))
	t := time.NewTicker(500 * time.Millisecond)
	defer t.Stop()
	for {
		st := pipe.Stats()
		step.Set(min(int64(st.Shipped), left), left, "rows")
		if int64(st.Shipped) >= left {
			step.Done(nil)
			return
		}
		select {
		case <-ctx.Done():
			step.Done(errors.New("stopped; the rest stays in the spool for the next start"))
			return
		case <-t.C:
		}
	}
}

// auditTLS is the TLS config towards ClickHouse, with the configured CA.
func auditTLS(cfg *config.Config) (*tls.Config, error) {
	tc := &tls.Config{MinVersion: tls.VersionTLS12}
	if f := cfg.Audit.ClickHouse.CAFile; f != "" {
		pem, err := os.ReadFile(cfg.Path(f))
		if err != nil {
			return nil, fmt.Errorf("audit: clickhouse ca_file: %w", err)
		}
		tc.RootCAs = x509.NewCertPool()
		if !tc.RootCAs.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("audit: clickhouse ca_file %s holds no PEM certificate", f)
		}
	}
	return tc, nil
}

// startHTTP serves h on addr in the background.
func startHTTP(addr string, h http.Handler) (*http.Server, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second}
	go srv.Serve(ln)
	return srv, nil
}

func newLogger(cfg *config.Config, w io.Writer) *slog.Logger {
	var level slog.Level
	_ = level.UnmarshalText([]byte(cfg.Gateway.LogLevel))
	opts := &slog.HandlerOptions{Level: level}
	if cfg.Gateway.LogFormat == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

func printNextSteps(w io.Writer, cfg *config.Config, path string, demoDB *config.Target) {
	self := os.Args[0]
	if abs, err := filepath.Abs(self); err == nil {
		if rel, err := filepath.Rel(".", abs); err == nil && !filepath.IsAbs(rel) {
			self = "./" + rel
		}
	}
	fmt.Fprintf(w, "\nTollgate is running in development mode. Try, in another terminal:\n\n")
	fmt.Fprintf(w, "  TOKEN=$(%s token -c %s --sub you@example.com --claim repository=acme/app)\n", self, path)
	for _, l := range cfg.Listeners {
		for _, cmd := range gate.Try(l, cfg.Targets) {
			fmt.Fprintf(w, "  %s\n", cmd)
		}
	}
	pgListen := ""
	for _, l := range cfg.Listeners {
		if l.Protocol == "postgres" && pgListen == "" {
			pgListen = l.Listen
		}
	}
	switch {
	case demoDB != nil && pgListen != "" && cfg.Admin.Listen != "" && cfg.Approvals != nil:
		// The whole promise on the demo database: masking, a refusal, an
		// approval, and the audit trail of it.
		demo.Steps{Gateway: self, Config: path, Listen: pgListen, Target: demoDB.Name,
			Console: cfg.Approvals.BaseURL + "/ui/", Groups: cfg.Admin.Groups}.Print(w)
	case cfg.Audit.Store == "file":
		fmt.Fprintf(w, "  tail -n 3 %s\n\n", cfg.DataPath(cfg.Audit.Path))
	case cfg.Admin.Listen != "" && len(cfg.Admin.Groups) > 0:
		fmt.Fprintf(w, "\nand read the audit trail through the admin API:\n\n")
		fmt.Fprintf(w, "  export TOLLGATE_TOKEN=$(%s token -c %s --sub auditor@example.com --group %s)\n", self, path, cfg.Admin.Groups[0])
		fmt.Fprintf(w, "  %s audit sessions -c %s\n", self, path)
		fmt.Fprintf(w, "  %s audit sql -c %s \"SELECT kind, subject, request_values, status FROM events ORDER BY ts DESC LIMIT 5\"\n", self, path)
		fmt.Fprintf(w, "  %s audit verify -c %s\n\n", self, path)
	default:
		fmt.Fprintf(w, "  %s audit sessions -c %s\n\n", self, path)
	}
}

// tuneGC raises the GC target unless the operator set GOGC. A proxy
// allocates per request, so with the default the collector ran every few
// hundred requests; measured with `make bench`, GOGC=400 raised throughput
// at 32 connections by a quarter and cut the p99 at one connection by
// half. The price is memory: the heap may reach five times what is live
// between two collections, and with the plugins' instances, the detectors'
// patterns and the audit queue 90 to 250 MiB are live, so the RSS under
// load is 0.5 to 1.5 GiB (docs/SOAK.md). A soft memory limit
// ([gateway] memory_limit, or GOMEMLIMIT) makes the collector run sooner
// as the process nears it, so GOGC 400 applies while memory is plentiful.
func tuneGC(memoryLimit int64, log *slog.Logger) {
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(400)
	}
	if memoryLimit > 0 {
		debug.SetMemoryLimit(memoryLimit)
	}
	gogc := os.Getenv("GOGC")
	if gogc == "" {
		gogc = "400"
	}
	limit := "none"
	if n := debug.SetMemoryLimit(-1); n != math.MaxInt64 {
		limit = strconv.FormatInt(n>>20, 10) + " MiB"
	}
	log.Info("garbage collector", "gogc", gogc, "memory_limit", limit)
}
