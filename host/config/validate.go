package config

import (
	"fmt"
	"net"
	"net/url"
	"strings"

	"github.com/tollgate-dev/tollgate/host/access/glob"
)

// signingAlgs accepted for issuers. Symmetric algorithms and "none" are
// excluded on purpose: a verifier that accepts HS256 with a public key as
// the secret is the classic JWT confusion attack.
var signingAlgs = map[string]bool{
	"RS256": true, "RS384": true, "RS512": true,
	"PS256": true, "PS384": true, "PS512": true,
	"ES256": true, "ES384": true, "ES512": true,
	"EdDSA": true,
}

func (c *Config) validate(ps *problemList) {
	g := c.Gateway
	if !oneOf(g.LogLevel, "debug", "info", "warn", "error") {
		ps.add("gateway.log_level", "must be debug, info, warn or error")
	}
	if !oneOf(g.LogFormat, "text", "json") {
		ps.add("gateway.log_format", "must be text or json")
	}
	if g.MemoryLimit > 0 && g.MemoryLimit < MinMemoryLimit {
		ps.add("gateway.memory_limit", "must be 0 (none) or at least %d (64 MiB): below it the collector would run all the time", int64(MinMemoryLimit))
	}

	addrs := map[string]string{} // listen address → key that claimed it
	claim := func(path, addr string) {
		if addr == "" {
			return
		}
		if _, _, err := net.SplitHostPort(addr); err != nil {
			ps.add(path, "not a host:port address: %q", addr)
			return
		}
		if prev, dup := addrs[addr]; dup {
			ps.add(path, "address %s is already used by %s", addr, prev)
			return
		}
		addrs[addr] = path
	}

	claim("admin.listen", c.Admin.Listen)
	if c.Admin.PProf && c.Admin.Listen == "" {
		ps.add("admin.pprof", "the profiles are served on the admin listener: set admin.listen")
	}
	c.validateApprovals(ps)
	if d := c.Dev; d != nil {
		claim("dev.issuer_listen", d.IssuerListen)
		claim("dev.echo_listen", d.EchoListen)
		if d.EchoListen != "" && !d.EchoToken.IsSet() {
			ps.add("dev.echo_token", "required when dev.echo_listen is set")
		}
		checkSecret(ps, "dev.echo_token", d.EchoToken)
	}

	issuers := map[string]bool{}
	for i, is := range c.Identity.Issuers {
		p := fmt.Sprintf("identity.issuers[%d]", i)
		switch {
		case is.Name == "":
			ps.add(p, "name is required")
		case is.Name == "dev":
			ps.add(p+".name", `"dev" is reserved for the development issuer`)
		case issuers[is.Name]:
			ps.add(p+".name", "duplicate issuer name %q", is.Name)
		}
		issuers[is.Name] = true
		if err := checkIssuerURL(is.URL); err != nil {
			ps.add(p+".issuer", "%v", err)
		}
		if is.JWKSURL != "" {
			if err := checkIssuerURL(is.JWKSURL); err != nil {
				ps.add(p+".jwks_url", "%v", err)
			}
		}
		if len(is.Audience) == 0 {
			ps.add(p, "audience is required: tokens minted for another service must not open this gateway")
		}
		for _, a := range is.Algorithms {
			if !signingAlgs[a] {
				ps.add(p+".algorithms", "algorithm %q is not accepted (asymmetric algorithms only)", a)
			}
		}
	}
	if c.Dev != nil {
		issuers["dev"] = true
	}

	targets := map[string]string{} // name → protocol
	for i := range c.Targets {
		t := &c.Targets[i]
		p := fmt.Sprintf("targets[%d]", i)
		switch {
		case t.Name == "":
			ps.add(p, "name is required")
		case targets[t.Name] != "":
			ps.add(p+".name", "duplicate target name %q", t.Name)
		}
		targets[t.Name] = t.Protocol
		// Never inline, whatever the protocol; which secrets a credential
		// type needs is the protocol's to check.
		cp := p + ".credential"
		checkSecret(ps, cp+".token", t.Credential.Token)
		checkSecret(ps, cp+".password", t.Credential.Password)
		checkSecret(ps, cp+".value", t.Credential.Value)
		proto, ok := LookupProtocol(t.Protocol)
		if !ok {
			unknownProtocol(ps, p+".protocol", t.Protocol)
			continue
		}
		if o, ok := t.Options.(Options); ok && proto.NewTarget != nil {
			o.Check(&Table{path: p, c: c, ps: ps, target: t})
		}
	}

	c.validateDevPostgres(ps, claim)

	names := map[string]bool{}
	for i := range c.Listeners {
		l := &c.Listeners[i]
		p := fmt.Sprintf("listeners[%d]", i)
		uniqueName(ps, p, "listener", l.Name, names)
		if l.Listen == "" {
			ps.add(p, "listen is required")
		}
		claim(p+".listen", l.Listen)
		if (l.TLSCert == "") != (l.TLSKey == "") {
			ps.add(p, "tls_cert and tls_key go together")
		}
		if _, ok := LookupProtocol(l.Protocol); !ok {
			unknownProtocol(ps, p+".protocol", l.Protocol)
			continue
		}
		if o, ok := l.Options.(Options); ok {
			o.Check(&Table{path: p, c: c, ps: ps, listener: l})
		}
	}

	rules := map[string]bool{}
	for i, r := range c.Access {
		p := fmt.Sprintf("access[%d]", i)
		uniqueName(ps, p, "rule", r.Name, rules)
		if len(r.Targets) == 0 {
			ps.add(p, `targets is required (use ["*"] for every target)`)
		}
		for _, t := range r.Targets {
			if _, ok := targets[t]; !ok && t != "*" {
				ps.add(p+".targets", "no target named %q", t)
			}
		}
		for _, is := range r.Issuers {
			if !issuers[is] {
				ps.add(p+".issuers", "no issuer named %q", is)
			}
		}
		for _, m := range r.Methods {
			if m == "" || strings.ToUpper(m) != m || strings.ContainsAny(m, " \t/") {
				ps.add(p+".methods", "%q is not an HTTP method (write it in upper case)", m)
			}
		}
		for _, pp := range r.Paths {
			if !strings.HasPrefix(pp, "/") {
				ps.add(p+".paths", "%q must start with /", pp)
			}
		}
		for claimName, pats := range r.Claims {
			for _, pat := range pats {
				if err := glob.Validate(pat); err != nil {
					ps.add(p+".claims."+claimName, "%v", err)
				}
			}
		}
	}

	pluginNames := map[string]bool{}
	for i, pl := range c.Plugins {
		p := fmt.Sprintf("plugins[%d]", i)
		uniqueName(ps, p, "plugin", pl.Name, pluginNames)
		if pl.Path == "" {
			ps.add(p, "path is required")
		}
		if !oneOf(pl.OnError, "deny", "allow") {
			ps.add(p+".on_error", "must be deny or allow")
		}
	}

	a := c.Audit
	switch a.Store {
	case "file":
	case "clickhouse":
		if len(a.ClickHouse.Addrs) == 0 {
			ps.add("audit.clickhouse", "addrs is required (native protocol host:port, e.g. 127.0.0.1:9000)")
		}
		for _, addr := range a.ClickHouse.Addrs {
			if _, _, err := net.SplitHostPort(addr); err != nil {
				ps.add("audit.clickhouse.addrs", "not a host:port address: %q", addr)
			}
		}
		checkSecret(ps, "audit.clickhouse.password", a.ClickHouse.Password)
		if a.ClickHouse.CAFile != "" && !a.ClickHouse.TLS {
			ps.add("audit.clickhouse.ca_file", "only applies with tls = true")
		}
		if c := a.ClickHouse.Cluster; c != "" && !plainIdentifier(c) {
			ps.add("audit.clickhouse.cluster", "must be a plain identifier ([A-Za-z_][A-Za-z0-9_]*), the name in the servers' remote_servers: %q", c)
		}
	case "embedded":
	default:
		ps.add("audit.store", "unknown store %q (file, clickhouse or embedded)", a.Store)
	}
	checkSecret(ps, "audit.signing_key", a.SigningKey)
	if a.CheckpointWebhook != "" {
		if u, err := url.Parse(a.CheckpointWebhook); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
			ps.add("audit.checkpoint_webhook", "not an http(s) URL: %q", a.CheckpointWebhook)
		}
	}
	if !oneOf(a.OnFull, "refuse", "drop") {
		ps.add("audit.on_full", "must be refuse or drop")
	}
	if !oneOf(a.Spool.Sync, "batch", "always", "never") {
		ps.add("audit.spool.sync", "must be batch, always or never")
	}
	c.validateDurability(ps)
}

