package postgres_test

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io/fs"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/tollgate-dev/tollgate/internal/testenv"
)

// TestPgxConformance is the acceptance check of the PostgreSQL listener:
// pgx's own test suite (the pgx version in go.mod) runs twice, once
// straight at a throwaway PostgreSQL 15 and once through the gateway
// binary in front of the same server, and every top-level test must end
// the same way both times, unless testdata/pgx-conformance-known.txt
// documents why it does not.
//
// It takes minutes, so a plain `go test` of this package skips it;
// `make conformance` and `make test` set TOLLGATE_CONFORMANCE=1.
func TestPgxConformance(t *testing.T) {
	if os.Getenv("TOLLGATE_CONFORMANCE") == "" {
		t.Skip("pgx conformance runs in `make conformance` and `make test` (TOLLGATE_CONFORMANCE=1)")
	}
	testenv.RequireCommand(t, "psql")
	root := testenv.ModuleRoot(t)
	known := loadKnown(t, filepath.Join(root, "protocols/postgres/testdata/pgx-conformance-known.txt"))
	src, version := pgxSource(t, root)
	out := filepath.Join(root, ".conformance")
	os.MkdirAll(out, 0o755)

	// pgx's CI talks TLS to its server (sslmode defaults to prefer), so
	// both runs do: directly, and client to gateway (the gateway reaches
	// the server on loopback without TLS).
	pg := testenv.StartPostgres(t, testenv.PostgresOptions{TLS: true})
	pg.Exec(t, "CREATE DATABASE pgx_test")
	setup, err := os.ReadFile(filepath.Join(root, "protocols/postgres/testdata/pgx-conformance-setup.sql"))
	if err != nil {
		t.Fatal(err)
	}
	pg.ExecDB(t, "pgx_test", string(setup))

	listen, issuer := testenv.FreeAddr(t), testenv.FreeAddr(t)
	// No plugins: this measures what the protocol layer does to a
	// session. The listener is bound to the target so the client's
	// dbname (pgx_test) reaches the server as it would directly, and it
	// takes plaintext from loopback as the server's pg_hba does (pgx
	// still negotiates TLS first; a few tests turn TLS off on purpose).
	// max_statement_bytes is raised from 1 MiB to 16 MiB so that pgx's
	// 65,535-parameter statements (one of them the test that a large
	// response while writing does not deadlock) reach the relay instead
	// of the gateway's refusal of what it could not record whole.
	// application_name_suffix is off so that SHOW application_name is
	// what the client set (the default, on, is a documented difference).
	cfg := fmt.Sprintf(`
[gateway]
data_dir = "data"
shutdown_grace = "5s"
[dev]
issuer_listen = %q

[[targets]]
name = "pgx"
protocol = "postgres"
upstream = %q
database = "pgx_test"
sslmode = "disable"
application_name_suffix = false
[targets.credential]
type = "password"
username = "pgx_md5"
password = "env:PGX_MD5_PASSWORD"

[[listeners]]
name = "pg"
protocol = "postgres"
listen = %q
target = "pgx"
allow_plaintext = true
max_statement_bytes = 16777216

[[access]]
name = "conformance"
targets = ["pgx"]
`, issuer, pg.Addr(), listen)
	gw := testenv.StartGateway(t, testenv.GatewayOptions{Config: cfg, Dev: true,
		Env: []string{"PGX_MD5_PASSWORD=secret"}, Wait: []string{listen, issuer}})
	tok, errOut, code := gw.Run("token", "-c", "gateway.toml", "--sub", "pgx-conformance", "--ttl", "3h")
	if code != 0 {
		t.Fatalf("gateway token: %s", errOut)
	}

	// CI's PGX_TEST_DATABASE; the other PGX_TEST_* strings stay unset, so
	// the tests of other logins and sockets skip in both runs.
	host, port, _ := net.SplitHostPort(listen)
	direct := fmt.Sprintf("host=%s port=%s user=pgx_md5 password=secret dbname=pgx_test", pg.Host(), pg.Port())
	via := fmt.Sprintf("host=%s port=%s user=pgx_md5 password=%s dbname=pgx_test", host, port, strings.TrimSpace(tok))

	start := time.Now()
	d := runPgx(t, src, direct, filepath.Join(out, "direct.json"), nil)
	t.Logf("pgx %s direct: %s", version, time.Since(start).Round(time.Second))
	start = time.Now()
	g := runPgx(t, src, via, filepath.Join(out, "gateway.json"), nil)
	t.Logf("pgx %s through the gateway: %s", version, time.Since(start).Round(time.Second))

	diffs := differences(d, g)
	// A difference must show again when its tests run alone, so a test
	// that lost a race on two shared cores does not fail the build.
	if len(diffs) > 0 {
		only := map[string][]string{}
		for _, k := range diffs {
			pkg, name, _ := strings.Cut(k, ".")
			only[pkg] = append(only[pkg], name)
		}
		d2 := runPgx(t, src, direct, filepath.Join(out, "direct-again.json"), only)
		g2 := runPgx(t, src, via, filepath.Join(out, "gateway-again.json"), only)
		var unstable []string
		confirmed := diffs[:0]
		for _, k := range diffs {
			if d2.outcome[k] == g2.outcome[k] {
				unstable = append(unstable, k)
				continue
			}
			confirmed = append(confirmed, k)
		}
		diffs = confirmed
		for _, k := range unstable {
			t.Logf("not a difference when run alone (direct %s, gateway %s the first time): %s", d.outcome[k], g.outcome[k], k)
		}
	}

	documented, undocumented := 0, 0
	for _, k := range diffs {
		reason, ok := known[k]
		if ok {
			documented++
			t.Logf("difference (documented): %s: direct %s, gateway %s\n    why: %s", k, d.outcome[k], g.outcome[k], reason)
			continue
		}
		undocumented++
		t.Errorf("difference (not in pgx-conformance-known.txt): %s: direct %s, gateway %s\n%s", k, d.outcome[k], g.outcome[k], indent(g.output[k]+d.output[k]))
	}
	for k := range known {
		if d.outcome[k] != "" && d.outcome[k] == g.outcome[k] {
			t.Logf("documented difference no longer seen (remove it from pgx-conformance-known.txt): %s", k)
		}
	}
	t.Logf("pgx conformance: direct %s; gateway %s; %d differences (%d documented)",
		d.summary(), g.summary(), len(diffs), documented)
	if undocumented > 0 {
		t.Logf("raw go test -json output: %s", out)
	}
}

