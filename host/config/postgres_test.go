package config

import (
	"errors"
	"strings"
	"testing"
	"time"
)

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

func TestPostgresDefaults(t *testing.T) {
	c := mustParse(t, pgConfig)
	if tg := c.Targets[0]; tg.Database != "postgres" || tg.SSLMode != "verify-full" {
		t.Errorf("target defaults: %+v", tg)
	}
	if l := c.Listeners[0]; l.MaxMessageBytes != 16<<20 || l.Target != "" || l.MaxConnections != 1000 ||
		l.MaxConnectionsPerSource != 100 || l.AuthTimeout.Duration != 10*time.Second {
		t.Errorf("listener defaults: %+v", l)
	}
	if tg := c.Targets[0]; tg.ApplicationNameSuffix == nil || !*tg.ApplicationNameSuffix {
		t.Errorf("application_name_suffix defaults to true: %v", tg.ApplicationNameSuffix)
	}
	// A small listener cap lowers the per-source default with it; an
	// explicit false stays false.
	c = mustParse(t, strings.Replace(strings.Replace(pgConfig, "allow_plaintext = true", "allow_plaintext = true\nmax_connections = 20", 1),
		`upstream = "127.0.0.1:5432"`, "upstream = \"127.0.0.1:5432\"\napplication_name_suffix = false", 1))
	if l := c.Listeners[0]; l.MaxConnections != 20 || l.MaxConnectionsPerSource != 20 {
		t.Errorf("caps with max_connections = 20: %+v", l)
	}
	if tg := c.Targets[0]; tg.ApplicationNameSuffix == nil || *tg.ApplicationNameSuffix {
		t.Errorf("application_name_suffix = false: %v", tg.ApplicationNameSuffix)
	}
	// The HTTP listener of the minimal config gets no postgres defaults.
	if l := mustParse(t, minimal).Listeners[0]; l.MaxConnections != 0 || l.AuthTimeout.Duration != 0 {
		t.Errorf("http listener with postgres defaults: %+v", l)
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
		{`allow_plaintext = true`, "allow_plaintext = true\n[[listeners.routes]]\ntarget = \"db\"", 0, 0, "a postgres listener has no routes"},
		{`allow_plaintext = true`, "alow_plaintext = true", 17, 1, `did you mean "listeners.allow_plaintext"`},
		{`allow_plaintext = true`, "allow_plaintext = true\nmax_connections = -1", 17, 1, "max_connections: must be between 1 and 1000000"},
		{`allow_plaintext = true`, "allow_plaintext = true\nmax_connections = 10\nmax_connections_per_source = 11", 17, 1, "at most max_connections (10)"},
		{`allow_plaintext = true`, "allow_plaintext = true\nmax_connections_per_source = -3", 17, 1, "max_connections_per_source: must be between 1 and 1000000"},
		{`allow_plaintext = true`, "allow_plaintext = true\nauth_timeout = \"10ms\"", 17, 1, "between 1s and 10m"},
		{`allow_plaintext = true`, "allow_plaintext = true\nauth_timeout = \"1h\"", 17, 1, "between 1s and 10m"},
		{`allow_plaintext = true`, "allow_plaintext = true\nauth_timeout = \"ten\"", 0, 0, "auth_timeout"},
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
	// http-only and postgres-only keys stay where they belong.
	ps := problemsOf(t, strings.Replace(minimal, `upstream = "http://127.0.0.1:9000"`, "upstream = \"http://127.0.0.1:9000\"\nsslmode = \"disable\"", 1))
	if !strings.Contains(ps.Error(), "postgres targets only") {
		t.Errorf("sslmode on an http target: %v", ps)
	}
	ps = problemsOf(t, strings.Replace(minimal, `upstream = "http://127.0.0.1:9000"`, "upstream = \"http://127.0.0.1:9000\"\napplication_name_suffix = false", 1))
	if !strings.Contains(ps.Error(), "postgres targets only") {
		t.Errorf("application_name_suffix on an http target: %v", ps)
	}
	ps = problemsOf(t, strings.Replace(minimal, `listen = "127.0.0.1:8080"`, "listen = \"127.0.0.1:8080\"\nmax_connections = 5", 1))
	if !strings.Contains(ps.Error(), "apply to postgres listeners only") {
		t.Errorf("max_connections on an http listener: %v", ps)
	}
}

// ValidateServe is what serve refuses in each mode: a postgres listener
// with neither a certificate nor allow_plaintext needs --dev, and --dev
// needs [dev]. Parse alone accepts both, as serve --dev does.
func TestValidateServeChecksPostgresTLS(t *testing.T) {
	noTLS := mustParse(t, strings.Replace(pgConfig, "allow_plaintext = true", "", 1))
	var ps Problems
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