// validateDurability checks [audit] durability and every target's
// override. Synced means fsynced in the spool: a store without one, or a
// spool told never to fsync, cannot keep that promise, so it is refused
// rather than quietly weakened.
func (c *Config) validateDurability(ps *problemList) {
	a := &c.Audit
	check := func(path, v string) {
		switch {
		case !oneOf(v, DurabilitySpooled, DurabilitySynced):
			ps.add(path, "must be spooled or synced")
		case v != DurabilitySynced:
		case a.Store == "file":
			ps.add(path, "synced needs the spool: store = \"clickhouse\" or \"embedded\" (the file store has none)")
		case a.Spool.Sync == "never":
			ps.add(path, "synced fsyncs the spool, which [audit.spool] sync = \"never\" forbids")
		}
	}
	check("audit.durability", a.Durability)
	for i, t := range c.Targets {
		if t.Durability != a.Durability { // inherited values were checked once
			check(fmt.Sprintf("targets[%d].durability", i), t.Durability)
		}
	}
}

// uniqueName reports a missing or repeated name. Names are how audit rows,
// routes and rules refer to things, so each must be present and unique.
func uniqueName(ps *problemList, path, kind, name string, seen map[string]bool) {
	switch {
	case name == "":
		ps.add(path, "name is required")
	case seen[name]:
		ps.add(path+".name", "duplicate %s name %q", kind, name)
	}
	seen[name] = true
}

