package config

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

const minimal = `
[[targets]]
name = "api"
protocol = "fake"
upstream = "http://127.0.0.1:9000"

[[listeners]]
name = "http"
protocol = "fake"
listen = "127.0.0.1:8080"
[[listeners.routes]]
target = "api"

[[access]]
name = "all"
targets = ["api"]
`

func mustParse(t *testing.T, src string) *Config {
	t.Helper()
	c, err := Parse("gateway.toml", []byte(src), t.TempDir())
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	return c
}

// problemsOf parses src and returns its problems, failing if there are none.
func problemsOf(t *testing.T, src string) Problems {
	t.Helper()
	_, err := Parse("gateway.toml", []byte(src), t.TempDir())
	var ps Problems
	if !errors.As(err, &ps) {
		t.Fatalf("Parse err = %v, want Problems", err)
	}
	return ps
}

func wantProblem(t *testing.T, ps Problems, line, col int, contains string) {
	t.Helper()
	for _, p := range ps {
		if p.Line == line && p.Col == col && strings.Contains(p.Message, contains) {
			return
		}
	}
	t.Fatalf("no problem at %d:%d containing %q; got:\n%v", line, col, contains, ps)
}

func TestDefaults(t *testing.T) {
	c := mustParse(t, minimal)
	if c.Gateway.DataDir != ".tollgate" || c.Gateway.ShutdownGrace.Duration != 10*time.Second {
		t.Errorf("gateway defaults: %+v", c.Gateway)
	}
	if c.Targets[0].Credential.Type != "none" || c.Audit.Store != "file" || c.Audit.Path != "audit.jsonl" {
		t.Errorf("target/audit defaults: %+v %+v", c.Targets[0].Credential, c.Audit)
	}
	if c.Dev != nil {
		t.Error("no [dev] table must mean no dev issuer")
	}
}

func TestUnknownKeys(t *testing.T) {
	src := "[gateway]\ndat_dir = \"x\"\n" + minimal + `
[[listeners]]
name = "second"
protocol = "fake"
lisen = "127.0.0.1:8081"
[[listeners.routes]]
target = "api"

[frobnicate]
x = 1
`
	ps := problemsOf(t, src)
	wantProblem(t, ps, 2, 1, `gateway.dat_dir: unknown key (did you mean "gateway.data_dir"?)`)
	// The second listener's typo, placed on its own line, not the first's.
	line := strings.Count(src[:strings.Index(src, "lisen")], "\n") + 1
	wantProblem(t, ps, line, 1, `listeners[1].lisen: unknown key (did you mean "listeners.listen"?)`)
	fline := strings.Count(src[:strings.Index(src, "[frobnicate]")], "\n") + 1
	wantProblem(t, ps, fline, 1, "frobnicate: unknown key")
	for _, p := range ps {
		if strings.HasPrefix(p.Path, "frobnicate.") {
			t.Errorf("keys inside an unknown table are noise: %v", p)
		}
	}
}

func TestPluginConfigBelongsToThePlugin(t *testing.T) {
	mustParse(t, minimal+`
[[plugins]]
name = "mask"
path = "mask.wasm"
[plugins.config]
anything_goes = ["a", "b"]
nested = { deep = 1 }
`)
}

func TestMalformed(t *testing.T) {
	ps := problemsOf(t, "[gateway]\nid = \"unterminated\n")
	if len(ps) != 1 || ps[0].Line != 2 {
		t.Fatalf("problems = %v, want one on line 2", ps)
	}
	ps = problemsOf(t, "[[listeners]]\nlisten = 5\n")
	if ps[0].Line != 2 {
		t.Fatalf("type mismatch: %v", ps)
	}
	ps = problemsOf(t, "[gateway]\nshutdown_grace = \"10 parsecs\"\n")
	if ps[0].Line != 2 || !strings.Contains(ps[0].Message, "shutdown_grace") {
		t.Fatalf("bad duration: %v", ps)
	}
}

func TestSemanticProblems(t *testing.T) {
	src := minimal + `
[[listeners]]
name = "dup"
protocol = "fake"
listen = "127.0.0.1:8080"
[[listeners.routes]]
target = "nowhere"

[[access]]
name = "ghost"
targets = ["ghost-target"]
methods = ["get"]

[[identity.issuers]]
name = "weak"
issuer = "http://idp.example.com"
audience = ["x"]
algorithms = ["HS256"]

[[targets]]
name = "inline"
protocol = "fake"
upstream = "http://127.0.0.1:1"
[targets.credential]
type = "bearer"
token = "hunter2-very-secret"
`
	ps := problemsOf(t, src)
	at := func(s string) int { return strings.Count(src[:strings.Index(src, s)], "\n") + 1 }
	wantProblem(t, ps, at(`listen = "127.0.0.1:8080"`+"\n[[listeners.routes]]\ntarget = \"nowhere\""), 1, "already used by listeners[0].listen")
	wantProblem(t, ps, at(`target = "nowhere"`), 1, `no target named "nowhere"`)
	wantProblem(t, ps, at(`targets = ["ghost-target"]`), 1, `no target named "ghost-target"`)
	wantProblem(t, ps, at(`methods = ["get"]`), 1, "upper case")
	wantProblem(t, ps, at(`issuer = "http://idp`), 1, "https")
	wantProblem(t, ps, at(`algorithms = ["HS256"]`), 1, `"HS256" is not accepted`)
	wantProblem(t, ps, at(`token = "hunter2`), 1, "never written inline")
	if strings.Contains(ps.Error(), "hunter2") {
		t.Fatal("a problem message repeats an inline secret")
	}
}

