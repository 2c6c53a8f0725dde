package postgres_test

import (
	"errors"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tollgate-dev/tollgate/host/config"
	"github.com/tollgate-dev/tollgate/protocols/postgres"
)

// The package registers itself (init), so config.Parse decodes and
// checks its tables; these are the tests of its keys that lived in
// host/config before the protocol did.

const pgConfig = `
[[targets]]
name = "db"
protocol = "postgres"
upstream = "127.0.0.1:5432"
[targets.credential]
type = "password"
username = "agent"
password = "env:DB_PW"

[[listeners]]
name = "pg"
protocol = "postgres"
listen = "127.0.0.1:6432"
allow_plaintext = true

[[access]]
name = "all"
targets = ["db"]
`

func mustParse(t *testing.T, src string) *config.Config {
	t.Helper()
	c, err := config.Parse("gateway.toml", []byte(src), t.TempDir())
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	return c
}

// problemsOf parses src and returns its problems, failing if there are none.
func problemsOf(t *testing.T, src string) config.Problems {
	t.Helper()
	_, err := config.Parse("gateway.toml", []byte(src), t.TempDir())
	var ps config.Problems
	if !errors.As(err, &ps) {
		t.Fatalf("Parse err = %v, want Problems", err)
	}
	return ps
}

func listenerOf(c *config.Config) *postgres.ListenerOptions {
	return c.Listeners[0].Options.(*postgres.ListenerOptions)
}

func targetOf(c *config.Config) *postgres.TargetOptions {
	return c.Targets[0].Options.(*postgres.TargetOptions)
}

func TestPostgresDefaults(t *testing.T) {
	c := mustParse(t, pgConfig)
	if tg := targetOf(c); tg.Database != "postgres" || tg.SSLMode != "verify-full" {
		t.Errorf("target defaults: %+v", tg)
	}
	if l := listenerOf(c); l.MaxMessageBytes != 16<<20 || l.Target != "" || l.MaxConnections != 1000 ||
		l.MaxConnectionsPerSource != 100 || l.AuthTimeout.Duration != 10*time.Second ||
		l.MaxStatementBytes != 1<<20 || l.IdleTimeout.Duration != 15*time.Minute {
		t.Errorf("listener defaults: %+v", l)
	}
	if tg := targetOf(c); tg.ApplicationNameSuffix == nil || !*tg.ApplicationNameSuffix {
		t.Errorf("application_name_suffix defaults to true: %v", tg.ApplicationNameSuffix)
	}
	// A small listener cap lowers the per-source default with it; an
	// explicit false stays false.
	c = mustParse(t, strings.Replace(strings.Replace(pgConfig, "allow_plaintext = true", "allow_plaintext = true\nmax_connections = 20", 1),
		`upstream = "127.0.0.1:5432"`, "upstream = \"127.0.0.1:5432\"\napplication_name_suffix = false", 1))
	if l := listenerOf(c); l.MaxConnections != 20 || l.MaxConnectionsPerSource != 20 {
		t.Errorf("caps with max_connections = 20: %+v", l)
	}
	if tg := targetOf(c); tg.ApplicationNameSuffix == nil || *tg.ApplicationNameSuffix {
		t.Errorf("application_name_suffix = false: %v", tg.ApplicationNameSuffix)
	}
}

