//go:build unix

package testenv

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// The control plane's binaries, built by .ci/build-kube (`make deps`) from
// internal/testenv/kubebin into .deps/kube/.
const (
	KubeAPIServerBin = "kube-apiserver"
	EtcdBin          = "etcd"
	KubectlBin       = "kubectl"
)

// Users of the control plane's static token file.
const (
	// KubeAdminUser is the harness's own user (group system:masters).
	KubeAdminUser = "tollgate-admin"
	// KubeGatewayUser is the identity of the gateway's upstream credential:
	// KubeGatewayRole lets it read every resource, exec, attach and
	// port-forward, and impersonate.
	KubeGatewayUser = "tollgate-gateway"
	KubeGatewayRole = "tollgate-gateway"
)

// KubeBinary is the path of one of the control plane's binaries; a missing
// one fails the test with how to build it.
func KubeBinary(t testing.TB, name string) string {
	t.Helper()
	p := filepath.Join(ModuleRoot(t), ".deps", "kube", name)
	if _, err := os.Stat(p); err != nil {
		t.Fatalf("testenv: %s is missing; run `make deps` (it runs .ci/build-kube, which builds kube-apiserver, etcd and kubectl from the Go module proxy): %v", p, err)
	}
	return p
}

// Kube is a throwaway Kubernetes control plane: etcd and kube-apiserver on
// loopback ports chosen at run time, with their own CA, serving
// certificate, service-account key pair, static tokens, RBAC authorization
// and an audit log, for the life of the test. It has no kubelet and no
// controllers: a Pod is stored, never run.
type Kube struct {
	// URL is the API server's (https://127.0.0.1:port).
	URL string
	Dir string
	// CAFile holds the CA certificate (PEM) that signed the API server's
	// serving certificate and that the API server trusts for client
	// certificates; CAPEM is its content.
	CAFile string
	CAPEM  []byte
	// AdminToken is KubeAdminUser's bearer token; AdminKubeconfig a
	// kubeconfig file with it.
	AdminToken      string
	AdminKubeconfig string
	// GatewayToken is KubeGatewayUser's bearer token, the credential a
	// gateway target holds; GatewayTokenFile holds it (for a file: secret).
	GatewayToken     string
	GatewayTokenFile string
	// GatewayCertFile and GatewayKeyFile are a client certificate for
	// KubeGatewayUser, the other kind of credential a target may hold.
	GatewayCertFile string
	GatewayKeyFile  string
	// AuditLog is the API server's audit log (JSON lines, level Metadata
	// for every request).
	AuditLog string
	// Kubectl is the kubectl built with the control plane.
	Kubectl string

	mu     sync.Mutex
	out    bytes.Buffer
	ca     *x509.Certificate
	caKey  *ecdsa.PrivateKey
	etcd   *exec.Cmd
	apisrv *exec.Cmd
}

