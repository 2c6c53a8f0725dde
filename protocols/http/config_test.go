package http_test

import (
	"errors"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tollgate-dev/tollgate/host/config"
	httpproto "github.com/tollgate-dev/tollgate/protocols/http"
)

// The package registers itself (init), so config.Parse decodes and
// checks its tables; these are the tests of its keys that lived in
// host/config before the protocol did.

const minimal = `
[[targets]]
name = "api"
protocol = "http"
upstream = "http://127.0.0.1:9000"

[[listeners]]
name = "http"
protocol = "http"
listen = "127.0.0.1:8080"
[[listeners.routes]]
target = "api"

[[access]]
name = "all"
targets = ["api"]
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

func wantProblem(t *testing.T, ps config.Problems, line, col int, contains string) {
	t.Helper()
	for _, p := range ps {
		if p.Line == line && p.Col == col && strings.Contains(p.Message, contains) {
			return
		}
	}
	t.Fatalf("no problem at %d:%d containing %q; got:\n%v", line, col, contains, ps)
}

func listenerOf(c *config.Config) *httpproto.ListenerOptions {
	return c.Listeners[0].Options.(*httpproto.ListenerOptions)
}

func targetOf(c *config.Config) *httpproto.TargetOptions {
	return c.Targets[0].Options.(*httpproto.TargetOptions)
}

func TestHTTPListenerAndTargetKeys(t *testing.T) {
	c := mustParse(t, minimal)
	l, tg := listenerOf(c), targetOf(c)
	if l.ReadHeaderTimeout.Duration != 10*time.Second || l.MaxHeaderBytes != 64<<10 || l.IdleTimeout.Duration != 120*time.Second {
		t.Errorf("listener defaults: %+v", l)
	}
	if l.ReadBodyTimeout.Duration != 5*time.Minute || l.MaxInspectBodyBytes != 1<<20 {
		t.Errorf("http listener defaults: read_body_timeout %v max_inspect_body_bytes %d", l.ReadBodyTimeout, l.MaxInspectBodyBytes)
	}
	if len(tg.Upgrades) != 1 || tg.Upgrades[0] != "websocket" {
		t.Errorf("upgrades default %v, want [websocket]", tg.Upgrades)
	}
	none := mustParse(t, strings.Replace(minimal, `upstream = "http://127.0.0.1:9000"`, `upstream = "http://127.0.0.1:9000"`+"\nupgrades = []", 1))
	if len(targetOf(none).Upgrades) != 0 {
		t.Errorf("upgrades = [] must refuse every upgrade, got %v", targetOf(none).Upgrades)
	}
	// read_body_timeout = "0s" is the operator's zero: no deadline.
	zero := mustParse(t, strings.Replace(minimal, `listen = "127.0.0.1:8080"`, `listen = "127.0.0.1:8080"`+"\nread_body_timeout = \"0s\"", 1))
	if d := listenerOf(zero).ReadBodyTimeout.Duration; d != 0 {
		t.Errorf(`read_body_timeout = "0s" became %v`, d)
	}

	src := strings.Replace(minimal, `listen = "127.0.0.1:8080"`, `listen = "127.0.0.1:8080"`+"\nmax_inspect_body_bytes = 10", 1)
	src = strings.Replace(src, `upstream = "http://127.0.0.1:9000"`, `upstream = "http://127.0.0.1:9000"`+"\nupgrades = [\"h2c websocket\"]", 1)
	ps := problemsOf(t, src)
	at := func(s string) int { return strings.Count(src[:strings.Index(src, s)], "\n") + 1 }
	wantProblem(t, ps, at("max_inspect_body_bytes"), 1, "must be between 1024 and")
	wantProblem(t, ps, at("upgrades"), 13, "must be a protocol name")
}

func TestHTTPProblems(t *testing.T) {
	src := minimal + `
[[listeners]]
name = "dup"
protocol = "http"
listen = "127.0.0.1:8081"
max_header_bytes = 0
[[listeners.routes]]
target = "nowhere"
[[listeners.routes]]
path_prefix = "api"