func TestPostgresProblems(t *testing.T) {
	for _, tc := range []struct {
		old, new  string
		line, col int
		want      string
	}{
		{`upstream = "127.0.0.1:5432"`, `upstream = "postgres://db"`, 5, 1, "must be host:port"},
		{`upstream = "127.0.0.1:5432"`, "upstream = \"db.example:5432\"\nsslmode = \"disable\"", 6, 1, "loopback upstream only"},
		{`type = "password"`, `type = "bearer"`, 7, 1, "must be password for a postgres target"},
		{`listen = "127.0.0.1:6432"`, `listen = "0.0.0.0:6432"`, 16, 1, "loopback listen address only"},
		{`allow_plaintext = true`, "allow_plaintext = true\ntarget = \"nope\"", 17, 1, `no target named "nope"`},
		{`allow_plaintext = true`, "allow_plaintext = true\nmax_message_bytes = 10", 17, 1, "between 1024 and 1073741824 (1 GiB)"},
		{`allow_plaintext = true`, "allow_plaintext = true\n[[listeners.routes]]\ntarget = \"db\"", 0, 0, "listeners[0].routes: unknown key"},
		{`allow_plaintext = true`, "alow_plaintext = true", 17, 1, `did you mean "listeners.allow_plaintext"`},
		{`allow_plaintext = true`, "allow_plaintext = true\nmax_connections = -1", 17, 1, "max_connections: must be between 1 and 1000000"},
		{`allow_plaintext = true`, "allow_plaintext = true\nmax_connections = 10\nmax_connections_per_source = 11", 17, 1, "at most max_connections (10)"},
		{`allow_plaintext = true`, "allow_plaintext = true\nmax_connections_per_source = -3", 17, 1, "max_connections_per_source: must be between 1 and 1000000"},
		{`allow_plaintext = true`, "allow_plaintext = true\nauth_timeout = \"10ms\"", 17, 1, "between 1s and 10m"},
		{`allow_plaintext = true`, "allow_plaintext = true\nauth_timeout = \"1h\"", 17, 1, "between 1s and 10m"},
		{`allow_plaintext = true`, "allow_plaintext = true\nauth_timeout = \"ten\"", 0, 0, "auth_timeout"},
		{`allow_plaintext = true`, "allow_plaintext = true\n[[targets.sensitive]]\ncolumns = [\"users.email\"]\nderived = \"hide\"", 0, 0, `"users.email" is not schema.table.column`},
	} {
		src := strings.Replace(pgConfig, tc.old, tc.new, 1)
		ps := problemsOf(t, src)
		if tc.line == 0 {
			if !strings.Contains(ps.Error(), tc.want) {
				t.Errorf("%q: want %q in %v", tc.new, tc.want, ps)
			}
			continue
		}
		found := false
		for _, p := range ps {
			if strings.Contains(p.Message, tc.want) {
				found = true
			}
		}
		if !found {
			t.Errorf("%q: want %q in %v", tc.new, tc.want, ps)
		}
	}
}

// ValidateServe is what serve refuses in each mode: a postgres listener
// with neither a certificate nor allow_plaintext needs --dev, and --dev
// needs [dev]. Parse alone accepts both, as serve --dev does.
func TestValidateServeChecksPostgresTLS(t *testing.T) {
	noTLS := mustParse(t, strings.Replace(pgConfig, "allow_plaintext = true", "", 1))
	var ps config.Problems
	if !errors.As(noTLS.ValidateServe(false), &ps) || len(ps) != 1 || ps[0].Line != 11 || ps[0].Path != "listeners[0]" ||
		!strings.Contains(ps[0].Message, "set both, or run with --dev") {
		t.Errorf("without --dev: %v", ps)
	}
	if !errors.As(noTLS.ValidateServe(true), &ps) || len(ps) != 1 || !strings.Contains(ps[0].Message, "--dev needs a [dev] table") {
		t.Errorf("--dev without [dev]: %v", ps)
	}
	if err := mustParse(t, strings.Replace(pgConfig, "allow_plaintext = true", "", 1)+"\n[dev]\n").ValidateServe(true); err != nil {
		t.Errorf("--dev: %v", err)
	}
	if err := mustParse(t, pgConfig).ValidateServe(false); err != nil {
		t.Errorf("allow_plaintext: %v", err)
	}
	withCert := strings.Replace(pgConfig, "allow_plaintext = true", "tls_cert = \"gw.crt\"\ntls_key = \"gw.key\"", 1)
	if err := mustParse(t, withCert).ValidateServe(false); err != nil {
		t.Errorf("tls_cert: %v", err)
	}
}