// StartKube starts etcd and kube-apiserver, waits until the API server's
// /readyz answers ok, and grants KubeGatewayUser its role. Everything is
// stopped and removed when the test ends.
func StartKube(t testing.TB) *Kube {
	t.Helper()
	apiserverBin := KubeBinary(t, KubeAPIServerBin)
	etcdBin := KubeBinary(t, EtcdBin)
	dir, err := os.MkdirTemp("", "tollgate-kube-")
	if err != nil {
		t.Fatalf("testenv: kube: %v", err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	k := &Kube{Dir: dir, Kubectl: KubeBinary(t, KubectlBin)}
	fail := func(format string, args ...any) {
		t.Helper()
		t.Fatalf("testenv: kube: "+format+"\n--- etcd and kube-apiserver output:\n%s", append(args, k.Output())...)
	}
	write := func(name string, b []byte) string {
		t.Helper()
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, b, 0o600); err != nil {
			t.Fatalf("testenv: kube: %v", err)
		}
		return p
	}

	// The CA signs the serving certificate and client certificates alike.
	if err := k.newCA(); err != nil {
		t.Fatalf("testenv: kube: CA: %v", err)
	}
	k.CAFile = write("ca.crt", k.CAPEM)
	srvCert, srvKey, err := k.issue("kube-apiserver", nil, true)
	if err != nil {
		t.Fatalf("testenv: kube: serving certificate: %v", err)
	}
	certFile, keyFile := write("apiserver.crt", srvCert), write("apiserver.key", srvKey)
	gwCert, gwKey, err := k.issue(KubeGatewayUser, nil, false)
	if err != nil {
		t.Fatalf("testenv: kube: client certificate: %v", err)
	}
	k.GatewayCertFile, k.GatewayKeyFile = write("gateway.crt", gwCert), write("gateway.key", gwKey)

	saKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatalf("testenv: kube: service-account key: %v", err)
	}
	saPub, err := x509.MarshalPKIXPublicKey(&saKey.PublicKey)
	if err != nil {
		t.Fatalf("testenv: kube: service-account key: %v", err)
	}
	saPubFile := write("sa.pub", pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: saPub}))
	saKeyFile := write("sa.key", pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(saKey)}))

	k.AdminToken, k.GatewayToken = randomToken(t), randomToken(t)
	tokens := write("tokens.csv", []byte(fmt.Sprintf("%s,%s,%s,\"system:masters\"\n%s,%s,%s\n",
		k.AdminToken, KubeAdminUser, KubeAdminUser, k.GatewayToken, KubeGatewayUser, KubeGatewayUser)))
	k.GatewayTokenFile = write("gateway-token", []byte(k.GatewayToken))
	policy := write("audit-policy.yaml", []byte("apiVersion: audit.k8s.io/v1\nkind: Policy\nomitStages: [RequestReceived]\nrules:\n- level: Metadata\n"))
	k.AuditLog = filepath.Join(dir, "audit.log")

	// etcd: one member, its data in the temp dir, fsync off (a test's data
	// need not survive a crash).
	etcdAddr, peerAddr := FreeAddr(t), FreeAddr(t)
	etcdURL, peerURL := "http://"+etcdAddr, "http://"+peerAddr
	k.etcd = exec.Command(etcdBin,
		"--name=kube-test",
		"--data-dir="+filepath.Join(dir, "etcd"),
		"--listen-client-urls="+etcdURL, "--advertise-client-urls="+etcdURL,
		"--listen-peer-urls="+peerURL, "--initial-advertise-peer-urls="+peerURL,
		"--initial-cluster=kube-test="+peerURL,
		"--unsafe-no-fsync", "--log-level=warn",
	)
	etcdExited := k.start(t, k.etcd, "etcd")
	deadline := time.Now().Add(60 * time.Second)
	for !etcdHealthy(etcdURL) {
		select {
		case <-etcdExited:
			fail("etcd exited at start")
		default:
		}
		if time.Now().After(deadline) {
			fail("etcd did not report healthy on %s within 60 s", etcdURL)
		}
		time.Sleep(50 * time.Millisecond)
	}

	addr := FreeAddr(t)
	host, port, _ := net.SplitHostPort(addr)
	k.URL = "https://" + addr
	k.apisrv = exec.Command(apiserverBin,
		"--etcd-servers="+etcdURL,
		"--bind-address="+host, "--advertise-address="+host, "--secure-port="+port,
		"--cert-dir="+filepath.Join(dir, "certs"),
		"--tls-cert-file="+certFile, "--tls-private-key-file="+keyFile,
		"--client-ca-file="+k.CAFile,
		"--token-auth-file="+tokens,
		"--service-account-key-file="+saPubFile,
		"--service-account-signing-key-file="+saKeyFile,
		"--service-account-issuer=https://kubernetes.default.svc",
		"--service-cluster-ip-range=10.0.0.0/24",
		"--authorization-mode=RBAC",
		// No controllers run: nothing would create the default service
		// account ServiceAccount admission waits for, nor reconcile the
		// kubernetes Service's endpoints.
		"--disable-admission-plugins=ServiceAccount",
		"--endpoint-reconciler-type=none",
		"--audit-policy-file="+policy,
		"--audit-log-path="+k.AuditLog,
		"--audit-log-mode=blocking",
		"--profiling=false",
	)
	apiExited := k.start(t, k.apisrv, "kube-apiserver")
	// The API server creates its bootstrap RBAC roles and priority levels
	// before /readyz answers ok; on a loaded 2-core machine that takes tens
	// of seconds.
	deadline = time.Now().Add(3 * time.Minute)
	for {
		code, body := k.get("/readyz")
		if code == http.StatusOK {
			break
		}
		select {
		case <-apiExited:
			fail("kube-apiserver exited at start")
		case <-etcdExited:
			fail("etcd exited while kube-apiserver started")
		default:
		}
		if time.Now().After(deadline) {
			fail("kube-apiserver's /readyz did not answer ok within 3 min: last %d %s", code, body)
		}
		time.Sleep(200 * time.Millisecond)
	}

	k.AdminKubeconfig = k.WriteKubeconfig(t, "admin", k.URL, k.AdminToken)
	k.Apply(t, gatewayRBAC)
	return k
}

