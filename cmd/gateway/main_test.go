package main_test

import (
	"crypto/ed25519"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tollgate-dev/tollgate/host/audit"
	"github.com/tollgate-dev/tollgate/host/audit/embedded"
	"github.com/tollgate-dev/tollgate/internal/testenv"
)

const valid = `
[[targets]]
name = "api"
protocol = "http"
upstream = "http://127.0.0.1:9000"
[targets.credential]
type = "bearer"
token = "env:CHECK_TEST_TOKEN"

[[listeners]]
name = "http"
protocol = "http"
listen = "127.0.0.1:8080"
[[listeners.routes]]
target = "api"
`

func writeConfig(t *testing.T, src string) (dir string) {
	t.Helper()
	dir = t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "gateway.toml"), []byte(src), 0o600); err != nil {
		t.Fatal(err)
	}
	return dir
}

func TestCheck(t *testing.T) {
	for _, tc := range []struct {
		name   string
		src    string
		env    []string
		code   int
		stdout string
		stderr string // the start of one line of stderr
	}{
		{"valid", valid, []string{"CHECK_TEST_TOKEN=x"}, 0, "ok: 1 listeners, 1 targets, 0 access rules, 0 plugins\naudit: store file, durability spooled", ""},
		{"unknown key", strings.Replace(valid, `listen = "127`, `  listn = "127`, 1), []string{"CHECK_TEST_TOKEN=x"}, 1, "",
			`gateway.toml:13:3: listeners[0].listn: unknown key (did you mean "listeners.listen"?)`},
		{"missing env secret", valid, nil, 1, "",
			"gateway.toml:8:1: targets[0].credential.token: environment variable CHECK_TEST_TOKEN is not set"},
		{"malformed", "[gateway\nid = 1\n", nil, 1, "", "gateway.toml:1:9: expected '.' or ']'"},
		// A size or duration means what it says: a zero out of its range
		// is refused naming the key, a zero in range is honoured.
		{"zero size refused", strings.Replace(valid, `listen = "127.0.0.1:8080"`, "listen = \"127.0.0.1:8080\"\nmax_header_bytes = 0", 1),
			[]string{"CHECK_TEST_TOKEN=x"}, 1, "", "gateway.toml:14:1: listeners[0].max_header_bytes: must be between 1024 and 16777216 (16 MiB)"},
		{"duration over its range", valid + "\n[audit]\nbatch_age = \"2m\"\n", []string{"CHECK_TEST_TOKEN=x"}, 1, "",
			"gateway.toml:18:1: audit.batch_age: must be between 1ms and 1m"},
		{"zero in range honoured", valid + "\n[gateway]\nshutdown_grace = \"0s\"\n", []string{"CHECK_TEST_TOKEN=x"}, 0,
			"ok: 1 listeners, 1 targets, 0 access rules, 0 plugins\naudit: store file, durability spooled", ""},
		// Durability: stated, and per target where it differs; synced
		// without a spool is refused at its position.
		{"durability per target", strings.Replace(valid, "upstream = \"http://127.0.0.1:9000\"", "upstream = \"http://127.0.0.1:9000\"\ndurability = \"synced\"", 1) +
			"\n[audit]\nstore = \"clickhouse\"\n[audit.clickhouse]\naddrs = [\"127.0.0.1:9000\"]\n", []string{"CHECK_TEST_TOKEN=x"}, 0,
			"ok: 1 listeners, 1 targets, 0 access rules, 0 plugins\naudit: store clickhouse, durability spooled (targets: " + "api synced)", ""},
		{"synced without a spool", valid + "\n[audit]\ndurability = \"synced\"\n", []string{"CHECK_TEST_TOKEN=x"}, 1, "",
			"gateway.toml:18:1: audit.durability: synced needs the spool"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := writeConfig(t, tc.src)
			env := append([]string{"CHECK_TEST_TOKEN="}, tc.env...)
			out, errOut, code := testenv.RunGateway(t, dir, env, "check", "-c", "gateway.toml")
			if code != tc.code {
				t.Fatalf("exit %d, want %d; stderr:\n%s", code, tc.code, errOut)
			}
			if strings.TrimSpace(out) != tc.stdout {
				t.Errorf("stdout = %q, want %q", out, tc.stdout)
			}
			if tc.stderr != "" && !strings.HasPrefix(errOut, tc.stderr) && !strings.Contains(errOut, "\n"+tc.stderr) {
				t.Errorf("stderr = %q, want it to start with %q", errOut, tc.stderr)
			}
		})
	}
}