// pgxSource copies the module source of the pgx version go.mod requires
// into a temp dir (the module cache is read-only, and go test writes
// nothing there, but a copy keeps the run from depending on that) and
// returns it and the version.
func pgxSource(t *testing.T, root string) (string, string) {
	t.Helper()
	cmd := exec.Command("go", "list", "-m", "-f", "{{.Version}}", "github.com/jackc/pgx/v5")
	cmd.Dir = root
	v, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list -m github.com/jackc/pgx/v5: %v", err)
	}
	version := strings.TrimSpace(string(v))
	cmd = exec.Command("go", "mod", "download", "-json", "github.com/jackc/pgx/v5@"+version)
	cmd.Dir = root
	b, err := cmd.Output()
	if err != nil {
		t.Fatalf("go mod download pgx %s (the Go module proxy must be reachable): %v\n%s", version, err, b)
	}
	var mod struct{ Dir, Error string }
	if err := json.Unmarshal(b, &mod); err != nil || mod.Dir == "" {
		t.Fatalf("go mod download pgx %s: %v %s", version, err, mod.Error)
	}
	dst := filepath.Join(t.TempDir(), "pgx")
	err = filepath.WalkDir(mod.Dir, func(p string, e fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(mod.Dir, p)
		if e.IsDir() {
			return os.MkdirAll(filepath.Join(dst, rel), 0o755)
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(dst, rel), data, 0o644)
	})
	if err != nil {
		t.Fatalf("copy pgx source: %v", err)
	}
	return dst, version
}

// suite is one run of pgx's tests: each top-level test's outcome (pass,
// fail, skip) keyed "package.Test" (package relative to pgx's module,
// "pgx" for its root), and the output of the tests that failed.
type suite struct {
	outcome map[string]string
	output  map[string]string
}

func (s suite) summary() string {
	n := map[string]int{}
	for _, o := range s.outcome {
		n[o]++
	}
	return fmt.Sprintf("%d passed, %d failed, %d skipped", n["pass"], n["fail"], n["skip"])
}