func TestResolveSecrets(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "pw"), []byte("s3cret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	src := minimal + `
[[targets]]
name = "b"
protocol = "fake"
upstream = "http://127.0.0.1:2"
[targets.credential]
type = "basic"
username = "u"
password = "file:pw"

[[targets]]
name = "c"
protocol = "fake"
upstream = "http://127.0.0.1:3"
[targets.credential]
type = "bearer"
token = "env:TOLLGATE_TEST_UNSET_TOKEN"
`
	c, err := Parse("gateway.toml", []byte(src), dir)
	if err != nil {
		t.Fatal(err)
	}
	err = c.ResolveSecrets()
	var ps Problems
	if !errors.As(err, &ps) || len(ps) != 1 {
		t.Fatalf("ResolveSecrets = %v, want one problem", err)
	}
	line := strings.Count(src[:strings.Index(src, "token = \"env:")], "\n") + 1
	wantProblem(t, ps, line, 1, "targets[2].credential.token: environment variable TOLLGATE_TEST_UNSET_TOKEN is not set")

	t.Setenv("TOLLGATE_TEST_UNSET_TOKEN", "tok")
	if err := c.ResolveSecrets(); err != nil {
		t.Fatal(err)
	}
	if c.Targets[1].Credential.Password.Value() != "s3cret" || c.Targets[2].Credential.Token.Value() != "tok" {
		t.Fatal("secrets not resolved")
	}
	if s := c.Targets[1].Credential.Password.String(); s != "file:pw" {
		t.Fatalf("a Secret prints as %q; it must print its reference", s)
	}
}

func FuzzParse(f *testing.F) {
	for _, p := range []string{"../../gateway.toml", "../../examples/gateway.full.toml"} {
		if b, err := os.ReadFile(p); err == nil {
			f.Add(b)
		}
	}
	f.Add([]byte(minimal))
	f.Add([]byte("[gateway]\ndat_dir = 1\n[[listeners]]\n[[listeners.routes]]\nx={a=[1,{b=2}]}"))
	f.Fuzz(func(t *testing.T, src []byte) {
		c, err := Parse("f.toml", src, ".")
		if err == nil {
			if c == nil {
				t.Fatal("nil config without error")
			}
			return
		}
		var ps Problems
		if !errors.As(err, &ps) || len(ps) == 0 {
			t.Fatalf("error is not Problems: %v", err)
		}
		for _, p := range ps {
			if p.Line < 1 || p.Col < 1 || p.Message == "" {
				t.Fatalf("problem without a place or message: %+v", p)
			}
		}
	})
}

func TestApprovals(t *testing.T) {
	c := mustParse(t, minimal)
	if c.Approvals != nil {
		t.Fatal("no [approvals] table must mean no approval service")
	}
	c = mustParse(t, minimal+`
[admin]
listen = "127.0.0.1:8090"

[approvals]
[[approvals.webhooks]]
group = "dba"
url = "env:SLACK_HOOK"
`)
	ap := c.Approvals
	if ap.Timeout.Duration != 10*time.Minute || ap.HTTPWait.Duration != 25*time.Second || ap.ApprovalsRequired != 1 ||
		ap.BaseURL != "http://127.0.0.1:8090" || ap.Webhooks[0].Format != "slack" ||
		ap.MaxPendingPerPrincipal != 20 || ap.MaxPendingPerTarget != 100 {
		t.Fatalf("defaults: %+v", ap)
	}
	src := minimal + `
[approvals]
timeout = "1m"
http_wait = "2m"
base_url = "ftp://x"
store = "clickhouse"
max_pending_per_principal = -1
max_pending_per_target = -5
[[approvals.webhooks]]
url = "https://hooks.slack.com/services/T0/B0/secret"
format = "teams"
`
	ps := problemsOf(t, src)
	line := func(s string) int { return strings.Count(src[:strings.Index(src, s)], "\n") + 1 }
	wantProblem(t, ps, line("[approvals]"), 1, "set admin.listen")
	wantProblem(t, ps, line("http_wait"), 1, "at most approvals.timeout")
	wantProblem(t, ps, line("base_url"), 1, "http or https URL")
	wantProblem(t, ps, line("url = \"https"), 1, "never written inline")
	wantProblem(t, ps, line("format"), 1, "slack or generic")
	wantProblem(t, ps, line("store"), 1, `needs audit.store = "clickhouse"`)
	wantProblem(t, ps, line("max_pending_per_principal"), 1, "max_pending_per_principal: must be between 1 and 100000")
	wantProblem(t, ps, line("max_pending_per_target"), 1, "max_pending_per_target: must be between 1 and 100000")
	if ap.Store != "file" || ap.PollInterval.Duration != 250*time.Millisecond {
		t.Fatalf("store defaults: %+v", ap)
	}
}

// clock_skew = "0s" is the operator's zero, not a value to replace with
// the default: a token is then refused the second it expires. Left out,
// the skew is 60s.
func TestClockSkewZeroMeansZero(t *testing.T) {
	issuer := func(skew string) string {
		return minimal + "\n[[identity.issuers]]\nname = \"ci\"\nissuer = \"https://token.example\"\naudience = [\"tollgate\"]\n" + skew
	}
	if got := mustParse(t, issuer(`clock_skew = "0s"`)).Identity.Issuers[0].ClockSkew.Duration; got != 0 {
		t.Fatalf(`clock_skew = "0s" became %v`, got)
	}
	if got := mustParse(t, issuer("")).Identity.Issuers[0].ClockSkew.Duration; got != 60*time.Second {
		t.Fatalf("default clock_skew: %v", got)
	}
	if got := mustParse(t, issuer(`clock_skew = "5s"`)).Identity.Issuers[0].ClockSkew.Duration; got != 5*time.Second {
		t.Fatalf(`clock_skew = "5s" became %v`, got)
	}
}
