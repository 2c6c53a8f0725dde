//go:build unix

package kube_test

import (
	"bufio"
	"context"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"

	"github.com/tollgate-dev/tollgate/host/access"
	"github.com/tollgate-dev/tollgate/host/audit"
	"github.com/tollgate-dev/tollgate/host/config"
	"github.com/tollgate-dev/tollgate/host/event"
	"github.com/tollgate-dev/tollgate/host/gate"
	"github.com/tollgate-dev/tollgate/host/identity"
	"github.com/tollgate-dev/tollgate/host/plugin"
	"github.com/tollgate-dev/tollgate/internal/testenv"
	"github.com/tollgate-dev/tollgate/protocols/kube"
)

// guard is a chain written in Go: it refuses any request for the pod
// named "protected", whatever the agent's access rules say.
type guard struct{}

func (guard) Process(_ context.Context, ev *event.Event) (event.Verdict, error) {
	if ev.Kind == kube.KindRequest && ev.Fields["name"] == "protected" {
		return event.Verdict{Action: event.Deny, Plugin: "guard", Reason: "the protected pod is off limits"}, nil
	}
	return event.Verdict{Action: event.Allow}, nil
}

type env struct {
	k   *testenv.Kube
	iss *identity.DevIssuer
	rec *testenv.Recorder
}