// pgListenerConfig is a postgres target and a listener, without TLS.
const pgListenerConfig = `
[[targets]]
name = "db"
protocol = "postgres"
upstream = "127.0.0.1:5432"
sslmode = "disable"
[targets.credential]
type = "password"
username = "agent"
password = "env:CHECK_TEST_TOKEN"

[[listeners]]
name = "pg"
protocol = "postgres"
listen = "127.0.0.1:0"
`

// A postgres listener without tls_cert serves only under `serve --dev`,
// which makes a self-signed certificate: check says so unless given --dev,
// at the listener's position, and serve refuses with the same words before
// it starts anything.
func TestCheckPostgresListenerWithoutTLS(t *testing.T) {
	const pg = pgListenerConfig
	const problem = `gateway.toml:12:1: listeners[0]: postgres listener "pg" needs tls_cert and tls_key (clients send their token as the password): set both, or run with --dev for local trials, which makes a self-signed certificate`
	const dev = "\n[dev]\nissuer_listen = \"127.0.0.1:1\"\n"
	env := []string{"CHECK_TEST_TOKEN=x"}
	for _, tc := range []struct {
		name, src string
		args      []string
		code      int
		stderr    string // one line of stderr
	}{
		{"no tls", pg, nil, 1, problem},
		{"no tls, --dev", pg + dev, []string{"--dev"}, 0, ""},
		{"--dev without [dev]", pg, []string{"--dev"}, 1, "gateway.toml:1:1: --dev needs a [dev] table in the config"},
		{"tls", strings.Replace(pg, `listen = "127.0.0.1:0"`, "listen = \"127.0.0.1:0\"\ntls_cert = \"gw.crt\"\ntls_key = \"gw.key\"", 1), nil, 0, ""},
		{"loopback plaintext", pg + "allow_plaintext = true\n", nil, 0, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := writeConfig(t, tc.src)
			out, errOut, code := testenv.RunGateway(t, dir, env, append([]string{"check", "-c", "gateway.toml"}, tc.args...)...)
			if code != tc.code {
				t.Fatalf("exit %d, want %d; stdout %q, stderr:\n%s", code, tc.code, out, errOut)
			}
			if tc.stderr != "" && !slices.Contains(strings.Split(errOut, "\n"), tc.stderr) {
				t.Errorf("stderr = %q, want the line %q", errOut, tc.stderr)
			}
			if code == 0 && !strings.HasPrefix(out, "ok: 1 listeners, 1 targets") {
				t.Errorf("stdout = %q", out)
			}
		})
	}
	dir := writeConfig(t, pg)
	_, errOut, code := testenv.RunGateway(t, dir, env, "serve", "-c", "gateway.toml")
	if code != 1 || !strings.Contains(errOut, problem) {
		t.Fatalf("serve without --dev: exit %d, stderr %q", code, errOut)
	}
}

