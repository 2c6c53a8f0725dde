// Package config loads and validates gateway.toml.
//
// Decoding is strict: a key the gateway does not know is an error (with a
// "did you mean" when a known key is close), and every problem carries the
// line and column of the key it is about, so `gateway check` can print
// `gateway.toml:LINE:COL: message` the way compilers do.
//
// Credentials are never written inline: a credential is a reference,
// `env:NAME` or `file:PATH`, resolved by [Config.ResolveSecrets] at start.
//
// The package knows no protocol. A [[listeners]] or [[targets]] table is
// decoded into the keys every protocol has ([Listener], [Target]) and into
// the options of the protocol it names, which the protocol's package
// registered ([RegisterProtocol], through host/gate) and which check
// themselves ([Options], [Table]).
package config

import (
	"os"
	"path/filepath"
	"time"
)

// Config is the whole of gateway.toml after defaults are applied.
type Config struct {
	Gateway   Gateway    `toml:"gateway"`
	Dev       *Dev       `toml:"dev"`
	Identity  Identity   `toml:"identity"`
	Targets   []Target   `toml:"targets"`
	Listeners []Listener `toml:"listeners"`
	Access    []Rule     `toml:"access"`
	Plugins   []Plugin   `toml:"plugins"`
	Audit     Audit      `toml:"audit"`
	Admin     Admin      `toml:"admin"`
	Approvals *Approvals `toml:"approvals"`

	src source // where the config came from, for positions in later problems
}

// Gateway holds process-wide settings.
type Gateway struct {
	ID            string   `toml:"id"`       // written into every audit row; default: host name
	DataDir       string   `toml:"data_dir"` // keys, spool, caches; relative to the config file
	ShutdownGrace Duration `toml:"shutdown_grace"`
	LogLevel      string   `toml:"log_level"`  // debug, info, warn, error
	LogFormat     string   `toml:"log_format"` // text, json
	// MemoryLimit is the Go runtime's soft memory limit in bytes
	// (runtime/debug.SetMemoryLimit): the collector runs more often as
	// the process's memory nears it, instead of letting the heap grow to
	// GOGC's target (the gateway runs GOGC 400: five times the live heap).
	// 0, the default: none from the config (GOMEMLIMIT applies when set).
	MemoryLimit int64 `toml:"memory_limit"`
}

// MinMemoryLimit is the smallest soft memory limit accepted: below it the
// collector would run all the time (a gateway's live heap is 100 MiB or
// more with its plugins loaded).
const MinMemoryLimit = 64 << 20

// Dev configures the development issuer and demo upstream that run only
// under `gateway serve --dev`. A config without [dev] cannot mint tokens.
type Dev struct {
	IssuerListen string   `toml:"issuer_listen"`
	Audience     string   `toml:"audience"`
	MaxTTL       Duration `toml:"max_ttl"`
	EchoListen   string   `toml:"echo_listen"` // demo upstream; empty disables it
	EchoToken    Secret   `toml:"echo_token"`  // the credential the demo upstream expects
	// Postgres names a postgres target that `serve --dev` runs itself: a
	// throwaway PostgreSQL on the target's (loopback) upstream, whose
	// superuser is the target's credential, seeded with demo tables.
	// Empty: none.
	Postgres string `toml:"postgres"`
}

// Identity lists the OIDC issuers whose tokens the gateway accepts.
type Identity struct {
	TokenCacheSize int      `toml:"token_cache_size"`
	Issuers        []Issuer `toml:"issuers"`
}

// Issuer is one trusted OIDC provider.
type Issuer struct {
	Name        string   `toml:"name"`
	URL         string   `toml:"issuer"`
	Audience    []string `toml:"audience"`
	Algorithms  []string `toml:"algorithms"`
	ClockSkew   Duration `toml:"clock_skew"`
	GroupsClaim string   `toml:"groups_claim"`
	EmailClaim  string   `toml:"email_claim"`
	KeepClaims  []string `toml:"keep_claims"` // "*" keeps every scalar claim
	JWKSURL     string   `toml:"jwks_url"`    // overrides discovery
}