// gatewayRBAC is KubeGatewayUser's role: read everything, open the
// streaming subresources, and impersonate (a target that impersonates
// needs the last; the impersonated principal's own rights then apply).
var gatewayRBAC = `apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata:
  name: ` + KubeGatewayRole + `
rules:
- apiGroups: ["*"]
  resources: ["*"]
  verbs: ["get", "list", "watch"]
- apiGroups: [""]
  resources: ["pods/exec", "pods/attach", "pods/portforward"]
  verbs: ["get", "create"]
- apiGroups: [""]
  resources: ["users", "groups", "serviceaccounts"]
  verbs: ["impersonate"]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata:
  name: ` + KubeGatewayRole + `
roleRef:
  apiGroup: rbac.authorization.k8s.io
  kind: ClusterRole
  name: ` + KubeGatewayRole + `
subjects:
- apiGroup: rbac.authorization.k8s.io
  kind: User
  name: ` + KubeGatewayUser + `
`

// Output is what etcd and kube-apiserver logged so far.
func (k *Kube) Output() string {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.out.String()
}

// start runs a control-plane process in the foreground, its output
// prefixed into k's log, and stops it (SIGTERM, then SIGKILL) at cleanup.
func (k *Kube) start(t testing.TB, cmd *exec.Cmd, name string) <-chan struct{} {
	t.Helper()
	w := lockedWriterFor(&k.mu, &k.out)
	cmd.Stdout = &prefixWriter{prefix: name + ": ", w: w}
	cmd.Stderr = cmd.Stdout
	if err := cmd.Start(); err != nil {
		t.Fatalf("testenv: kube: start %s: %v", name, err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	// Cleanups run last-in first-out: the API server stops before etcd.
	t.Cleanup(func() { stopProcess(cmd, exited, os.Interrupt) })
	return exited
}

// prefixWriter writes whole lines with a prefix, so the two processes'
// output stays readable in one buffer.
type prefixWriter struct {
	prefix string
	w      interface{ Write([]byte) (int, error) }
	part   []byte
}

func (p *prefixWriter) Write(b []byte) (int, error) {
	p.part = append(p.part, b...)
	for {
		i := bytes.IndexByte(p.part, '\n')
		if i < 0 {
			return len(b), nil
		}
		line := append([]byte(p.prefix), p.part[:i+1]...)
		p.part = p.part[i+1:]
		if _, err := p.w.Write(line); err != nil {
			return 0, err
		}
	}
}

// Client is an HTTP client that trusts the control plane's CA.
func (k *Kube) Client() *http.Client {
	pool := x509.NewCertPool()
	pool.AddCert(k.ca)
	return &http.Client{
		Timeout:   30 * time.Second,
		Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}},
	}
}

// get asks the API server for path as the admin; the status (0 when it did
// not answer) and the start of the body.
func (k *Kube) get(path string) (int, string) {
	req, err := http.NewRequest(http.MethodGet, k.URL+path, nil)
	if err != nil {
		return 0, err.Error()
	}
	req.Header.Set("Authorization", "Bearer "+k.AdminToken)
	c := k.Client()
	c.Timeout = 5 * time.Second
	resp, err := c.Do(req)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	var b [512]byte
	n, _ := resp.Body.Read(b[:])
	return resp.StatusCode, string(b[:n])
}

// WriteKubeconfig writes a kubeconfig under the harness's directory whose
// one context reaches server as a user with token, trusting the control
// plane's CA (for a gateway in front of the cluster, pass the gateway's URL
// and its CA through WriteKubeconfigCA).
func (k *Kube) WriteKubeconfig(t testing.TB, name, server, token string) string {
	t.Helper()
	return k.WriteKubeconfigCA(t, name, server, k.CAFile, token)
}