// runPgx runs `go test -json` in pgx's source with PGX_TEST_DATABASE set
// to dsn, keeps the raw output in jsonPath and parses it. only limits the
// run to the named tests of each package.
func runPgx(t *testing.T, src, dsn, jsonPath string, only map[string][]string) suite {
	t.Helper()
	args := []string{"test", "-json", "-count=1"}
	if only == nil {
		args = append(args, "./...")
	} else {
		var names []string
		for pkg, tests := range only {
			for _, n := range tests {
				names = append(names, regexp.QuoteMeta(n))
			}
			if pkg == "pgx" {
				pkg = ""
			}
			args = append(args, "./"+pkg)
		}
		// One pattern for all: a package lacking a name runs nothing extra.
		args = append(args[:3], append([]string{"-run", "^(" + strings.Join(names, "|") + ")$"}, args[3:]...)...)
	}
	cmd := exec.Command("go", args...)
	cmd.Dir = src
	cmd.Env = append(pgxEnv(), "PGX_TEST_DATABASE="+dsn)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	os.WriteFile(jsonPath, stdout.Bytes(), 0o644)
	if _, ok := err.(*exec.ExitError); err != nil && !ok {
		t.Fatalf("go test in pgx's source: %v", err)
	}
	s := suite{outcome: map[string]string{}, output: map[string]string{}}
	outputs := map[string]*strings.Builder{}
	failedTest := map[string]bool{}
	sc := bufio.NewScanner(&stdout)
	sc.Buffer(make([]byte, 1<<20), 16<<20)
	for sc.Scan() {
		var ev struct{ Action, Package, Test, Output string }
		if json.Unmarshal(sc.Bytes(), &ev) != nil {
			continue
		}
		pkg := strings.TrimPrefix(strings.TrimPrefix(ev.Package, "github.com/jackc/pgx/v5"), "/")
		if pkg == "" {
			pkg = "pgx"
		}
		if ev.Test == "" {
			// A package that did not build or whose binary died has no
			// outcome per test; say so rather than count fewer tests.
			if ev.Action == "fail" && !failedTest[pkg] {
				t.Errorf("pgx package %s failed outside any test (PGX_TEST_DATABASE=%s):\n%s", pkg, redact(dsn), indent(outputs[pkg+"."].String()))
			}
			if ev.Action == "output" {
				b := outputs[pkg+"."]
				if b == nil {
					b = &strings.Builder{}
					outputs[pkg+"."] = b
				}
				b.WriteString(ev.Output)
			}
			continue
		}
		top, _, _ := strings.Cut(ev.Test, "/")
		key := pkg + "." + top
		switch ev.Action {
		case "output":
			b := outputs[key]
			if b == nil {
				b = &strings.Builder{}
				outputs[key] = b
			}
			if b.Len() < 8<<10 {
				b.WriteString(ev.Output)
			}
		case "pass", "fail", "skip":
			if ev.Test == top {
				s.outcome[key] = ev.Action
			}
			failedTest[pkg] = failedTest[pkg] || ev.Action == "fail"
		}
	}
	if len(stderr.Bytes()) > 0 && len(s.outcome) == 0 {
		t.Fatalf("go test in pgx's source ran no tests:\n%s", stderr.String())
	}
	for k, o := range s.outcome {
		if o == "fail" && outputs[k] != nil {
			s.output[k] = outputs[k].String()
		}
	}
	return s
}

// pgxEnv is this process's environment without anything that would
// point pgx's tests elsewhere (PG*, PGX_*) or change how the go command
// treats pgx's module.
func pgxEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		if strings.HasPrefix(k, "PG") || k == "GOWORK" || k == "GOFLAGS" || k == "TOLLGATE_CONFORMANCE" {
			continue
		}
		env = append(env, kv)
	}
	return append(env, "GOWORK=off", "GOFLAGS=-buildvcs=false", "GOTOOLCHAIN=local")
}

// differences are the tests whose outcome is not the same in both runs; a
// test missing from one run counts as a difference too.
func differences(d, g suite) []string {
	var keys []string
	for k, o := range d.outcome {
		if g.outcome[k] != o {
			keys = append(keys, k)
		}
	}
	for k := range g.outcome {
		if _, ok := d.outcome[k]; !ok {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	return keys
}

// loadKnown reads the allow-list: one "package.Test reason" a line, #
// comments. An entry without a reason is refused: the list is the record
// of why the gateway differs.
func loadKnown(t *testing.T, path string) map[string]string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("allow-list: %v", err)
	}
	known := map[string]string{}
	for i, line := range strings.Split(string(b), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		key, reason, _ := strings.Cut(line, " ")
		if strings.TrimSpace(reason) == "" || !strings.Contains(key, ".Test") {
			t.Fatalf("%s:%d: want `package.TestName reason`, got %q", path, i+1, line)
		}
		known[key] = strings.TrimSpace(reason)
	}
	return known
}

var passwordRE = regexp.MustCompile(`password=\S+`)

// redact keeps the gateway token out of the test log.
func redact(dsn string) string { return passwordRE.ReplaceAllString(dsn, "password=...") }

func indent(s string) string {
	s = strings.TrimRight(s, "\n")
	if s == "" {
		return ""
	}
	return "    " + strings.ReplaceAll(s, "\n", "\n    ")
}