// Target is an upstream the gateway reaches with a credential it holds.
// These are the keys every protocol's [[targets]] table has; the rest of
// the table is the protocol's own (Options), decoded and checked by the
// package that serves the protocol (see [RegisterProtocol]).
type Target struct {
	Name     string `toml:"name"`
	Protocol string `toml:"protocol"`
	// Upstream is where the target is, in the protocol's own form (an
	// http(s):// URL for http, host:port for postgres).
	Upstream string `toml:"upstream"`
	CAFile   string `toml:"ca_file"`
	// Credential is what the gateway injects towards the target; which
	// types a target takes is its protocol's to say.
	Credential Credential `toml:"credential"`
	// Durability overrides [audit] durability for this target's rows
	// (e.g. "synced" for a production database); empty takes [audit]'s,
	// which applyDefaults writes here.
	Durability string `toml:"durability"`

	// Options holds the protocol's own keys after Parse: the value its
	// Protocol.NewTarget made (nil when the protocol has none).
	Options any `toml:"-"`
}

// Synced reports whether the target's rows are fsynced before its
// requests are forwarded and its answers released.
func (t *Target) Synced() bool { return t != nil && t.Durability == DurabilitySynced }

// Credential is what the gateway injects towards a target. Its secrets are
// references (env:NAME or file:PATH) for every protocol; which fields a
// type needs is the protocol's to check.
type Credential struct {
	Type     string `toml:"type"` // default "none"; http: none, bearer, basic, header; postgres: password
	Token    Secret `toml:"token"`
	Username string `toml:"username"`
	Password Secret `toml:"password"`
	Header   string `toml:"header"`
	Value    Secret `toml:"value"`
}

// Listener is one socket the gateway serves a protocol on. These are the
// keys every protocol's [[listeners]] table has; the rest of the table is
// the protocol's own (Options).
type Listener struct {
	Name     string `toml:"name"`
	Protocol string `toml:"protocol"`
	Listen   string `toml:"listen"`
	TLSCert  string `toml:"tls_cert"`
	TLSKey   string `toml:"tls_key"`

	// Options holds the protocol's own keys after Parse: the value its
	// Protocol.NewListener made.
	Options any `toml:"-"`
}

// Durability values of [audit] durability and [[targets]] durability (the
// same words as host/audit's). DefaultDurability is chosen from the
// figures in RATIONALE.md ("Durability: spooled or synced").
const (
	DurabilitySpooled = "spooled"
	DurabilitySynced  = "synced"
	DefaultDurability = DurabilitySpooled
)

// Rule is one [[access]] entry. A principal that matches every condition
// may reach the listed targets with the listed verbs. Anything no rule
// grants is denied.
type Rule struct {
	Name    string              `toml:"name"`
	Targets []string            `toml:"targets"`
	Issuers []string            `toml:"issuers"`
	Groups  []string            `toml:"groups"`
	Claims  map[string]Patterns `toml:"claims"`
	Methods []string            `toml:"methods"`
	Paths   []string            `toml:"paths"`
}

// Plugin is one entry of the chain, in the order listed.
type Plugin struct {
	Name    string `toml:"name"`
	Path    string `toml:"path"`
	OnError string `toml:"on_error"` // deny (default) or allow
	// Limits; left out, the defaults (512 pages = 32 MiB, 100ms,
	// 50,000,000 units, 4 instances, 1s). Written, each must be in its
	// range (ranges.go): a zero is refused, not replaced. PoolWait bounds
	// how long a call waits for a free instance: past it the plugin's
	// on_error answers ("all instances busy"), so that a plugin that
	// loops on some requests cannot stall every other request.
	MemoryPages uint32   `toml:"memory_pages"`
	Timeout     Duration `toml:"timeout"`
	Fuel        int64    `toml:"fuel"` // CPU units per call (sdk/ABI.md)
	Instances   int      `toml:"instances"`
	PoolWait    Duration `toml:"pool_wait"`
	// Config is the plugin's own table, passed to it unparsed.
	Config map[string]any `toml:"config"`
}