// WriteKubeconfigCA is WriteKubeconfig with another CA file.
func (k *Kube) WriteKubeconfigCA(t testing.TB, name, server, caFile, token string) string {
	t.Helper()
	cfg := fmt.Sprintf(`apiVersion: v1
kind: Config
clusters:
- name: c
  cluster:
    server: %s
    certificate-authority: %s
users:
- name: u
  user:
    token: %s
contexts:
- name: c
  context:
    cluster: c
    user: u
    namespace: default
current-context: c
`, server, caFile, token)
	p := filepath.Join(k.Dir, "kubeconfig-"+name)
	if err := os.WriteFile(p, []byte(cfg), 0o600); err != nil {
		t.Fatalf("testenv: kube: %v", err)
	}
	return p
}

// RunKubectl runs the control plane's kubectl with kubeconfig and args, and
// returns its stdout, stderr and exit code (-1 when it could not run).
func (k *Kube) RunKubectl(kubeconfig string, stdin []byte, args ...string) (string, string, int) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, k.Kubectl, append([]string{"--kubeconfig", kubeconfig}, args...)...)
	// kubectl must not find a cache or config of the machine's user.
	cmd.Env = append(os.Environ(), "HOME="+k.Dir, "KUBECONFIG=", "KUBECACHEDIR="+filepath.Join(k.Dir, "cache"))
	if stdin != nil {
		cmd.Stdin = bytes.NewReader(stdin)
	}
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	code := 0
	if err != nil {
		code = -1
		if ee, ok := err.(*exec.ExitError); ok {
			code = ee.ExitCode()
		} else {
			stderr.WriteString(err.Error())
		}
	}
	return stdout.String(), stderr.String(), code
}

// Admin runs kubectl as the harness's admin and fails the test when it
// fails; its stdout.
func (k *Kube) Admin(t testing.TB, stdin []byte, args ...string) string {
	t.Helper()
	out, errOut, code := k.RunKubectl(k.AdminKubeconfig, stdin, args...)
	if code != 0 {
		t.Fatalf("testenv: kube: kubectl %s: exit %d\n%s%s", strings.Join(args, " "), code, out, errOut)
	}
	return out
}

// Apply creates or updates the objects of a YAML manifest as the admin.
func (k *Kube) Apply(t testing.TB, manifest string) {
	t.Helper()
	k.Admin(t, []byte(manifest), "apply", "-f", "-")
}

// newCA makes the control plane's CA.
func (k *Kube) newCA() error {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "tollgate-test-kube-ca"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return err
	}
	if k.ca, err = x509.ParseCertificate(der); err != nil {
		return err
	}
	k.caKey = key
	k.CAPEM = pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	return nil
}

// issue signs a certificate with the CA: a serving certificate for
// 127.0.0.1 and localhost, or a client certificate whose CommonName and
// Organizations are the Kubernetes user and groups. PEM certificate and key.
func (k *Kube) issue(cn string, groups []string, server bool) ([]byte, []byte, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 62))
	if err != nil {
		return nil, nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: cn, Organization: groups},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	if server {
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
		tmpl.IPAddresses = []net.IP{net.IPv4(127, 0, 0, 1)}
		tmpl.DNSNames = []string{"localhost", "kubernetes", "kubernetes.default.svc"}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, k.ca, &key.PublicKey, k.caKey)
	if err != nil {
		return nil, nil, err
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return nil, nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}), nil
}

// IssueClientCert signs a client certificate for user (and groups) with
// the control plane's CA and writes it under the harness's directory; the
// certificate and key files.
func (k *Kube) IssueClientCert(t testing.TB, user string, groups ...string) (string, string) {
	t.Helper()
	c, key, err := k.issue(user, groups, false)
	if err != nil {
		t.Fatalf("testenv: kube: client certificate: %v", err)
	}
	certFile := filepath.Join(k.Dir, "client-"+user+".crt")
	keyFile := filepath.Join(k.Dir, "client-"+user+".key")
	if err := os.WriteFile(certFile, c, 0o600); err != nil {
		t.Fatalf("testenv: kube: %v", err)
	}
	if err := os.WriteFile(keyFile, key, 0o600); err != nil {
		t.Fatalf("testenv: kube: %v", err)
	}
	return certFile, keyFile
}

