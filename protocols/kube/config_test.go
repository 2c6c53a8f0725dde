package kube_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/tollgate-dev/tollgate/host/config"
)

const kubeConfig = `
[[targets]]
name = "prod"
protocol = "kube"
upstream = "https://10.0.0.1:6443"
ca_file = "/etc/tollgate/prod-ca.crt"
impersonate = true
[targets.credential]
type = "bearer"
token = "env:PROD_KUBE_TOKEN"

[[listeners]]
name = "kube"
protocol = "kube"
listen = "127.0.0.1:8443"
tls_cert = "kube.crt"
tls_key = "kube.key"
target = "prod"

[[access]]
name = "read-default"
targets = ["prod"]
methods = ["GET", "LIST", "WATCH"]
paths = ["/namespaces/default"]
`

// gateway.toml's kube tables decode through the registry: a good one
// parses, and each mistake is a problem at its place.
func TestKubeConfig(t *testing.T) {
	if _, err := config.Parse("gateway.toml", []byte(kubeConfig), t.TempDir()); err != nil {
		t.Fatalf("a good kube config: %v", err)
	}
	for _, tc := range []struct{ name, from, to, want string }{
		{"a plain http upstream", `upstream = "https://10.0.0.1:6443"`, `upstream = "http://10.0.0.1:6443"`, "upstream: must be the API server's https://host:port URL"},
		{"an upstream with a path", `upstream = "https://10.0.0.1:6443"`, `upstream = "https://10.0.0.1:6443/api"`, "upstream: must be"},
		{"a password credential", `type = "bearer"`, `type = "password"`, "credential.type: must be bearer"},
		{"a token written inline", `token = "env:PROD_KUBE_TOKEN"`, `token = "abc"`, "credential.token"},
		{"no target", `target = "prod"`, ``, "target"},
		{"a key without its certificate", `tls_cert = "kube.crt"`, ``, "tls_key: tls_cert and tls_key go together"},
		{"an unknown key", `impersonate = true`, `impersonate_user = "x"`, "impersonate_user"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			src := strings.Replace(kubeConfig, tc.from, tc.to, 1)
			_, err := config.Parse("gateway.toml", []byte(src), t.TempDir())
			var ps config.Problems
			if !errors.As(err, &ps) || !strings.Contains(ps.Error(), tc.want) {
				t.Fatalf("want a problem with %q, got %v", tc.want, err)
			}
			if !strings.Contains(ps.Error(), "gateway.toml:") {
				t.Fatalf("a problem without its place: %v", ps)
			}
		})
	}
}