// Audit selects where audit rows go.
type Audit struct {
	Store string `toml:"store"` // file, clickhouse or embedded
	Path  string `toml:"path"`  // for file: JSON lines; relative to data_dir

	// For clickhouse: rows are spooled on disk, then inserted in batches.
	// SigningKey signs every session-close row and checkpoint (Ed25519,
	// PKCS#8 PEM), so that a session rewritten in the store is detectable.
	SigningKey Secret `toml:"signing_key"`
	// CheckpointInterval is how often, while rows come in, the gateway
	// writes a checkpoint (a signed head over every session it touched);
	// one is also written at start and at shutdown. Default 10s.
	CheckpointInterval Duration `toml:"checkpoint_interval"`
	// CheckpointWebhook, when set, receives each checkpoint head as JSON
	// (POST): a copy outside the store, which the store's own writer
	// cannot take back.
	CheckpointWebhook string `toml:"checkpoint_webhook"`

	// Durability: "spooled" or "synced" (host/audit durable.go); each
	// target may override it. Default DefaultDurability.
	Durability string          `toml:"durability"`
	OnFull     string          `toml:"on_full"`    // refuse (default) or drop
	BatchRows  int             `toml:"batch_rows"` // default 10000
	BatchAge   Duration        `toml:"batch_age"`  // default 1s
	ClickHouse AuditClickHouse `toml:"clickhouse"`
	Embedded   AuditEmbedded   `toml:"embedded"`
	Spool      AuditSpool      `toml:"spool"`
}

// AuditEmbedded is ClickHouse in the gateway's process (chDB), for a single
// machine. One process per directory: while the gateway runs, it owns it.
type AuditEmbedded struct {
	Dir      string `toml:"dir"`      // relative to data_dir; default "clickhouse"
	Database string `toml:"database"` // default "tollgate"
	LibPath  string `toml:"lib_path"` // libchdb.so; default: CHDB_LIB_PATH, then .deps/chdb (make deps)
}

// AuditClickHouse is where the clickhouse store connects (native protocol).
type AuditClickHouse struct {
	Addrs    []string `toml:"addrs"`
	Database string   `toml:"database"`
	User     string   `toml:"user"`
	Password Secret   `toml:"password"`
	TLS      bool     `toml:"tls"`
	CAFile   string   `toml:"ca_file"`
	Cluster  string   `toml:"cluster"` // DDL ON CLUSTER with replicated and distributed tables
}

// AuditSpool is the durable local spool in front of the store.
type AuditSpool struct {
	Dir      string `toml:"dir"`       // relative to data_dir; default "spool"
	MaxBytes int64  `toml:"max_bytes"` // default 1 GiB
	Sync     string `toml:"sync"`      // batch (default), always, never
}

// Admin is the operator API's listener (host/admin). Empty listen: off.
type Admin struct {
	Listen string   `toml:"listen"`
	Groups []string `toml:"groups"` // who may use it; default ["admins"]
	// PProf serves Go's runtime profiles (net/http/pprof) under
	// /debug/pprof/ on this listener, to the same groups as the audit API
	// (a bearer token of one of Groups). Default false: a profile shows
	// the process's internals (stacks, allocation sites) and a CPU
	// profile or trace costs CPU while it runs.
	PProf bool `toml:"pprof"`
}

// Approvals turns on human approval of held requests (host/approval).
// Without the table, a request a plugin holds is refused as a deny.
type Approvals struct {
	Timeout           Duration `toml:"timeout"`            // pending → expired; default 10m
	HTTPWait          Duration `toml:"http_wait"`          // HTTP waits this long, then answers 202; default 25s
	ApprovalsRequired int      `toml:"approvals_required"` // different people needed; default 1
	// BaseURL is the web console's external address, for approval links
	// (clients, webhooks); default http://<admin.listen>.
	BaseURL         string   `toml:"base_url"`
	MaxSessionGrant Duration `toml:"max_session_grant"` // cap on "this session for N minutes"; default 8h
	// Store keeps pending approvals and decisions: "file" (the data
	// directory; one gateway) or "clickhouse" (the audit server's, shared
	// by replicas). Default: clickhouse when audit.store is, else file.
	Store        string   `toml:"store"`
	PollInterval Duration `toml:"poll_interval"` // clickhouse: how often a replica looks for decisions made elsewhere; default 250ms
	// MaxPendingPerPrincipal and MaxPendingPerTarget cap the approvals
	// pending at once (per gateway process); past them a hold is refused
	// (HTTP 429, PostgreSQL 53400). Defaults 20 and 100.
	MaxPendingPerPrincipal int       `toml:"max_pending_per_principal"`
	MaxPendingPerTarget    int       `toml:"max_pending_per_target"`
	Webhooks               []Webhook `toml:"webhooks"`
}