// etcdHealthy reports whether etcd's /health answers that it is.
func etcdHealthy(url string) bool {
	c := &http.Client{Timeout: 2 * time.Second}
	resp, err := c.Get(url + "/health")
	if err != nil {
		return false
	}
	defer resp.Body.Close()
	var b [256]byte
	n, _ := resp.Body.Read(b[:])
	return resp.StatusCode == http.StatusOK && bytes.Contains(b[:n], []byte(`"health":"true"`))
}

// randomToken is a static token for the API server's token file.
func randomToken(t testing.TB) string {
	t.Helper()
	var b [24]byte
	if _, err := rand.Read(b[:]); err != nil {
		t.Fatalf("testenv: kube: %v", err)
	}
	return hex.EncodeToString(b[:])
}

// KubeAuditEntry is what the tests read of an API server audit event.
type KubeAuditEntry struct {
	Verb       string `json:"verb"`
	RequestURI string `json:"requestURI"`
	User       struct {
		Username string `json:"username"`
	} `json:"user"`
	ImpersonatedUser *struct {
		Username string   `json:"username"`
		Groups   []string `json:"groups"`
	} `json:"impersonatedUser"`
	ResponseStatus struct {
		Code int `json:"code"`
	} `json:"responseStatus"`
	// ObjectRef is the API server's own resolution of the request
	// (its RequestInfo); nil for a non-resource URL.
	ObjectRef *struct {
		Resource    string `json:"resource"`
		Namespace   string `json:"namespace"`
		Name        string `json:"name"`
		APIGroup    string `json:"apiGroup"`
		APIVersion  string `json:"apiVersion"`
		Subresource string `json:"subresource"`
	} `json:"objectRef"`
}

// AuditLines is every entry of the API server's audit log so far.
func (k *Kube) AuditLines(t testing.TB) []KubeAuditEntry {
	t.Helper()
	f, err := os.Open(k.AuditLog)
	if err != nil {
		t.Fatalf("testenv: kube: audit log: %v", err)
	}
	defer f.Close()
	var all []KubeAuditEntry
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var e KubeAuditEntry
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			t.Fatalf("testenv: kube: audit log line %q: %v", sc.Text(), err)
		}
		all = append(all, e)
	}
	if err := sc.Err(); err != nil {
		t.Fatalf("testenv: kube: audit log: %v", err)
	}
	return all
}

// WaitAudit waits for an entry of the API server's audit log: it is
// written once the response has gone, so it may trail the client a little.
func (k *Kube) WaitAudit(t testing.TB, match func(KubeAuditEntry) bool) KubeAuditEntry {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		f, err := os.Open(k.AuditLog)
		if err == nil {
			sc := bufio.NewScanner(f)
			sc.Buffer(nil, 1<<20)
			for sc.Scan() {
				var e KubeAuditEntry
				if json.Unmarshal(sc.Bytes(), &e) == nil && match(e) {
					f.Close()
					return e
				}
			}
			f.Close()
		}
		if time.Now().After(deadline) {
			t.Fatalf("no matching entry in the API server's audit log %s", k.AuditLog)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// IssueServingCert signs a serving certificate for 127.0.0.1 and localhost
// with the control plane's CA (for a gateway listener, so that one
// kubeconfig CA file trusts both) and writes it under the harness's
// directory; the certificate and key files.
func (k *Kube) IssueServingCert(t testing.TB, name string) (string, string) {
	t.Helper()
	c, key, err := k.issue(name, nil, true)
	if err != nil {
		t.Fatalf("testenv: kube: serving certificate: %v", err)
	}
	certFile := filepath.Join(k.Dir, "serving-"+name+".crt")
	keyFile := filepath.Join(k.Dir, "serving-"+name+".key")
	if err := os.WriteFile(certFile, c, 0o600); err != nil {
		t.Fatalf("testenv: kube: %v", err)
	}
	if err := os.WriteFile(keyFile, key, 0o600); err != nil {
		t.Fatalf("testenv: kube: %v", err)
	}
	return certFile, keyFile
}