func checkIssuerURL(raw string) error {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" {
		return fmt.Errorf("must be an absolute URL")
	}
	switch u.Scheme {
	case "https":
		return nil
	case "http":
		// Plain HTTP would let anyone on the path swap the signing keys;
		// allow it only on loopback, for local issuers and tests.
		if ip := net.ParseIP(u.Hostname()); (ip != nil && ip.IsLoopback()) || u.Hostname() == "localhost" {
			return nil
		}
		return fmt.Errorf("must use https (http is accepted on loopback only)")
	}
	return fmt.Errorf("must be an https URL")
}

func requireSecret(ps *problemList, path string, s Secret) {
	if !s.IsSet() {
		ps.add(path, "is required (env:NAME or file:PATH)")
	}
}

func checkSecret(ps *problemList, path string, s Secret) {
	if s.IsSet() {
		if err := s.checkRef(); err != nil {
			ps.add(path, "%v", err)
		}
	}
}

func oneOf(s string, options ...string) bool {
	for _, o := range options {
		if s == o {
			return true
		}
	}
	return false
}

func (c *Config) validateApprovals(ps *problemList) {
	ap := c.Approvals
	if ap == nil {
		return
	}
	if c.Admin.Listen == "" {
		ps.add("approvals", "approvers decide through the admin API and console: set admin.listen")
	}
	// The ranges of its keys are in ranges.go; this is what relates them.
	if ap.HTTPWait.Duration > ap.Timeout.Duration {
		ps.add("approvals.http_wait", "must be at most approvals.timeout (%s)", ap.Timeout.Duration)
	}
	switch {
	case !oneOf(ap.Store, "file", "clickhouse"):
		ps.add("approvals.store", "must be file or clickhouse")
	case ap.Store == "clickhouse" && c.Audit.Store != "clickhouse":
		ps.add("approvals.store", "clickhouse keeps approvals on the audit server: needs audit.store = \"clickhouse\"")
	case ap.Store == "clickhouse" && c.Audit.ClickHouse.Cluster != "":
		ps.add("approvals.store", "not yet on a cluster (audit.clickhouse.cluster): use file, one approval URL per replica")
	}
	if ap.BaseURL != "" {
		if u, err := url.Parse(ap.BaseURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			ps.add("approvals.base_url", "must be an http or https URL, e.g. https://tollgate.example.com")
		}
	}
	for i, w := range ap.Webhooks {
		p := fmt.Sprintf("approvals.webhooks[%d]", i)
		if w.Group == "" {
			ps.add(p+".group", "is required: the approver group this webhook notifies")
		}
		requireSecret(ps, p+".url", w.URL)
		checkSecret(ps, p+".url", w.URL)
		if !oneOf(w.Format, "slack", "generic") {
			ps.add(p+".format", "must be slack or generic")
		}
	}
}