// Webhook notifies one approver group of each new pending approval.
type Webhook struct {
	Group  string `toml:"group"`  // an approver group, as plugins name it
	URL    Secret `toml:"url"`    // env:NAME or file:PATH: a Slack webhook URL is a credential
	Format string `toml:"format"` // slack (default) or generic
}

// Duration is a time.Duration written as a string ("10s", "1m30s").
type Duration struct {
	time.Duration
	// Set: the key was written, so a zero is the operator's zero, not a
	// value to replace with the default.
	Set bool
}

func (d *Duration) UnmarshalText(b []byte) error {
	v, err := time.ParseDuration(string(b))
	if err != nil {
		return err
	}
	d.Duration, d.Set = v, true
	return nil
}

func (d Duration) MarshalText() ([]byte, error) { return []byte(d.String()), nil }

// Patterns is a claim condition: a single pattern or a list of them (one of).
type Patterns []string

func (p *Patterns) UnmarshalTOML(v any) error {
	switch v := v.(type) {
	case string:
		*p = Patterns{v}
		return nil
	case []any:
		out := make(Patterns, 0, len(v))
		for _, e := range v {
			s, ok := e.(string)
			if !ok {
				return errNotString
			}
			out = append(out, s)
		}
		*p = out
		return nil
	}
	return errNotString
}

// Path resolves p against the directory of the config file.
func (c *Config) Path(p string) string {
	if p == "" || filepath.IsAbs(p) {
		return p
	}
	return filepath.Join(c.src.dir, p)
}

// DataPath resolves p against the data directory.
func (c *Config) DataPath(p string) string {
	if filepath.IsAbs(p) {
		return p
	}
	return filepath.Join(c.Path(c.Gateway.DataDir), p)
}

// Target returns the target called name.
func (c *Config) Target(name string) (*Target, bool) {
	for i := range c.Targets {
		if c.Targets[i].Name == name {
			return &c.Targets[i], true
		}
	}
	return nil, false
}

