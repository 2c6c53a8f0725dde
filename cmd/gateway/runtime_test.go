package main_test

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tollgate-dev/tollgate/cmd/gateway/internal/soak"
	"github.com/tollgate-dev/tollgate/internal/testenv"
)

// `gateway serve` applies [gateway] memory_limit to the Go runtime (the
// admin listener's /metrics shows it), and serves the runtime profiles
// only with [admin] pprof = true and only to a token of an admin group.
func TestServeMemoryLimitAndPProf(t *testing.T) {
	for _, pprof := range []bool{false, true} {
		t.Run(fmt.Sprintf("pprof=%t", pprof), func(t *testing.T) {
			addrs := map[string]string{}
			for _, k := range []string{"issuer", "echo", "http", "admin"} {
				addrs[k] = testenv.FreeAddr(t)
			}
			dir := t.TempDir()
			os.MkdirAll(filepath.Join(dir, ".tollgate"), 0o700)
			if err := os.WriteFile(filepath.Join(dir, ".tollgate", "demo-token"), []byte("demo-credential\n"), 0o600); err != nil {
				t.Fatal(err)
			}
			cfg := fmt.Sprintf(`[gateway]
data_dir = ".tollgate"
memory_limit = 268435456

[dev]
issuer_listen = %q
audience = "tollgate"
echo_listen = %q
echo_token = "file:.tollgate/demo-token"

[[targets]]
name = "demo"
protocol = "http"
upstream = "http://%s"

[[listeners]]
name = "http"
protocol = "http"
listen = %q
[[listeners.routes]]
target = "demo"

[[access]]
name = "dev"
issuers = ["dev"]
targets = ["demo"]

[admin]
listen = %q
groups = ["auditors"]
pprof = %t
`, addrs["issuer"], addrs["echo"], addrs["echo"], addrs["http"], addrs["admin"], pprof)
			gw := testenv.StartGateway(t, testenv.GatewayOptions{Config: cfg, Dir: dir, Dev: true,
				Wait: []string{addrs["issuer"], addrs["http"], addrs["admin"]}})
			m, err := soak.Metrics(addrs["admin"])
			if err != nil {
				t.Fatal(err)
			}
			if got := m["tollgate_go_memory_limit_bytes"]; got != 256<<20 {
				t.Errorf("runtime memory limit %v, want 268435456 (memory_limit)", got)
			}
			token := func(groups ...string) string {
				args := []string{"token", "-c", gw.Config, "--sub", "someone@example.com"}
				for _, g := range groups {
					args = append(args, "--group", g)
				}
				out, errOut, code := gw.Run(args...)
				if code != 0 {
					t.Fatalf("token: %s", errOut)
				}
				return strings.TrimSpace(out)
			}
			heap := func(tok string) (int, []byte) {
				req, _ := http.NewRequest("GET", "http://"+addrs["admin"]+"/debug/pprof/heap", nil)
				if tok != "" {
					req.Header.Set("Authorization", "Bearer "+tok)
				}
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				defer resp.Body.Close()
				b, _ := io.ReadAll(resp.Body)
				return resp.StatusCode, b
			}
			auditor := token("auditors")
			if !pprof {
				if code, _ := heap(auditor); code != http.StatusNotFound {
					t.Fatalf("pprof off: heap profile answered %d, want 404", code)
				}
				return
			}
			for _, tc := range []struct {
				tok  string
				want int
			}{{"", 401}, {token("ci"), 403}, {auditor, 200}} {
				code, body := heap(tc.tok)
				if code != tc.want {
					t.Errorf("heap profile: %d, want %d", code, tc.want)
				}
				if gz := len(body) > 2 && body[0] == 0x1f && body[1] == 0x8b; gz != (tc.want == 200) {
					t.Errorf("heap profile with status %d: profile served = %t", code, gz)
				}
			}
			// The log reaches the test through a pipe: wait for the line.
			gw.WaitOutput("subject=someone@example.com", 1)
		})
	}
}