func startEnv(t *testing.T) *env {
	t.Helper()
	k := testenv.StartKube(t)
	k.Apply(t, `apiVersion: v1
kind: Namespace
metadata:
  name: other
---
apiVersion: v1
kind: Pod
metadata: {name: web, namespace: default}
spec: {containers: [{name: c, image: example.invalid/web}]}
---
apiVersion: v1
kind: Pod
metadata: {name: protected, namespace: default}
spec: {containers: [{name: c, image: example.invalid/web}]}
---
apiVersion: v1
kind: Pod
metadata: {name: db, namespace: other}
spec: {containers: [{name: c, image: example.invalid/db}]}
`)
	issLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	iss, err := identity.NewDevIssuer(&config.Dev{IssuerListen: issLn.Addr().String(), Audience: "tollgate"}, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	issSrv := &http.Server{Handler: iss.Handler()}
	go issSrv.Serve(issLn)
	t.Cleanup(func() { issSrv.Close() })
	return &env{k: k, iss: iss, rec: &testenv.Recorder{}}
}

// listen starts a gateway listener in front of the cluster: agents may
// read in namespace default and discover the API, nothing else.
func (e *env) listen(t *testing.T, name string, impersonate bool) string {
	t.Helper()
	cert, key := e.k.IssueServingCert(t, name)
	l, err := kube.New(kube.Options{
		Name: name, Listen: "127.0.0.1:0", TLSCert: cert, TLSKey: key,
		Target: kube.TargetOptions{Name: "cluster", Upstream: e.k.URL, CAPEM: e.k.CAPEM, Token: e.k.GatewayToken, Impersonate: impersonate},
	}, gate.Deps{
		GatewayID: "test",
		Auth:      identity.NewVerifier([]config.Issuer{e.iss.IssuerConfig()}, 10, identity.Options{}),
		Policy: access.New([]config.Rule{{Name: "agents-read-default", Targets: []string{"cluster"}, Groups: []string{"agents"},
			Methods: []string{"GET", "LIST", "WATCH"}, Paths: []string{"/namespaces/default", "/nonresource/"}}}),
		Chain:    plugin.NewReloadable(guard{}, nil),
		Recorder: e.rec,
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := l.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Shutdown(context.Background()) })
	return "https://" + l.Addr().String()
}

func (e *env) token(t *testing.T, o identity.MintOptions) string {
	t.Helper()
	tok, err := e.iss.Mint(o)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

const agent = "repo:acme/app:ref:refs/heads/main"

// TestKubectlGetPods: kubectl, with a kubeconfig whose user holds the
// agent's OIDC token, lists pods through the gateway; the row names the
// principal and the resolved request; the access rules and the chain
// refuse what they must, each with kubectl's own error and a row.
func TestKubectlGetPods(t *testing.T) {
	e := startEnv(t)
	url := e.listen(t, "kube", false)
	tok := e.token(t, identity.MintOptions{Subject: agent, Groups: []string{"agents"}, Claims: map[string]any{"repository": "acme/app"}})
	kc := e.k.WriteKubeconfig(t, "agent", url, tok)

	out, errOut, code := e.k.RunKubectl(kc, nil, "get", "pods", "-o", "name")
	if code != 0 || !strings.Contains(out, "pod/web") || strings.Contains(out, "pod/db") {
		t.Fatalf("get pods: exit %d\n%s%s", code, out, errOut)
	}
	r := e.rec.Wait(t, "for the pod list", func(r audit.Row) bool {
		return r.Kind == kube.KindRequest && r.Request["verb"] == "list" && r.Request["resource"] == "pods"
	})
	if r.Subject != agent || r.Request["namespace"] != "default" || r.Status != "200" || r.Verdict != "allow" ||
		r.AccessRule != "agents-read-default" || r.ResponseBytes == 0 || r.Target != "cluster" {
		t.Fatalf("row: %+v", r)
	}
	if strings.Contains(r.Request["path"]+r.Request["query"], tok) {
		t.Fatalf("the agent's token in a row: %+v", r)
	}
	e.rec.Wait(t, "session.open", func(r audit.Row) bool { return r.Kind == gate.KindSessionOpen && r.Subject == agent })

	// Another namespace: the access rules refuse it before the cluster
	// sees it.
	_, errOut, code = e.k.RunKubectl(kc, nil, "get", "pods", "-n", "other")
	if code == 0 || !strings.Contains(errOut, "Forbidden") || !strings.Contains(errOut, "access denied") {
		t.Fatalf("get pods -n other: exit %d, %s; want the gateway's access denied", code, errOut)
	}
	e.rec.Wait(t, "for the refused namespace", func(r audit.Row) bool {
		return r.Kind == kube.KindRequest && r.Request["namespace"] == "other" && r.Verdict == "deny" && r.Status == "403"
	})
	// All namespaces at once is a cluster-wide list, not default's.
	if _, errOut, code = e.k.RunKubectl(kc, nil, "get", "pods", "-A"); code == 0 || !strings.Contains(errOut, "access denied") {
		t.Fatalf("get pods -A: exit %d, %s; want access denied", code, errOut)
	}
	// A write is no verb of the rule.
	if _, errOut, code = e.k.RunKubectl(kc, nil, "delete", "pod", "web"); code == 0 || !strings.Contains(errOut, "access denied") {
		t.Fatalf("delete pod: exit %d, %s; want access denied", code, errOut)
	}
	// The chain refuses what the rules allow.
	_, errOut, code = e.k.RunKubectl(kc, nil, "get", "pod", "protected")
	if code == 0 || !strings.Contains(errOut, "the protected pod is off limits") {
		t.Fatalf("get pod protected: exit %d, %s; want the guard's reason", code, errOut)
	}
	e.rec.Wait(t, "for the guarded pod", func(r audit.Row) bool {
		return r.Kind == kube.KindRequest && r.Request["name"] == "protected" && r.Plugin == "guard" && r.Verdict == "deny"
	})

	// A watch streams: an event the cluster sends after the request
	// started reaches the agent while the watch is still open.
	req, err := http.NewRequest(http.MethodGet, url+"/api/v1/namespaces/default/pods?watch=true", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+tok)
	resp, err := e.k.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("watch: %d", resp.StatusCode)
	}
	events := bufio.NewScanner(resp.Body)
	e.k.Apply(t, "apiVersion: v1\nkind: Pod\nmetadata: {name: late, namespace: default}\nspec: {containers: [{name: c, image: example.invalid/late}]}\n")
	sawLate := false
	for !sawLate && events.Scan() {
		sawLate = strings.Contains(events.Text(), `"name":"late"`)
	}
	resp.Body.Close()
	if !sawLate {
		t.Fatalf("the watch ended without the new pod: %v", events.Err())
	}

	// Secrets are refused until their values can be masked, even where
	// the rules allow the namespace.
	if _, errOut, code = e.k.RunKubectl(kc, nil, "get", "secrets"); code == 0 || !strings.Contains(errOut, "not be masked") {
		t.Fatalf("get secrets: exit %d, %s; want refused", code, errOut)
	}
	// So is exec, until the gateway terminates it.
	if _, errOut, code = e.k.RunKubectl(kc, nil, "exec", "web", "--", "true"); code == 0 || !strings.Contains(errOut, "not supported yet") {
		t.Fatalf("exec: exit %d, %s; want refused", code, errOut)
	}

	// Hostile: the agent asks the gateway's credential (which may
	// impersonate) to act as someone else. The gateway drops the headers:
	// the request runs as the gateway's own user, and the cluster's audit
	// log shows no impersonation.
	out, errOut, code = e.k.RunKubectl(kc, nil, "get", "pods", "-o", "name", "--field-selector", "metadata.name=web",
		"--as", "nobody", "--as-group", "system:masters")
	if code != 0 || !strings.Contains(out, "pod/web") {
		t.Fatalf("get pods --as nobody: exit %d\n%s%s", code, out, errOut)
	}
	ent := e.k.WaitAudit(t, func(a testenv.KubeAuditEntry) bool {
		return a.Verb == "list" && strings.Contains(a.RequestURI, "fieldSelector=metadata.name")
	})
	if ent.ImpersonatedUser != nil || ent.User.Username != testenv.KubeGatewayUser {
		t.Fatalf("the agent impersonated through the gateway: %+v", ent)
	}

	// Paths that a server could read as another namespace than the
	// gateway's rules saw: refused with 400 and a row.
	for _, path := range []string{"/api/v1/namespaces/default/../other/pods", "/api/v1/namespaces/default%2F..%2Fother/pods"} {
		req, err := http.NewRequest(http.MethodGet, url+path, nil)
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Authorization", "Bearer "+tok)
		resp, err := e.k.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusBadRequest || !strings.Contains(string(body), "not canonical") {
			t.Fatalf("%s: %d %s; want 400", path, resp.StatusCode, body)
		}
	}
	e.rec.Wait(t, "for the non-canonical path", func(r audit.Row) bool {
		return r.Kind == kube.KindRequest && r.Status == "400" && strings.Contains(r.Error, "not canonical")
	})

	// No token, a wrong audience: 401 and a row each.
	noTok := e.k.WriteKubeconfig(t, "none", url, "")
	if _, errOut, code = e.k.RunKubectl(noTok, nil, "get", "pods"); code == 0 {
		t.Fatalf("no token: exit 0: %s", errOut)
	}
	other := e.token(t, identity.MintOptions{Subject: agent, Groups: []string{"agents"}, Audience: "another-service"})
	wrongAud := e.k.WriteKubeconfig(t, "aud", url, other)
	if _, errOut, code = e.k.RunKubectl(wrongAud, nil, "get", "pods"); code == 0 || !strings.Contains(errOut, "You must be logged in") || !strings.Contains(errOut, "audience not accepted") {
		t.Fatalf("wrong audience: exit %d, %s; want a 401 that says why", code, errOut)
	}
	e.rec.Wait(t, "for the wrong audience", func(r audit.Row) bool {
		return r.Kind == gate.KindSessionOpen && r.Verdict == "deny" && strings.Contains(r.Error, "aud")
	})
}

// The access rules' resource paths.
func TestResourcePath(t *testing.T) {
	for _, c := range []struct {
		ri   kube.RequestInfo
		want string
	}{
		{kube.RequestInfo{Path: "/api", Verb: "get"}, "/nonresource/api"},
		{kube.RequestInfo{IsResourceRequest: true, Namespace: "default", Resource: "pods"}, "/namespaces/default/pods"},
		{kube.RequestInfo{IsResourceRequest: true, Namespace: "default", Resource: "pods", Name: "web", Subresource: "log"}, "/namespaces/default/pods/web/log"},
		{kube.RequestInfo{IsResourceRequest: true, APIGroup: "apps", Namespace: "ci", Resource: "deployments", Name: "web"}, "/namespaces/ci/deployments.apps/web"},
		{kube.RequestInfo{IsResourceRequest: true, Resource: "pods"}, "/cluster/pods"},
		{kube.RequestInfo{IsResourceRequest: true, APIGroup: "rbac.authorization.k8s.io", Resource: "clusterroles", Name: "admin"}, "/cluster/clusterroles.rbac.authorization.k8s.io/admin"},
	} {
		if got := kube.ResourcePath(c.ri); got != c.want {
			t.Errorf("%+v: %q, want %q", c.ri, got, c.want)
		}
	}
}

// TestImpersonation: a target that impersonates sends the principal to
// the cluster, whose RBAC then decides with the principal's own rights
// and whose audit log names it.
func TestImpersonation(t *testing.T) {
	e := startEnv(t)
	e.k.Apply(t, `apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {name: pod-reader, namespace: default}
rules: [{apiGroups: [""], resources: [pods], verbs: [get, list]}]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: agent-reads-pods, namespace: default}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: Role, name: pod-reader}
subjects: [{apiGroup: rbac.authorization.k8s.io, kind: User, name: "`+agent+`"}]
`)
	url := e.listen(t, "kube-imp", true)
	tok := e.token(t, identity.MintOptions{Subject: agent, Groups: []string{"agents"}})
	kc := e.k.WriteKubeconfig(t, "agent", url, tok)
	out, errOut, code := e.k.RunKubectl(kc, nil, "get", "pods", "-o", "name")
	if code != 0 || !strings.Contains(out, "pod/web") {
		t.Fatalf("get pods as the principal: exit %d\n%s%s", code, out, errOut)
	}
	ent := e.k.WaitAudit(t, func(a testenv.KubeAuditEntry) bool {
		return a.ImpersonatedUser != nil && a.ImpersonatedUser.Username == agent && a.Verb == "list"
	})
	if ent.User.Username != testenv.KubeGatewayUser || ent.ResponseStatus.Code != http.StatusOK ||
		len(ent.ImpersonatedUser.Groups) == 0 || ent.ImpersonatedUser.Groups[0] != "agents" {
		t.Fatalf("audit entry: %+v", ent)
	}
	// The cluster's RBAC, not the gateway's rules, refuses what the
	// principal may not do (the gateway's own user could read services).
	_, errOut, code = e.k.RunKubectl(kc, nil, "get", "services")
	if code == 0 || !strings.Contains(errOut, `User "`+agent+`" cannot list resource "services"`) {
		t.Fatalf("get services as the principal: exit %d, %s; want the cluster's forbidden", code, errOut)
	}
	e.rec.Wait(t, "for the cluster's 403", func(r audit.Row) bool {
		return r.Kind == kube.KindRequest && r.Request["resource"] == "services" && r.Status == "403" && r.Verdict == "allow"
	})
}