[[targets]]
name = "inline"
protocol = "http"
upstream = "ftp://127.0.0.1:1"
[targets.credential]
type = "header"
header = "host"
value = "env:X"
`
	ps := problemsOf(t, src)
	at := func(s string) int { return strings.Count(src[:strings.Index(src, s)], "\n") + 1 }
	wantProblem(t, ps, at(`target = "nowhere"`), 1, `no target named "nowhere"`)
	wantProblem(t, ps, at("max_header_bytes = 0"), 1, "listeners[1].max_header_bytes: must be between 1024 and 16777216 (16 MiB)")
	wantProblem(t, ps, at(`path_prefix = "api"`), 1, "listeners[1].routes[1].path_prefix: must start with /")
	wantProblem(t, ps, at(`path_prefix = "api"`)-1, 1, "listeners[1].routes[1]: target is required")
	wantProblem(t, ps, at(`upstream = "ftp:`), 1, "must be an http:// or https:// URL")
	wantProblem(t, ps, at(`header = "host"`), 1, "cannot be Host")
}

// listenerRanges are the ranged keys of an http listener, as README.md
// and examples/gateway.full.toml state them.
var listenerRanges = []struct {
	key      string
	min, max int64
	duration bool
	value    func(*httpproto.ListenerOptions) int64
}{
	{"read_header_timeout", int64(time.Second), int64(10 * time.Minute), true, func(o *httpproto.ListenerOptions) int64 { return int64(o.ReadHeaderTimeout.Duration) }},
	{"idle_timeout", int64(time.Second), int64(24 * time.Hour), true, func(o *httpproto.ListenerOptions) int64 { return int64(o.IdleTimeout.Duration) }},
	{"max_header_bytes", 1 << 10, 16 << 20, false, func(o *httpproto.ListenerOptions) int64 { return int64(o.MaxHeaderBytes) }},
	{"read_body_timeout", 0, int64(24 * time.Hour), true, func(o *httpproto.ListenerOptions) int64 { return int64(o.ReadBodyTimeout.Duration) }},
	{"max_inspect_body_bytes", 1 << 10, 1 << 30, false, func(o *httpproto.ListenerOptions) int64 { return o.MaxInspectBodyBytes }},
}

// Every ranged key, left out, gets a default in its range; written as
// zero, below its minimum, above its maximum and negative, it is honoured
// (in range: read_body_timeout's zero is "no deadline") or refused with a
// problem that names the key and the range, on the key's line.
func TestEveryRangeIsEnforced(t *testing.T) {
	def := listenerOf(mustParse(t, minimal))
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
			src := strings.Replace(minimal, `listen = "127.0.0.1:8080"`, `listen = "127.0.0.1:8080"`+"\n"+r.key+" = "+write(n), 1)
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
			var ps config.Problems
			if !errors.As(err, &ps) {
				t.Errorf("%s = %s (%s): err %v, want a problem", r.key, write(n), name, err)
				continue
			}
			wantProblem(t, ps, line, 1, want)
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
		lines := strings.Split(string(b), "\n")
		for i, l := range lines {
			if !strings.HasPrefix(l, r.key+" ") {
				continue
			}
			for j := i; j < min(i+3, len(lines)); j++ { // the comment may go on for a line or two
				found = found || strings.Contains(lines[j], want)
			}
		}
		if !found {
			t.Errorf("examples/gateway.full.toml: no %q on a %s line", want, r.key)
		}
	}
}

func TestGitTargetKeys(t *testing.T) {
	git := strings.Replace(minimal, `upstream = "http://127.0.0.1:9000"`, "upstream = \"http://127.0.0.1:9000\"\ngit = true\ngit_secret_scan = true", 1)
	c := mustParse(t, git)
	o := c.Targets[0].Options.(*httpproto.TargetOptions)
	if !o.Git || !o.GitSecretScan || o.GitMaxPushBytes != httpproto.DefaultGitMaxPushBytes {
		t.Fatalf("git options %+v", o)
	}
	ps := problemsOf(t, strings.Replace(minimal, `upstream = "http://127.0.0.1:9000"`, "upstream = \"http://127.0.0.1:9000\"\ngit_secret_scan = true\ngit_max_push_bytes = 10", 1))
	wantProblem(t, ps, 6, 1, "only applies to a target with git = true")
	wantProblem(t, ps, 7, 1, "git_max_push_bytes: must be "+config.Between(1<<20, 64<<30, false))
	b, err := os.ReadFile("../../examples/gateway.full.toml")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), "[range 1048576 (1 MiB) to 68719476736 (64 GiB)]") {
		t.Error("examples/gateway.full.toml does not state git_max_push_bytes' range")
	}
}