// listenerRanges are the ranged keys of a postgres listener, as README.md
// and examples/gateway.full.toml state them.
var listenerRanges = []struct {
	key      string
	min, max int64
	duration bool
	value    func(*postgres.ListenerOptions) int64
}{
	{"max_message_bytes", 1 << 10, 1 << 30, false, func(o *postgres.ListenerOptions) int64 { return int64(o.MaxMessageBytes) }},
	{"max_statement_bytes", 1 << 10, 64 << 20, false, func(o *postgres.ListenerOptions) int64 { return int64(o.MaxStatementBytes) }},
	{"max_connections", 1, 1_000_000, false, func(o *postgres.ListenerOptions) int64 { return int64(o.MaxConnections) }},
	{"max_connections_per_source", 1, 1_000_000, false, func(o *postgres.ListenerOptions) int64 { return int64(o.MaxConnectionsPerSource) }},
	{"auth_timeout", int64(time.Second), int64(10 * time.Minute), true, func(o *postgres.ListenerOptions) int64 { return int64(o.AuthTimeout.Duration) }},
	{"idle_timeout", int64(time.Second), int64(24 * time.Hour), true, func(o *postgres.ListenerOptions) int64 { return int64(o.IdleTimeout.Duration) }},
}

// Every ranged key, left out, gets a default in its range; written as
// zero, below its minimum, above its maximum and negative, it is refused
// with a problem that names the key and the range, on the key's line;
// written in range, it is honoured.
func TestEveryRangeIsEnforced(t *testing.T) {
	def := listenerOf(mustParse(t, pgConfig))
	for _, r := range listenerRanges {
		if n := r.value(def); n < r.min || n > r.max {
			t.Errorf("%s: default %d outside its range", r.key, n)
		}
		write := func(n int64) string {
			if r.duration {
				return strconv.Quote(time.Duration(n).String())
			}
			return strconv.FormatInt(n, 10)
		}
		unit := int64(1)
		if r.duration {
			unit = int64(time.Millisecond)
		}
		for name, n := range map[string]int64{"zero": 0, "below min": r.min - unit, "above max": r.max + unit, "negative": -unit, "min": r.min, "max": r.max} {
			extra := ""
			if r.key == "max_connections_per_source" {
				extra = "\nmax_connections = 1000000" // so that any per-source value in range is at most it
			}
			src := strings.Replace(pgConfig, "allow_plaintext = true", "allow_plaintext = true"+extra+"\n"+r.key+" = "+write(n), 1)
			c, err := config.Parse("gateway.toml", []byte(src), t.TempDir())
			if n >= r.min && n <= r.max {
				if err != nil {
					t.Errorf("%s = %s (%s): refused though in range: %v", r.key, write(n), name, err)
				} else if got := r.value(listenerOf(c)); got != n {
					t.Errorf("%s = %s (%s): became %d, want it honoured", r.key, write(n), name, got)
				}
				continue
			}
			want := r.key + ": must be " + config.Between(r.min, r.max, r.duration)
			line := strings.Count(src[:strings.Index(src, r.key+" = ")], "\n") + 1
			ps, ok := err.(config.Problems)
			found := false
			for _, p := range ps {
				found = found || (strings.Contains(p.Message, want) && p.Line == line)
			}
			if !ok || !found {
				t.Errorf("%s = %s (%s): no problem %q at line %d; got:\n%v", r.key, write(n), name, want, line, err)
			}
		}
	}
}

// The reference config states every range as the package applies it.
func TestRangesAreDocumented(t *testing.T) {
	b, err := os.ReadFile("../../examples/gateway.full.toml")
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range listenerRanges {
		want := "[range " + strings.TrimPrefix(strings.Replace(config.Between(r.min, r.max, r.duration), " and ", " to ", 1), "between ")
		found := false
		for _, l := range strings.Split(string(b), "\n") {
			found = found || (strings.HasPrefix(l, r.key+" ") && strings.Contains(l, want))
		}
		if !found {
			t.Errorf("examples/gateway.full.toml: no %q on a %s line", want, r.key)
		}
	}
}
