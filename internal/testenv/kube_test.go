//go:build unix

package testenv

import (
	"crypto/tls"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
)

// TestKube starts the control plane and checks what the Kubernetes tests
// rely on: the admin, the gateway's two credentials with their role (and
// no more), impersonation, and the audit log that names both users.
func TestKube(t *testing.T) {
	k := StartKube(t)

	if out := k.Admin(t, nil, "get", "namespaces", "-o", "name"); !strings.Contains(out, "namespace/default") {
		t.Fatalf("admin: namespaces: %q", out)
	}
	k.Apply(t, `apiVersion: v1
kind: Pod
metadata:
  name: web
  namespace: default
spec:
  containers:
  - name: c
    image: example.invalid/web
`)

	gw := k.WriteKubeconfig(t, "gateway", k.URL, k.GatewayToken)
	out, errOut, code := k.RunKubectl(gw, nil, "get", "pods", "-o", "name")
	if code != 0 || strings.TrimSpace(out) != "pod/web" {
		t.Fatalf("gateway token: get pods: exit %d, %q %s", code, out, errOut)
	}
	// The role reads; it does not write.
	_, errOut, code = k.RunKubectl(gw, nil, "create", "secret", "generic", "s", "--from-literal=a=b")
	if code == 0 || !strings.Contains(errOut, "forbidden") {
		t.Fatalf("gateway token: create secret: exit %d, %s; want forbidden", code, errOut)
	}
	// A wrong token is refused.
	bad := k.WriteKubeconfig(t, "bad", k.URL, "not-"+k.GatewayToken)
	if _, errOut, code = k.RunKubectl(bad, nil, "get", "pods"); code == 0 || !strings.Contains(errOut, "Unauthorized") {
		t.Fatalf("wrong token: exit %d, %s; want Unauthorized", code, errOut)
	}

	// The client certificate authenticates as the same user.
	pair, err := tls.LoadX509KeyPair(k.GatewayCertFile, k.GatewayKeyFile)
	if err != nil {
		t.Fatal(err)
	}
	c := k.Client()
	c.Transport.(*http.Transport).TLSClientConfig.Certificates = []tls.Certificate{pair}
	resp, err := c.Post(k.URL+"/apis/authentication.k8s.io/v1/selfsubjectreviews", "application/json",
		strings.NewReader(`{"apiVersion":"authentication.k8s.io/v1","kind":"SelfSubjectReview"}`))
	if err != nil {
		t.Fatal(err)
	}
	var review struct {
		Status struct {
			UserInfo struct{ Username string } `json:"userInfo"`
		} `json:"status"`
	}
	err = json.NewDecoder(resp.Body).Decode(&review)
	resp.Body.Close()
	if err != nil || resp.StatusCode != http.StatusCreated || review.Status.UserInfo.Username != KubeGatewayUser {
		t.Fatalf("client certificate: status %d, %+v, %v; want %s", resp.StatusCode, review, err, KubeGatewayUser)
	}

	// Impersonated, the gateway has the principal's rights (none here),
	// and the audit log names both.
	_, errOut, code = k.RunKubectl(gw, nil, "get", "pods", "--as", "repo:acme/app", "--as-group", "ci")
	if code == 0 || !strings.Contains(errOut, `"repo:acme/app" cannot list`) {
		t.Fatalf("impersonated: exit %d, %s; want forbidden for repo:acme/app", code, errOut)
	}
	e := k.WaitAudit(t, func(e KubeAuditEntry) bool {
		return e.ImpersonatedUser != nil && e.ImpersonatedUser.Username == "repo:acme/app" && e.Verb == "list"
	})
	if e.User.Username != KubeGatewayUser || e.ResponseStatus.Code != http.StatusForbidden ||
		len(e.ImpersonatedUser.Groups) == 0 || e.ImpersonatedUser.Groups[0] != "ci" {
		t.Fatalf("audit entry: %+v", e)
	}
}
