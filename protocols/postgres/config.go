package postgres

import (
	"fmt"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/tollgate-dev/tollgate/host/gate"
)

func init() {
	gate.Register(gate.Protocol{
		Name:        "postgres",
		NewListener: func() gate.Options { return &ListenerOptions{} },
		NewTarget:   func() gate.Options { return &TargetOptions{} },
		Serve:       checkServe,
		New: func(l gate.Listener, targets map[string]*gate.Target, deps gate.Deps) (gate.Service, error) {
			return New(l, targets, deps)
		},
		Try: try,
	})
}

// try is a psql to the listener's target, or to the first postgres
// target, for `serve --dev` to print.
func try(l gate.Listener, targets []gate.Target) []string {
	host, port, _ := net.SplitHostPort(l.Listen)
	db := ""
	if o, ok := l.Options.(*ListenerOptions); ok {
		db = o.Target
	}
	if db == "" {
		for _, t := range targets {
			if t.Protocol == "postgres" {
				db = t.Name
				break
			}
		}
	}
	return []string{fmt.Sprintf("PGPASSWORD=$TOKEN psql \"host=%s port=%s dbname=%s user=agent sslmode=require\"", host, port, db)}
}

// Defaults of a postgres listener's keys.
const (
	DefaultMaxMessageBytes         = 16 << 20
	DefaultMaxStatementBytes       = 1 << 20
	DefaultMaxConnections          = 1000
	DefaultMaxConnectionsPerSource = 100
	DefaultAuthTimeout             = 10 * time.Second
	// DefaultIdleTimeout is long: pools keep connections idle for
	// minutes; the session still ends at its token's expiry.
	DefaultIdleTimeout = 15 * time.Minute
)

const (
	kib = 1 << 10
	mib = 1 << 20
	gib = 1 << 30
	day = 24 * time.Hour
)

// ListenerOptions are a postgres [[listeners]] table's own keys.
type ListenerOptions struct {
	// Target binds the listener to one target (the client's database
	// then passes through to the upstream); without it the client's
	// database names the target.
	Target string `toml:"target"`
	// MaxMessageBytes caps one client message (default 16 MiB).
	MaxMessageBytes int `toml:"max_message_bytes"`
	// MaxStatementBytes caps a statement's text and parameters together
	// (default 1 MiB): what is under it is recorded whole in the audit
	// trail, a statement over it is refused, never run unrecorded.
	MaxStatementBytes int `toml:"max_statement_bytes"`
	// AllowPlaintext accepts the token without TLS, from loopback
	// clients only.
	AllowPlaintext bool `toml:"allow_plaintext"`
	// AllowFunctionCall lets the FunctionCall message through (the chain
	// never sees its arguments).
	AllowFunctionCall bool `toml:"allow_function_call"`
	// Connection caps: connections open at once on the listener (default
	// 1000) and from one source IP (default 100, at most
	// max_connections), counted from accept to close; one over a cap is
	// refused with SQLSTATE 53300.
	MaxConnections          int `toml:"max_connections"`
	MaxConnectionsPerSource int `toml:"max_connections_per_source"`
	// AuthTimeout bounds the time from accept to a ready session: TLS,
	// startup, the token, the upstream login (default 10s).
	AuthTimeout gate.Duration `toml:"auth_timeout"`
	// IdleTimeout ends a session idle this long with 57P05 (default 15m).
	IdleTimeout gate.Duration `toml:"idle_timeout"`
}

// Check applies the listener's ranges and defaults, and relates it to
// its target: no routes (the startup database or target picks the
// target), a target that exists and speaks postgres, plaintext on
// loopback only.
func (o *ListenerOptions) Check(t *gate.Table) {
	t.Int("max_message_bytes", &o.MaxMessageBytes, kib, gib, DefaultMaxMessageBytes)
	t.Int("max_statement_bytes", &o.MaxStatementBytes, kib, 64*mib, DefaultMaxStatementBytes)
	t.Int("max_connections", &o.MaxConnections, 1, 1_000_000, DefaultMaxConnections)
	t.Int("max_connections_per_source", &o.MaxConnectionsPerSource, 1, 1_000_000, min(DefaultMaxConnectionsPerSource, o.MaxConnections))
	t.Duration("auth_timeout", &o.AuthTimeout, time.Second, 10*time.Minute, DefaultAuthTimeout)
	t.Duration("idle_timeout", &o.IdleTimeout, time.Second, day, DefaultIdleTimeout)
	if o.Target != "" {
		t.TargetRef("target", o.Target)
	}
	// What relates the ranged keys.
	if o.MaxConnectionsPerSource > o.MaxConnections {
		t.Problem("max_connections_per_source", "must be at most max_connections (%d)", o.MaxConnections)
	}
	if o.AllowPlaintext {
		if host, _, err := net.SplitHostPort(t.Listener().Listen); err == nil && !loopbackHost(host) {
			t.Problem("allow_plaintext", "plaintext is accepted on a loopback listen address only")
		}
	}
}