func (c *Config) applyDefaults() {
	g := &c.Gateway
	if g.ID == "" {
		g.ID, _ = os.Hostname()
	}
	if g.DataDir == "" {
		g.DataDir = ".tollgate"
	}
	if g.ShutdownGrace.Duration == 0 && !g.ShutdownGrace.Set { // "0s": stop at once
		g.ShutdownGrace.Duration = 10 * time.Second
	}
	if g.LogLevel == "" {
		g.LogLevel = "info"
	}
	if g.LogFormat == "" {
		g.LogFormat = "text"
	}
	if d := c.Dev; d != nil {
		if d.IssuerListen == "" {
			d.IssuerListen = "127.0.0.1:8079"
		}
		if d.Audience == "" {
			d.Audience = "tollgate"
		}
		if d.MaxTTL.Duration == 0 {
			d.MaxTTL.Duration = 24 * time.Hour
		}
	}
	if c.Identity.TokenCacheSize == 0 {
		c.Identity.TokenCacheSize = 10000
	}
	for i := range c.Identity.Issuers {
		is := &c.Identity.Issuers[i]
		if len(is.Algorithms) == 0 {
			is.Algorithms = []string{"RS256", "ES256"}
		}
		if is.ClockSkew.Duration == 0 && !is.ClockSkew.Set {
			is.ClockSkew.Duration = 60 * time.Second // clock_skew = "0s" means none
		}
		if is.GroupsClaim == "" {
			is.GroupsClaim = "groups"
		}
		if is.EmailClaim == "" {
			is.EmailClaim = "email"
		}
	}
	for i := range c.Targets {
		if c.Targets[i].Credential.Type == "" {
			c.Targets[i].Credential.Type = "none"
		}
	}
	for i := range c.Plugins {
		pl := &c.Plugins[i]
		if pl.OnError == "" {
			pl.OnError = "deny"
		}
		// The plugin host's defaults (host/plugin limitsOf), written here
		// so that the config holds the values that run.
		if pl.MemoryPages == 0 {
			pl.MemoryPages = 512
		}
		if pl.Timeout.Duration == 0 {
			pl.Timeout.Duration = 100 * time.Millisecond
		}
		if pl.Fuel == 0 {
			pl.Fuel = 50_000_000
		}
		if pl.Instances == 0 {
			pl.Instances = 4
		}
		if pl.PoolWait.Duration == 0 {
			pl.PoolWait.Duration = time.Second
		}
	}
	if c.Audit.Store == "" {
		c.Audit.Store = "file"
	}
	if c.Audit.Store == "file" && c.Audit.Path == "" {
		c.Audit.Path = "audit.jsonl"
	}
	if len(c.Admin.Groups) == 0 {
		c.Admin.Groups = []string{"admins"}
	}
	if ap := c.Approvals; ap != nil {
		if ap.Timeout.Duration == 0 {
			ap.Timeout.Duration = 10 * time.Minute
		}
		if ap.HTTPWait.Duration == 0 && !ap.HTTPWait.Set { // "0s": answer 202 at once
			ap.HTTPWait.Duration = 25 * time.Second
		}
		if ap.ApprovalsRequired == 0 {
			ap.ApprovalsRequired = 1
		}
		if ap.MaxSessionGrant.Duration == 0 {
			ap.MaxSessionGrant.Duration = 8 * time.Hour
		}
		if ap.Store == "" {
			ap.Store = "file"
			if c.Audit.Store == "clickhouse" {
				ap.Store = "clickhouse"
			}
		}
		if ap.PollInterval.Duration == 0 {
			ap.PollInterval.Duration = 250 * time.Millisecond
		}
		if ap.MaxPendingPerPrincipal == 0 {
			ap.MaxPendingPerPrincipal = 20
		}
		if ap.MaxPendingPerTarget == 0 {
			ap.MaxPendingPerTarget = 100
		}
		if ap.BaseURL == "" && c.Admin.Listen != "" {
			ap.BaseURL = "http://" + c.Admin.Listen
		}
		for i := range ap.Webhooks {
			if ap.Webhooks[i].Format == "" {
				ap.Webhooks[i].Format = "slack"
			}
		}
	}
	a := &c.Audit
	if a.Durability == "" {
		a.Durability = DefaultDurability
		if a.Store == "file" {
			// The JSON-lines file has no spool to fsync (it flushes
			// every 200 ms, and says so).
			a.Durability = DurabilitySpooled
		}
	}
	for i := range c.Targets {
		if c.Targets[i].Durability == "" {
			c.Targets[i].Durability = a.Durability
		}
	}
	if a.CheckpointInterval.Duration == 0 {
		a.CheckpointInterval.Duration = 10 * time.Second
	}
	if a.OnFull == "" {
		a.OnFull = "refuse"
	}
	// The pipeline's defaults (host/audit OpenPipeline, spool.Open).
	if a.BatchRows == 0 {
		a.BatchRows = 10_000
	}
	if a.BatchAge.Duration == 0 {
		a.BatchAge.Duration = time.Second
	}
	if a.Spool.MaxBytes == 0 {
		a.Spool.MaxBytes = 1 << 30
	}
	if a.Spool.Dir == "" {
		a.Spool.Dir = "spool"
	}
	if a.Spool.Sync == "" {
		a.Spool.Sync = "batch"
	}
	if a.ClickHouse.Database == "" {
		a.ClickHouse.Database = "tollgate"
	}
	if a.Embedded.Dir == "" {
		a.Embedded.Dir = "clickhouse"
	}
	if a.Embedded.Database == "" {
		a.Embedded.Database = "tollgate"
	}
}
