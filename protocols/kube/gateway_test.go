//go:build unix

package kube_test

import (
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/tollgate-dev/tollgate/host/audit"
	"github.com/tollgate-dev/tollgate/internal/testenv"
)

// The gateway binary with a kube listener and target from gateway.toml:
// `gateway check` accepts it, `serve --dev` serves the listener with a
// certificate it makes, the target's token comes from a file: secret,
// kubectl lists pods with a dev token, and the audit file holds the row.
// The token never reaches the audit file.
func TestGatewayBinaryKube(t *testing.T) {
	k := testenv.StartKube(t)
	listen, issuer := testenv.FreeAddr(t), testenv.FreeAddr(t)
	cfg := fmt.Sprintf(`
[gateway]
data_dir = "data"
shutdown_grace = "5s"
[dev]
issuer_listen = %q

[[targets]]
name = "cluster"
protocol = "kube"
upstream = %q
ca_file = %q
impersonate = true
[targets.credential]
type = "bearer"
token = "file:%s"

[[listeners]]
name = "kube"
protocol = "kube"
listen = %q
target = "cluster"

[[access]]
name = "agents"
targets = ["cluster"]
methods = ["GET", "LIST", "WATCH"]
paths = ["/namespaces/default", "/nonresource/"]
`, issuer, k.URL, k.CAFile, k.GatewayTokenFile, listen)
	k.Apply(t, `apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: ci-agent-view, namespace: default}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: `+testenv.KubeGatewayRole+`}
subjects: [{apiGroup: rbac.authorization.k8s.io, kind: User, name: ci-agent}]
`)
	dir := t.TempDir()
	if err := os.WriteFile(dir+"/gateway.toml", []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	if out, errOut, code := testenv.RunGateway(t, dir, nil, "check", "--dev", "-c", "gateway.toml"); code != 0 {
		t.Fatalf("gateway check: %s %s", out, errOut)
	}
	gw := testenv.StartGateway(t, testenv.GatewayOptions{Config: cfg, Dev: true, Wait: []string{listen, issuer}})
	tok, errOut, code := gw.Run("token", "-c", "gateway.toml", "--sub", "ci-agent", "--claim", "repository=acme/app")
	if code != 0 {
		t.Fatalf("gateway token: %s", errOut)
	}
	tok = strings.TrimSpace(tok)
	// serve --dev's certificate is its own: kubectl is told to skip the
	// check here only (a real listener has tls_cert).
	kc := k.WriteKubeconfig(t, "gw", "https://"+listen, tok)
	out, errOut, code := k.RunKubectl(kc, nil, "--insecure-skip-tls-verify", "--certificate-authority=", "get", "pods", "-n", "kube-system")
	if code == 0 || !strings.Contains(errOut, "access denied") {
		t.Fatalf("a namespace outside the rules: exit %d\n%s%s", code, out, errOut)
	}
	out, errOut, code = k.RunKubectl(kc, nil, "--insecure-skip-tls-verify", "--certificate-authority=", "get", "pods", "-o", "name")
	if code != 0 {
		t.Fatalf("get pods through the gateway binary: exit %d\n%s%s\n%s", code, out, errOut, gw.Output())
	}
	row := gw.WaitAudit("data/audit.jsonl", "for the pod list", func(r audit.Row) bool {
		return r.Kind == "kube.request" && r.Request["verb"] == "list" && r.Request["namespace"] == "default"
	})
	if row.Subject != "ci-agent" || row.Status != "200" || row.Claims["repository"] != "acme/app" {
		t.Fatalf("row: %+v", row)
	}
	k.WaitAudit(t, func(e testenv.KubeAuditEntry) bool {
		return e.ImpersonatedUser != nil && e.ImpersonatedUser.Username == "ci-agent" && e.Verb == "list"
	})
	b, err := os.ReadFile(gw.Dir + "/data/audit.jsonl")
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(b), k.GatewayToken) || strings.Contains(string(b), tok) {
		t.Fatal("a token in the audit file")
	}
}
