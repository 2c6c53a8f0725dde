package main_test

import (
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tollgate-dev/tollgate/internal/testenv"
)

// `gateway reload` reloads the access rules with the plugins and prints
// what changed; a reload that cannot load a plugin changes nothing, the
// rules included, and exits 1 with the reason; only the admin groups may
// reload.
func TestReloadAccessRules(t *testing.T) {
	addrs := map[string]string{}
	for _, k := range []string{"issuer", "echo", "http", "admin"} {
		addrs[k] = testenv.FreeAddr(t)
	}
	dir := t.TempDir()
	os.MkdirAll(filepath.Join(dir, ".tollgate"), 0o700)
	os.WriteFile(filepath.Join(dir, ".tollgate", "demo-token"), []byte("demo-credential-xyz\n"), 0o600)
	guard := testenv.BuildWasm(t, "plugins/guard")
	config := func(access, pluginPath string) string {
		return fmt.Sprintf(`
[gateway]
data_dir = ".tollgate"
[dev]
issuer_listen = %q
echo_listen = %q
echo_token = "file:.tollgate/demo-token"
[[targets]]
name = "demo"
protocol = "http"
upstream = "http://%s"
[targets.credential]
type = "bearer"
token = "file:.tollgate/demo-token"
[[listeners]]
name = "http"
protocol = "http"
listen = %q
[[listeners.routes]]
target = "demo"
path_prefix = "/demo"
%s
[[plugins]]
name = "guard"
path = %q
[admin]
listen = %q
groups = ["operators"]
`, addrs["issuer"], addrs["echo"], addrs["echo"], addrs["http"], access, pluginPath, addrs["admin"])
	}
	readers := `
[[access]]
name = "readers"
issuers = ["dev"]
targets = ["demo"]
methods = ["GET"]
`
	writers := `
[[access]]
name = "writers"
issuers = ["dev"]
targets = ["demo"]
methods = ["POST"]
`
	gw := testenv.StartGateway(t, testenv.GatewayOptions{Config: config(readers, guard), Dir: dir, Dev: true,
		Wait: []string{addrs["issuer"], addrs["echo"], addrs["http"], addrs["admin"]}})
	mint := func(group string) string {
		out, errOut, code := gw.Run("token", "-c", gw.Config, "--sub", "someone", "--group", group)
		if code != 0 {
			t.Fatalf("token: %s", errOut)
		}
		return strings.TrimSpace(out)
	}
	agent, operator := mint("agents"), mint("operators")
	status := func(method string) int {
		req, _ := http.NewRequest(method, "http://"+addrs["http"]+"/demo/x", nil)
		req.Header.Set("Authorization", "Bearer "+agent)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if g, p := status("GET"), status("POST"); g != 200 || p != 403 {
		t.Fatalf("the first rules are not in force: GET %d, POST %d", g, p)
	}
	write := func(s string) {
		if err := os.WriteFile(gw.Config, []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
	}

	write(config(writers, guard))
	if _, errOut, code := gw.Run("reload", "-c", gw.Config, "--token", agent); code == 0 || !strings.Contains(errOut, "403") {
		t.Fatalf("a reload by someone outside the admin groups: exit %d %s", code, errOut)
	}
	if status("GET") != 200 {
		t.Fatal("a refused reload changed the rules")
	}
	out, errOut, code := gw.Run("reload", "-c", gw.Config, "--token", operator)
	if code != 0 || !strings.Contains(out, "access rule writers: added") || !strings.Contains(out, "access rule readers: removed") || !strings.Contains(out, "plugins guard") {
		t.Fatalf("reload: exit %d\n%s%s", code, out, errOut)
	}
	if status("GET") != 403 || status("POST") != 200 {
		t.Fatal("the reloaded rules are not in force")
	}

	// A plugin that does not load: neither the plugins nor the rules change.
	write(config(readers, guard+".missing"))
	_, errOut, code = gw.Run("reload", "-c", gw.Config, "--token", operator)
	if code != 1 || !strings.Contains(errOut, "nothing changed: plugins not loaded") {
		t.Fatalf("a failed reload: exit %d %s", code, errOut)
	}
	if status("GET") != 403 || status("POST") != 200 {
		t.Fatal("a failed reload changed the rules")
	}
	gw.WaitOutput("reload: access rule added", 1)
}