// The documented example of every key must stay valid.
func TestFullExamplePassesCheck(t *testing.T) {
	src, err := os.ReadFile(filepath.Join(testenv.ModuleRoot(t), "examples", "gateway.full.toml"))
	if err != nil {
		t.Fatal(err)
	}
	dir := writeConfig(t, string(src))
	if err := os.MkdirAll(filepath.Join(dir, "secrets"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "secrets", "billing-password"), []byte("pw\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, priv, _ := ed25519.GenerateKey(nil)
	der, _ := x509.MarshalPKCS8PrivateKey(priv)
	os.MkdirAll(filepath.Join(dir, "keys"), 0o700)
	os.WriteFile(filepath.Join(dir, "keys", "audit-signing.pem"), pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600)
	// check loads the plugins it names, where `make plugins` puts them.
	os.MkdirAll(filepath.Join(dir, "bin", "plugins"), 0o755)
	for _, p := range []string{"guard", "mask", "approve"} {
		b, err := os.ReadFile(testenv.BuildWasm(t, "plugins/"+p))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "bin", "plugins", p+".wasm"), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	env := []string{"TOLLGATE_DEMO_TOKEN=d", "ORDERS_API_TOKEN=o", "METRICS_API_KEY=m", "CLICKHOUSE_PASSWORD=c", "SLACK_DBA_WEBHOOK=https://hooks.slack.test/T0/B0/x", "PROD_DB_PASSWORD=p", "PROD_WEB_SSH_KEY=k", "FORGE_TOKEN=f"}
	out, errOut, code := testenv.RunGateway(t, dir, env, "check", "-c", "gateway.toml")
	if code != 0 {
		t.Fatalf("examples/gateway.full.toml fails check:\n%s", errOut)
	}
	if !strings.HasPrefix(out, "ok: 3 listeners, 6 targets, 2 access rules") {
		t.Errorf("stdout = %q", out)
	}
}

func TestTokenNeedsDevIssuer(t *testing.T) {
	dir := writeConfig(t, valid)
	_, errOut, code := testenv.RunGateway(t, dir, nil, "token", "--sub", "x")
	if code != 1 || !strings.Contains(errOut, "no [dev] table") {
		t.Fatalf("exit %d, stderr %q", code, errOut)
	}
	dir = writeConfig(t, valid+"\n[dev]\nissuer_listen = \"127.0.0.1:1\"\n")
	out, errOut, code := testenv.RunGateway(t, dir, nil, "token", "--sub", "x", "--claim", "repository=acme/app", "--group", "g")
	if code != 0 || strings.Count(strings.TrimSpace(out), ".") != 2 {
		t.Fatalf("exit %d, out %q, stderr %q", code, out, errOut)
	}
	if _, err := os.Stat(filepath.Join(dir, ".tollgate", "dev", "issuer-key.pem")); err != nil {
		t.Fatalf("the dev key must be kept under the data dir: %v", err)
	}
	_, _, code = testenv.RunGateway(t, dir, nil, "token")
	if code != 2 {
		t.Fatalf("token without --sub: exit %d, want 2", code)
	}
	_, errOut, code = testenv.RunGateway(t, dir, nil, "token", "--sub", "x", "--claim", "iss=evil")
	if code != 2 || !strings.Contains(errOut, "set by the issuer") {
		t.Fatalf("overriding iss: exit %d, %q", code, errOut)
	}
}

func TestHelpOnEverySubcommand(t *testing.T) {
	dir := t.TempDir()
	for _, cmd := range []string{"serve", "check", "token", "plugin new", "plugin build", "plugin test", "plugin sdk", "audit sql", "audit query", "replay"} {
		_, errOut, code := testenv.RunGateway(t, dir, nil, append(strings.Fields(cmd), "--help")...)
		if code != 0 || !strings.Contains(errOut, "Usage: gateway "+cmd) {
			t.Errorf("%s --help: exit %d, %q", cmd, code, errOut)
		}
	}
	out, _, code := testenv.RunGateway(t, dir, nil, "--help")
	if code != 0 || !strings.Contains(out, "Commands:") {
		t.Errorf("--help: exit %d, %q", code, out)
	}
	out, _, code = testenv.RunGateway(t, dir, nil, "version")
	if code != 0 || !strings.HasPrefix(out, "gateway ") {
		t.Errorf("version: %d %q", code, out)
	}
	_, _, code = testenv.RunGateway(t, dir, nil, "frobnicate")
	if code != 2 {
		t.Errorf("unknown command: exit %d, want 2", code)
	}
}

func TestServeFailsClearlyOnAMissingPlugin(t *testing.T) {
	dir := writeConfig(t, valid+"\n[[plugins]]\nname = \"mask\"\npath = \"mask.wasm\"\n")
	_, errOut, code := testenv.RunGateway(t, dir, []string{"CHECK_TEST_TOKEN=x"}, "serve", "-c", "gateway.toml")
	if code != 1 || !strings.Contains(errOut, "plugin mask:") || !strings.Contains(errOut, "mask.wasm") {
		t.Fatalf("exit %d, stderr %q", code, errOut)
	}
}

// shippedConfig is the shipped gateway.toml with its fixed ports moved to
// free ones (addrs maps each fixed port to its replacement), in a new
// directory holding the demo credential and an Ed25519 signing key,
// without the plugins and the demo database (which quickStartConfig
// keeps): these tests are about the HTTP demo and the audit trail.
func shippedConfig(t *testing.T) (cfg, dir string, addrs map[string]string) {
	t.Helper()
	cfg, dir, addrs = movedConfig(t)
	i, j := strings.Index(cfg, "\n[[plugins]]\n"), strings.Index(cfg, "\n[admin]\n")
	if i < 0 || j < i || !strings.Contains(cfg, "\npostgres = \"demo-db\"\n") {
		t.Fatal("gateway.toml no longer has [[plugins]] before [admin] and [dev] postgres; update this test")
	}
	cfg = strings.Replace(cfg[:i]+cfg[j:], "\npostgres = \"demo-db\"\n", "\n", 1)
	// The target stays (unused): its credential must resolve.
	if err := os.WriteFile(filepath.Join(dir, ".tollgate", "demo-db-password"), []byte("unused\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return cfg, dir, addrs
}

// quickStartConfig is the whole shipped gateway.toml, its ports moved,
// its plugins built from the tree, as `make run` builds them.
func quickStartConfig(t *testing.T) (cfg, dir string, addrs map[string]string) {
	t.Helper()
	cfg, dir, addrs = movedConfig(t)
	for _, p := range []string{"guard", "approve", "mask"} {
		shipped := fmt.Sprintf("path = \"bin/plugins/%s.wasm\"", p)
		if !strings.Contains(cfg, shipped) {
			t.Fatalf("gateway.toml no longer has %s; update this test", shipped)
		}
		cfg = strings.Replace(cfg, shipped, fmt.Sprintf("path = %q", testenv.BuildWasm(t, "plugins/"+p)), 1)
	}
	return cfg, dir, addrs
}

// movedConfig is the shipped gateway.toml with its fixed ports moved, in
// a directory prepared like `make run`'s: .tollgate/ searchable, so that
// the demo database's server (run as the postgres user when the tests
// run as root) reaches it.
func movedConfig(t *testing.T) (cfg, dir string, addrs map[string]string) {
	t.Helper()
	src, err := os.ReadFile(filepath.Join(testenv.ModuleRoot(t), "gateway.toml"))
	if err != nil {
		t.Fatal(err)
	}
	cfg = string(src)
	addrs = map[string]string{}
	for _, fixed := range []string{"127.0.0.1:8079", "127.0.0.1:8080", "127.0.0.1:8081", "127.0.0.1:8090", "127.0.0.1:6432", "127.0.0.1:6433"} {
		if !strings.Contains(cfg, fixed) {
			t.Fatalf("gateway.toml no longer uses %s; update this test", fixed)
		}
		addrs[fixed] = testenv.FreeAddr(t)
		cfg = strings.ReplaceAll(cfg, fixed, addrs[fixed])
	}
	dir = t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, ".tollgate"), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, d := range []string{filepath.Dir(dir), dir} {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(dir, ".tollgate", "demo-token"), []byte("demo-credential-xyz\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, priv, _ := ed25519.GenerateKey(nil)
	der, _ := x509.MarshalPKCS8PrivateKey(priv)
	os.WriteFile(filepath.Join(dir, "audit-key.pem"), pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600)
	cfg = strings.Replace(cfg, "[audit]\n", "[audit]\nsigning_key = \"file:audit-key.pem\"\n", 1)
	return cfg, dir, addrs
}

// quickStartRequest is the README's first request: a token from `gateway
// token`, then curl through the gateway to the demo upstream.
func quickStartRequest(t *testing.T, gw *testenv.Gateway, listen string) {
	t.Helper()
	tok, errOut, code := gw.Run("token", "-c", gw.Config, "--sub", "you@example.com", "--claim", "repository=acme/app")
	if code != 0 {
		t.Fatalf("token: %s", errOut)
	}
	curl := testenv.RequireCommand(t, "curl")
	out, err := exec.Command(curl, "-s", "-H", "Authorization: Bearer "+strings.TrimSpace(tok),
		"http://"+listen+"/demo/hello").CombinedOutput()
	if err != nil {
		t.Fatalf("curl: %v %s", err, out)
	}
	var echo struct {
		Service string            `json:"service"`
		Path    string            `json:"path"`
		Headers map[string]string `json:"headers"`
	}
	if err := json.Unmarshal(out, &echo); err != nil || echo.Service != "tollgate demo upstream" || echo.Path != "/hello" {
		t.Fatalf("demo upstream answer: %s", out)
	}
	if strings.Contains(string(out), "demo-credential-xyz") || strings.Contains(string(out), strings.TrimSpace(tok)[:30]) {
		t.Fatal("the demo answer shows a credential")
	}
}

// The quick start as the README tells it, on the shipped gateway.toml
// (embedded audit store, admin API) with only its ports moved: a request
// through the gateway, then the audit trail read through the running
// gateway's admin API with an auditor's token, and verified after a stop
// by opening the store directly.
func TestShippedConfigQuickStart(t *testing.T) {
	cfg, dir, addrs := shippedConfig(t)
	env := []string{embedded.EnvLibPath + "=" + testenv.ChDBLib(t)}
	gw := testenv.StartGateway(t, testenv.GatewayOptions{Config: cfg, Dir: dir, Dev: true, Env: env,
		Wait: []string{addrs["127.0.0.1:8079"], addrs["127.0.0.1:8080"], addrs["127.0.0.1:8081"], addrs["127.0.0.1:8090"]}})
	// The next steps are printed after "gateway ready", and reach the
	// test through a pipe: wait for them (WaitOutput fails the test if
	// they never come).
	gw.WaitOutput("Try, in another terminal", 1)
	gw.WaitOutput("TOLLGATE_TOKEN", 1)
	quickStartRequest(t, gw, addrs["127.0.0.1:8080"])

	// Without a token the CLI says what to do; with an auditor's token it
	// reads the store the gateway owns.
	if _, errOut, code := gw.Run("audit", "sessions", "-c", gw.Config); code == 0 || !strings.Contains(errOut, "TOLLGATE_TOKEN") {
		t.Fatalf("audit sessions without a token: exit %d %s", code, errOut)
	}
	tok, errOut, code := gw.Run("token", "-c", gw.Config, "--sub", "auditor@example.com", "--group", "auditors")
	if code != 0 {
		t.Fatalf("token: %s", errOut)
	}
	gw.Env = append(gw.Env, "TOLLGATE_TOKEN="+strings.TrimSpace(tok))
	const q = "SELECT kind, subject, claim_values[indexOf(claim_keys, 'repository')], access_rule, status FROM events WHERE kind = 'http.request'"
	var out string
	for deadline := time.Now().Add(20 * time.Second); ; {
		out, errOut, code = gw.Run("audit", "sql", "-c", gw.Config, "--format", "tsv", q)
		if code == 0 && strings.Contains(out, "http.request\tyou@example.com\tacme/app\tdev-tokens-reach-demo\t200") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("audit sql: exit %d\n%s%s", code, out, errOut)
		}
		time.Sleep(200 * time.Millisecond)
	}
	if out, errOut, code := gw.Run("audit", "sql", "-c", gw.Config, "DROP TABLE events"); code == 0 {
		t.Fatalf("audit sql ran a DROP: %s%s", out, errOut)
	}

	// After a graceful stop every session is closed and signed, and verify
	// (now opening the store itself) says so.
	if err := gw.Stop(); err != nil {
		t.Fatal(err)
	}
	out, errOut, code = gw.Run("audit", "verify", "-c", gw.Config)
	if code != 0 || !strings.Contains(out, "\tcomplete\t") || strings.Contains(out, "\topen\t") {
		t.Fatalf("audit verify: exit %d\n%s%s", code, out, errOut)
	}
	checkVerifySince(t, gw, out)
}

// checkVerifySince: --since 1h checks the same sessions as no limit, a
// time to come checks none, and a malformed value is refused.
func checkVerifySince(t *testing.T, gw *testenv.Gateway, all string) {
	t.Helper()
	if out, errOut, code := gw.Run("audit", "verify", "-c", gw.Config, "--since", "1h"); code != 0 || out != all {
		t.Errorf("verify --since 1h: exit %d\n%s%s\nwant\n%s", code, out, errOut, all)
	}
	if out, errOut, code := gw.Run("audit", "verify", "-c", gw.Config, "--since", "2099-01-01T00:00:00Z"); code != 0 || out != "" {
		t.Errorf("verify --since a future time: exit %d\n%s%s", code, out, errOut)
	}
	if _, errOut, code := gw.Run("audit", "verify", "-c", gw.Config, "--since", "yesterday"); code == 0 || !strings.Contains(errOut, "RFC 3339") {
		t.Errorf("verify --since yesterday: exit %d %s", code, errOut)
	}
}

// The same quick start on the file store (JSON lines), whose rows a test
// can edit: verify catches a forged signature and an edited request.
func TestFileStoreVerifyCatchesTampering(t *testing.T) {
	cfg, dir, addrs := shippedConfig(t)
	i := strings.Index(cfg, "[audit]\n")
	cfg = cfg[:i] + "[audit]\nsigning_key = \"file:audit-key.pem\"\nstore = \"file\"\npath = \"audit.jsonl\"\n"
	gw := testenv.StartGateway(t, testenv.GatewayOptions{Config: cfg, Dir: dir, Dev: true,
		Wait: []string{addrs["127.0.0.1:8079"], addrs["127.0.0.1:8080"], addrs["127.0.0.1:8081"]}})
	quickStartRequest(t, gw, addrs["127.0.0.1:8080"])
	gw.WaitAudit(".tollgate/audit.jsonl", "for the quick start request", func(r audit.Row) bool {
		return r.Kind == "http.request" && r.Status == "200" && r.Subject == "you@example.com" &&
			r.Claims["repository"] == "acme/app" && r.AccessRule == "dev-tokens-reach-demo"
	})
	if err := gw.Stop(); err != nil {
		t.Fatal(err)
	}
	out, errOut, code := gw.Run("audit", "verify", "-c", gw.Config)
	if code != 0 || !strings.Contains(out, "\tcomplete\t") || strings.Contains(out, "\topen\t") {
		t.Fatalf("audit verify: exit %d\n%s%s", code, out, errOut)
	}
	checkVerifySince(t, gw, out)
	trail := filepath.Join(dir, ".tollgate", "audit.jsonl")
	b, _ := os.ReadFile(trail)
	if !strings.Contains(string(b), `"signature":"`) {
		t.Fatal("close rows are not signed")
	}
	// A forged signature is caught.
	forged := regexp.MustCompile(`"signature":"[0-9a-f]{4}`).ReplaceAllString(string(b), `"signature":"0000`)
	os.WriteFile(trail, []byte(forged), 0o600)
	out, _, code = gw.Run("audit", "verify", "-c", gw.Config)
	if code != 1 || !strings.Contains(out, "\tbad-signature\t") {
		t.Fatalf("verify after forging a signature: exit %d\n%s", code, out)
	}
	os.WriteFile(trail, []byte(strings.Replace(string(b), `"path":"/hello"`, `"path":"/innocent"`, 1)), 0o600)
	out, _, code = gw.Run("audit", "verify", "-c", gw.Config)
	if code != 1 || !strings.Contains(out, "\tedited\t") {
		t.Fatalf("verify after an edit: exit %d\n%s", code, out)
	}
}

// A plugin author's loop: scaffold, build, test with an event.
func TestPluginTooling(t *testing.T) {
	dir := t.TempDir()
	out, errOut, code := testenv.RunGateway(t, dir, nil, "plugin", "new", "blocker", "--dir", dir)
	if code != 0 || !strings.Contains(out, "created") {
		t.Fatalf("plugin new: %d %s", code, errOut)
	}
	// The scaffold is a module of its own, with the SDK beside it
	// (TestPluginScaffoldOutsideTheRepository runs its own test too).
	env := []string{"GOFLAGS=-mod=mod"}
	pdir := filepath.Join(dir, "blocker")

	out, errOut, code = testenv.RunGateway(t, pdir, env, "plugin", "build", ".")
	if code != 0 || !strings.HasSuffix(strings.TrimSpace(out), "blocker.wasm") {
		t.Fatalf("plugin build: %d %s %s", code, out, errOut)
	}
	out, errOut, code = testenv.RunGateway(t, pdir, env, "plugin", "test", "blocker.wasm", "--event", "event.json", "--config", "config.toml")
	if code != 0 {
		t.Fatalf("plugin test: %d %s", code, errOut)
	}
	var r struct {
		Action      string            `json:"action"`
		Reason      string            `json:"reason"`
		Annotations map[string]string `json:"annotations"`
	}
	if err := json.Unmarshal([]byte(out), &r); err != nil || r.Action != "deny" || r.Annotations["blocker.blocked"] != "/admin" {
		t.Fatalf("plugin test printed %s", out)
	}
	// Without the config nothing is blocked.
	out, _, _ = testenv.RunGateway(t, pdir, env, "plugin", "test", "blocker.wasm", "--event", "event.json")
	if !strings.Contains(out, `"action": "allow"`) {
		t.Fatalf("without config: %s", out)
	}
	if _, errOut, code := testenv.RunGateway(t, pdir, env, "plugin", "new", "blocker", "--dir", dir); code == 0 || !strings.Contains(errOut, "already exists") {
		t.Fatalf("plugin new over an existing plugin: %d %s", code, errOut)
	}
}

// `plugin test` of a plugin that crashes prints its result with the
// failure and exits non-zero, naming the plugin: an author's CI fails.
func TestPluginTestCrash(t *testing.T) {
	dir := t.TempDir()
	wasm := filepath.Join(dir, "faulty.wasm")
	if err := os.WriteFile(wasm, testenv.WasmBytes(t, "host/plugin/testdata/guests/faulty"), 0o644); err != nil {
		t.Fatal(err)
	}
	ev := filepath.Join(dir, "event.json")
	os.WriteFile(ev, []byte(`{"kind": "http.request", "fields": {"method": "GET", "path": "/panic"}}`), 0o644)
	out, errOut, code := testenv.RunGateway(t, dir, nil, "plugin", "test", wasm, "--event", ev)
	if code == 0 || !strings.Contains(errOut, "plugin faulty.wasm: the plugin crashed: panic: the plugin author's bug") {
		t.Fatalf("plugin test of a crash: exit %d\nstdout: %s\nstderr: %s", code, out, errOut)
	}
	if !strings.Contains(out, `"action": "error"`) || !strings.Contains(out, `"failure": "panic: the plugin author's bug"`) {
		t.Fatalf("plugin test printed %s", out)
	}
}

// [dev] postgres must name a postgres target the demo database can be
// made for: a password credential, a loopback upstream no listener takes.
func TestCheckDevPostgres(t *testing.T) {
	pg := "\n[dev]\nissuer_listen = \"127.0.0.1:1\"\npostgres = \"db\"\n" +
		strings.Replace(pgListenerConfig, `listen = "127.0.0.1:0"`, `listen = "127.0.0.1:6432"`, 1)
	for _, tc := range []struct {
		name, old, new string
		problem        string // "" for none
	}{
		{"valid", "", "", ""},
		{"no such target", `postgres = "db"`, `postgres = "nope"`, `dev.postgres: no target named "nope"`},
		{"remote upstream", `upstream = "127.0.0.1:5432"`, `upstream = "db.example.com:5432"`, "must be a loopback IP address and port"},
		{"no password", `password = "env:CHECK_TEST_TOKEN"`, "", "needs a password credential with username and password"},
		{"a listener on its port", `listen = "127.0.0.1:6432"`, `listen = "127.0.0.1:5432"`, "address 127.0.0.1:5432 is already used by dev.postgres"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			src := pg
			if tc.old != "" {
				src = strings.Replace(pg, tc.old, tc.new, 1)
			}
			dir := writeConfig(t, src)
			out, errOut, code := testenv.RunGateway(t, dir, []string{"CHECK_TEST_TOKEN=x"}, "check", "--dev", "-c", "gateway.toml")
			if tc.problem == "" {
				if code != 0 {
					t.Fatalf("exit %d: %s%s", code, out, errOut)
				}
				return
			}
			if code != 1 || !strings.Contains(errOut, tc.problem) {
				t.Fatalf("exit %d, stderr %q, want %q", code, errOut, tc.problem)
			}
		})
	}
}