// checkServe is what serve refuses at start: without --dev (which makes
// a self-signed certificate), a listener needs a certificate unless it
// allows plaintext, since clients send their token as the password.
func checkServe(t *gate.Table, dev bool) {
	l := t.Listener()
	o, _ := l.Options.(*ListenerOptions)
	if !dev && l.TLSCert == "" && (o == nil || !o.AllowPlaintext) {
		t.Problem("", "postgres listener %q needs tls_cert and tls_key (clients send their token as the password): set both, or run with --dev for local trials, which makes a self-signed certificate", l.Name)
	}
}

// TargetOptions are a postgres [[targets]] table's own keys.
type TargetOptions struct {
	// Database is the database on the upstream when a client names this
	// target as its database (default "postgres").
	Database string `toml:"database"`
	// SSLMode is how the gateway secures its connection to the upstream:
	// verify-full (default; ca_file or the system roots) or disable
	// (loopback upstreams only).
	SSLMode string `toml:"sslmode"`
	// ApplicationNameSuffix (default true) appends " tollgate:<session
	// ID>" to the upstream session's application_name, so that
	// pg_stat_activity lines up with the audit trail.
	ApplicationNameSuffix *bool `toml:"application_name_suffix"`
	// Sensitive lists the columns whose values never reach the agent in
	// clear, whatever the query calls them.
	Sensitive []Sensitive `toml:"sensitive"`
}

// Sensitive is one [[targets.sensitive]] entry: columns named as
// schema.table.column globs (* matches any run of characters within a
// part), resolved against the target's catalog. A plain output column is
// masked wherever its values come from these columns (PostgreSQL names
// the source table and column of each result column). Derived says what
// happens to a statement that uses such a column any other way (in an
// expression, a function, a predicate, a whole-row reference): "refuse"
// (the default) refuses the statement, naming the column; "mask" runs it
// and masks every computed output column instead (a predicate on the
// column is then allowed: the operator accepts it as an oracle).
type Sensitive struct {
	Columns []string `toml:"columns"`
	Derived string   `toml:"derived"`
}

// Check applies the target's defaults and checks a host:port upstream,
// TLS towards it unless it is on loopback, the sensitive columns and a
// password credential.
func (o *TargetOptions) Check(t *gate.Table) {
	if o.Database == "" {
		o.Database = "postgres"
	}
	if o.SSLMode == "" {
		o.SSLMode = "verify-full"
	}
	if o.ApplicationNameSuffix == nil {
		on := true
		o.ApplicationNameSuffix = &on
	}
	tg := t.Self()
	host, port, err := net.SplitHostPort(tg.Upstream)
	if _, perr := strconv.ParseUint(port, 10, 16); err != nil || host == "" || perr != nil {
		t.Problem("upstream", "must be host:port for a postgres target (e.g. db.internal:5432)")
	}
	switch o.SSLMode {
	case "verify-full":
	case "disable":
		if !loopbackHost(host) {
			t.Problem("sslmode", "disable is accepted for a loopback upstream only; use verify-full with ca_file")
		}
		if tg.CAFile != "" {
			t.Problem("ca_file", "only applies with sslmode = \"verify-full\"")
		}
	default:
		t.Problem("sslmode", "must be verify-full or disable")
	}
	for i, sc := range o.Sensitive {
		sp := fmt.Sprintf("sensitive[%d]", i)
		if len(sc.Columns) == 0 {
			t.Problem(sp+".columns", "name at least one column as schema.table.column (globs with *)")
		}
		for j, c := range sc.Columns {
			if parts := strings.Split(c, "."); len(parts) != 3 || parts[0] == "" || parts[1] == "" || parts[2] == "" {
				t.Problem(fmt.Sprintf("%s.columns[%d]", sp, j), "%q is not schema.table.column (use * for any schema: *.users.email)", c)
			}
		}
		switch sc.Derived {
		case "", "refuse", "mask":
		default:
			t.Problem(sp+".derived", "must be refuse or mask")
		}
	}
	switch cr := tg.Credential; cr.Type {
	case "password":
		if cr.Username == "" {
			t.Problem("credential", "username is required for password credentials")
		}
		t.RequireSecret("credential.password", cr.Password)
	default:
		t.Problem("credential.type", "must be password for a postgres target (SCRAM-SHA-256 or md5, as the server asks)")
	}
}

func loopbackHost(host string) bool {
	ip := net.ParseIP(host)
	return (ip != nil && ip.IsLoopback()) || host == "localhost"
}

// listenerConfig is a listener's config as the package uses it: the
// common keys and the protocol's own side by side.
type listenerConfig struct {
	gate.Listener
	ListenerOptions
}

// targetOptions are t's postgres options; the defaults for a target that
// did not pass through config.Parse.
func targetOptions(t *gate.Target) *TargetOptions {
	if o, ok := t.Options.(*TargetOptions); ok {
		return o
	}
	return &TargetOptions{}
}