// ValidateServe reports, with positions, what `gateway serve` refuses at
// start in the given mode, so that `gateway check` says it first: with
// dev, the config needs [dev]; each listener's protocol adds its own
// (Protocol.Serve; a postgres listener needs a certificate unless it
// allows plaintext or runs under --dev). The error, when not nil, is
// [Problems].
func (c *Config) ValidateServe(dev bool) error {
	var ps problemList
	if dev && c.Dev == nil {
		ps.add("", "--dev needs a [dev] table in the config")
	}
	for i := range c.Listeners {
		l := &c.Listeners[i]
		if p, ok := LookupProtocol(l.Protocol); ok && p.Serve != nil {
			p.Serve(&Table{path: fmt.Sprintf("listeners[%d]", i), c: c, ps: &ps, listener: l}, dev)
		}
	}
	return c.src.problems(ps)
}

// plainIdentifier reports whether s is [A-Za-z_][A-Za-z0-9_]*, a name
// that goes into ClickHouse DDL unquoted.
func plainIdentifier(s string) bool {
	if s == "" || len(s) > 128 || s[0] >= '0' && s[0] <= '9' {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c == '_' || c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z') {
			return false
		}
	}
	return true
}

// validateDevPostgres: [dev] postgres names a postgres target on a
// loopback address whose credential the demo database can be made with.
func (c *Config) validateDevPostgres(ps *problemList, claim func(path, addr string)) {
	if c.Dev == nil || c.Dev.Postgres == "" {
		return
	}
	const key = "dev.postgres"
	var t *Target
	for i := range c.Targets {
		if c.Targets[i].Name == c.Dev.Postgres {
			t = &c.Targets[i]
		}
	}
	switch {
	case t == nil:
		ps.add(key, "no target named %q", c.Dev.Postgres)
	case t.Protocol != "postgres":
		ps.add(key, "target %q is not a postgres target", t.Name)
	case t.Credential.Type != "password" || t.Credential.Username == "" || !t.Credential.Password.IsSet():
		ps.add(key, "target %q needs a password credential with username and password: the demo database is made with it", t.Name)
	default:
		host, _, err := net.SplitHostPort(t.Upstream)
		if ip := net.ParseIP(host); err != nil || ip == nil || !ip.IsLoopback() {
			ps.add(key, "target %q: the demo database runs on its upstream, which must be a loopback IP address and port (e.g. 127.0.0.1:6433)", t.Name)
			return
		}
		claim(key, t.Upstream) // no listener may take the demo database's port
	}
}
