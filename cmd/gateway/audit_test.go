package main_test

import (
	"crypto/ed25519"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/tollgate-dev/tollgate/host/audit"
	"github.com/tollgate-dev/tollgate/host/audit/audittest"
	"github.com/tollgate-dev/tollgate/internal/testenv"
)

// verdicts reads verify's output: chain ID -> status.
func verdicts(out string) map[string]string {
	m := map[string]string{}
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		if f := strings.Split(line, "\t"); len(f) >= 2 {
			m[f[0]] = f[1]
		}
	}
	return m
}

func writeTrail(t *testing.T, path string, rows []audit.Row) {
	t.Helper()
	os.Remove(path)
	rec, err := audit.OpenFile(path)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range rows {
		if err := rec.Record(r); err != nil {
			t.Fatal(err)
		}
	}
	if err := rec.Close(); err != nil {
		t.Fatal(err)
	}
}

// verify --file: every attack on the file has its own verdict and exit
// 1; the key comes from the config's signing_key or from --public-key.
func TestVerifyFileCheckpoints(t *testing.T) {
	_, priv, _ := ed25519.GenerateKey(nil)
	der, _ := x509.MarshalPKCS8PrivateKey(priv)
	dir := writeConfig(t, valid+"\n[audit]\nsigning_key = \"file:audit-key.pem\"\n")
	keyFile := filepath.Join(dir, "audit-key.pem")
	os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600)
	env := []string{"CHECK_TEST_TOKEN=x"}
	trail := filepath.Join(dir, "trail.jsonl")

	tr := audittest.NewTrail(t, "gw-cli", priv)
	writeTrail(t, trail, tr.Rows)
	check := func(name string, out, errOut string, code, wantCode int, want map[string]string) {
		t.Helper()
		got := verdicts(out)
		if code != wantCode {
			t.Errorf("%s: exit %d, want %d\n%s%s", name, code, wantCode, out, errOut)
		}
		for id, w := range want {
			if got[id] != w {
				t.Errorf("%s: %s is %q, want %q\n%s", name, id, got[id], w, out)
			}
		}
	}
	out, errOut, code := testenv.RunGateway(t, dir, env, "audit", "verify", "--file", trail)
	check("untouched, key from the config", out, errOut, code, 0, tr.Want())

	// Without a config the key comes from the flag; a wrong key is caught.
	bare := t.TempDir()
	out, errOut, code = testenv.RunGateway(t, bare, nil, "audit", "verify", "--file", trail, "--public-key", keyFile)
	check("untouched, key from the flag", out, errOut, code, 0, tr.Want())
	_, other, _ := ed25519.GenerateKey(nil)
	der2, _ := x509.MarshalPKCS8PrivateKey(other)
	otherFile := filepath.Join(bare, "other.pem")
	os.WriteFile(otherFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der2}), 0o600)
	out, errOut, code = testenv.RunGateway(t, bare, nil, "audit", "verify", "--file", trail, "--public-key", otherFile)
	check("wrong key", out, errOut, code, 1, map[string]string{tr.Run1: audit.StatusCheckpointBadSig, tr.Closed: audit.StatusBadSig})

	for _, tc := range audittest.Tampers {
		writeTrail(t, trail, tc.Apply(tr, append([]audit.Row(nil), tr.Rows...)))
		out, errOut, code := testenv.RunGateway(t, dir, env, "audit", "verify", "--file", trail)
		check(tc.Name, out, errOut, code, 1, map[string]string{tc.Chain(tr): tc.Want})
	}
}

// SIGKILL of the gateway binary is not tampering: its run's checkpoint
// chain is open, its sessions as far as they got are whole, and the
// next run links to the killed run's last durable head.
func TestVerifyAfterSIGKILL(t *testing.T) {
	cfg, dir, addrs := shippedConfig(t)
	i := strings.Index(cfg, "[audit]\n")
	cfg = cfg[:i] + "[audit]\nsigning_key = \"file:audit-key.pem\"\nstore = \"file\"\npath = \"audit.jsonl\"\ncheckpoint_interval = \"1s\"\n"
	start := func() *testenv.Gateway {
		return testenv.StartGateway(t, testenv.GatewayOptions{Config: cfg, Dir: dir, Dev: true,
			Wait: []string{addrs["127.0.0.1:8079"], addrs["127.0.0.1:8080"], addrs["127.0.0.1:8081"]}})
	}
	gw := start()
	quickStartRequest(t, gw, addrs["127.0.0.1:8080"])
	gw.WaitOutput("audit checkpoint", 2) // start, then the one over the request
	quickStartRequest(t, gw, addrs["127.0.0.1:8080"])
	gw.Signal(syscall.SIGKILL)
	<-gw.Exited()
	out, errOut, code := gw.Run("audit", "verify", "-c", gw.Config)
	if code != 0 || !strings.Contains(out, "\topen\t") || !strings.Contains(out, "checkpoints") {
		t.Fatalf("verify after SIGKILL: exit %d\n%s%s", code, out, errOut)
	}

	gw = start()
	quickStartRequest(t, gw, addrs["127.0.0.1:8080"])
	rawRequest(t, gw, addrs["127.0.0.1:8080"], "/demo/hello?q=\xff\xfe")
	if err := gw.Stop(); err != nil {
		t.Fatal(err)
	}
	out, errOut, code = gw.Run("audit", "verify", "-c", gw.Config)
	runs := 0
	for _, line := range strings.Split(out, "\n") {
		if strings.Contains(line, " checkpoints\t") {
			runs++
		}
	}
	t.Logf("verify after a restart:\n%s", out)
	if code != 0 || runs != 2 || strings.Count(out, "\tcomplete\t") < 3 {
		t.Fatalf("verify after a restart: exit %d, %d runs\n%s%s", code, runs, out, errOut)
	}
	rows := gw.AuditRows(".tollgate/audit.jsonl")
	linked := false
	for _, r := range rows {
		linked = linked || r.Kind == audit.KindCheckpoint && r.Annotations["prev_run"] != ""
	}
	if !linked {
		t.Error("the second run's first checkpoint does not link to the killed run")
	}
	if b, _ := os.ReadFile(filepath.Join(dir, ".tollgate", "audit.jsonl")); !strings.Contains(string(b), `"raw_row"`) {
		t.Error("the request that is not UTF-8 was not kept exactly")
	}
}

// rawRequest sends one request whose target holds bytes that are not
// UTF-8 (curl would encode them) and reads the answer.
func rawRequest(t *testing.T, gw *testenv.Gateway, listen, target string) {
	t.Helper()
	tok, errOut, code := gw.Run("token", "-c", gw.Config, "--sub", "you@example.com", "--claim", "repository=acme/app")
	if code != 0 {
		t.Fatalf("token: %s", errOut)
	}
	c, err := net.Dial("tcp", listen)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	fmt.Fprintf(c, "GET %s HTTP/1.1\r\nHost: %s\r\nAuthorization: Bearer %s\r\nConnection: close\r\n\r\n", target, listen, strings.TrimSpace(tok))
	resp, err := io.ReadAll(c)
	if err != nil || !strings.HasPrefix(string(resp), "HTTP/1.1 200") {
		t.Fatalf("raw request: %v %q", err, resp)
	}
}
