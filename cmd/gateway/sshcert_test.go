package main_test

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	xssh "golang.org/x/crypto/ssh"

	"github.com/tollgate-dev/tollgate/host/audit"
	"github.com/tollgate-dev/tollgate/internal/testenv"
)

// The certificate way in, end to end with the binary and the real
// OpenSSH client: `gateway ssh login` writes key, certificate and an
// ssh_config, plain `ssh -F config box -- cmd` runs through the gateway,
// and the rows name the principal and the serial. A certificate past
// its token's expiry, a revoked serial and a login the rules do not
// allow are refused with a message and a row; no token byte reaches a
// row or the log.
func TestSSHCertificateThroughTheBinary(t *testing.T) {
	sshd := testenv.StartSSHD(t, testenv.SSHDOptions{})
	addrs := map[string]string{}
	for _, k := range []string{"issuer", "ssh", "admin"} {
		addrs[k] = testenv.FreeAddr(t)
	}
	dir := t.TempDir()
	cfg := fmt.Sprintf(`
[gateway]
data_dir = ".tollgate"
[dev]
issuer_listen = %q
[admin]
listen = %q
groups = ["admins"]
%s[[access]]
name = "dev-tokens"
issuers = ["dev"]
targets = ["box"]
paths = ["/%s"]
`, addrs["issuer"], addrs["admin"], sshBox(t, dir, sshd, addrs["ssh"], "ca_key = \"gateway_ca_key\"\nrevoked_serials = \"revoked_serials\"\n"), sshd.User)
	gw := testenv.StartGateway(t, testenv.GatewayOptions{Config: cfg, Dir: dir, Dev: true, Wait: []string{addrs["issuer"], addrs["ssh"], addrs["admin"]}})
	if _, errOut, code := gw.Run("check", "-c", gw.Config, "--dev"); code != 0 {
		t.Fatalf("gateway check: %s", errOut)
	}
	mint := func(args ...string) string {
		tok, errOut, code := gw.Run(append([]string{"token", "-c", gw.Config}, args...)...)
		if code != 0 {
			t.Fatalf("token: %s", errOut)
		}
		return strings.TrimSpace(tok)
	}
	tok := mint("--sub", "agent@example.com", "--claim", "repository=acme/app")
	api := "http://" + addrs["admin"]
	// login runs `gateway ssh login` as a CI step would: the token in an
	// environment variable, the files under its own directory.
	login := func(token, sshDir string, extra ...string) (string, string, int) {
		args := append([]string{"ssh", "login", "--gateway", api, "--dir", sshDir, "--token-env", "CI_OIDC_TOKEN"}, extra...)
		return testenv.RunGateway(t, dir, []string{"CI_OIDC_TOKEN=" + token}, args...)
	}
	sshDir := filepath.Join(t.TempDir(), "ssh")
	out, errOut, code := login(tok, sshDir, "--target", "box")
	if code != 0 {
		t.Fatalf("ssh login: %s%s\n%s", out, errOut, gw.Output())
	}
	serial := regexp.MustCompile(`certificate serial (\d+) for agent@example.com`).FindStringSubmatch(out)
	if serial == nil {
		t.Fatalf("ssh login printed %q", out)
	}
	for _, f := range []string{"id_ed25519", "id_ed25519-cert.pub", "known_hosts", "config"} {
		if _, err := os.Stat(filepath.Join(sshDir, f)); err != nil {
			t.Fatalf("ssh login did not write %s: %v", f, err)
		}
	}
	if fi, _ := os.Stat(filepath.Join(sshDir, "id_ed25519")); fi.Mode().Perm() != 0o600 {
		t.Errorf("private key mode %v", fi.Mode().Perm())
	}
	conf := filepath.Join(sshDir, "config")
	run := func(conf string, args ...string) (string, string, int) {
		cmd := exec.Command("ssh", append([]string{"-F", conf, "-o", "ConnectTimeout=10"}, args...)...)
		var o, e bytes.Buffer
		cmd.Stdout, cmd.Stderr = &o, &e
		err := cmd.Run()
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return o.String(), e.String(), ee.ExitCode()
		} else if err != nil {
			t.Fatalf("ssh: %v", err)
		}
		return o.String(), e.String(), 0
	}
	if o, e, c := run(conf, "box", "--", "echo", "through-a-certificate"); c != 0 || strings.TrimSpace(o) != "through-a-certificate" {
		t.Fatalf("ssh -F %s box: code %d stdout %q stderr %q\n%s", conf, c, o, e, gw.Output())
	}
	const trail = ".tollgate/audit.jsonl"
	open := gw.WaitAudit(trail, "session.open with the serial", func(r audit.Row) bool {
		return r.Kind == audit.KindSessionOpen && r.Request["cert_serial"] == serial[1] && r.Verdict != "deny"
	})
	if open.Subject != "agent@example.com" || open.Request["auth"] != "certificate" || open.Target != "box" || open.Claims["repository"] != "" && open.Claims["repository"] != "acme/app" {
		t.Errorf("open row: %+v", open)
	}
	ex := gw.WaitAudit(trail, "ssh.exec", func(r audit.Row) bool { return r.Kind == "ssh.exec" && r.SessionID == open.SessionID })
	if ex.Subject != "agent@example.com" || ex.Status != "exit 0" || ex.Request["command"] != "echo through-a-certificate" {
		t.Errorf("exec row: %+v", ex)
	}
	issued := gw.WaitAudit(trail, "ssh.certificate", func(r audit.Row) bool { return r.Kind == "ssh.certificate" && r.Request["serial"] == serial[1] })
	if issued.Subject != "agent@example.com" || issued.Status != "issued" || !strings.HasPrefix(issued.Request["key_fingerprint"], "SHA256:") {
		t.Errorf("issue row: %+v", issued)
	}

	// No token: a clear message. A login the rules do not allow: the
	// gateway's reason. --token-file with --login: login@box only.
	if _, e, c := testenv.RunGateway(t, dir, []string{"TOLLGATE_TOKEN="}, "ssh", "login", "--gateway", api, "--dir", filepath.Join(t.TempDir(), "none")); c != 1 || !strings.Contains(e, "no OIDC token: $TOLLGATE_TOKEN is empty") {
		t.Errorf("login without a token: code %d stderr %q", c, e)
	}
	tokFile := filepath.Join(t.TempDir(), "token")
	must(t, os.WriteFile(tokFile, []byte(tok+"\n"), 0o600))
	if _, e, c := testenv.RunGateway(t, dir, nil, "ssh", "login", "--gateway", api, "--dir", filepath.Join(t.TempDir(), "nobody"), "--token-file", tokFile, "--login", "nobody"); c != 1 || !strings.Contains(e, "access denied: login nobody on target box") {
		t.Errorf("login for a login not allowed: code %d stderr %q", c, e)
	}
	oneDir := filepath.Join(t.TempDir(), "one")
	if o, e, c := testenv.RunGateway(t, dir, nil, "ssh", "login", "--gateway", api, "--dir", oneDir, "--token-file", tokFile, "--login", sshd.User); c != 0 {
		t.Fatalf("login --token-file --login: code %d %s%s", c, o, e)
	}
	if o, e, c := run(filepath.Join(oneDir, "config"), "box", "--", "echo", "one-login"); c != 0 || strings.TrimSpace(o) != "one-login" {
		t.Errorf("with a login@box certificate: code %d stdout %q stderr %q", c, o, e)
	}

	// `ssh config` prints what login wrote; `ssh ca` the CA that signed it.
	printed, errOut, code := gw.Run("ssh", "config", "--dir", sshDir)
	written, _ := os.ReadFile(conf)
	if code != 0 || printed != string(written) || !strings.Contains(printed, "CertificateFile") || !strings.Contains(printed, "User "+sshd.User+"@box") {
		t.Errorf("ssh config (%d, %s):\n%s\nwritten:\n%s", code, errOut, printed, written)
	}
	caOut, errOut, code := gw.Run("ssh", "ca", "--gateway", api)
	caKey, err := os.ReadFile(filepath.Join(dir, "gateway_ca_key"))
	must(t, err)
	signer, err := xssh.ParsePrivateKey(caKey)
	must(t, err)
	if code != 0 || strings.TrimSpace(caOut) != strings.TrimSpace(string(xssh.MarshalAuthorizedKey(signer.PublicKey()))) {
		t.Errorf("ssh ca: %d %q %s", code, caOut, errOut)
	}

	// A login the rules do not allow (-l wins over the config's User).
	if o, e, c := run(conf, "-l", "nobody@box", "box", "--", "echo", "should-not-run"); c != 255 || strings.Contains(o, "should-not-run") ||
		!strings.Contains(e, "tollgate: certificate serial "+serial[1]+": access denied: login nobody on target box") {
		t.Errorf("login not allowed: code %d stdout %q stderr %q", c, o, e)
	}
	gw.WaitAudit(trail, "refused row for login nobody", func(r audit.Row) bool {
		return r.Kind == audit.KindSessionOpen && r.Verdict == "deny" && r.Request["cert_serial"] == serial[1] && strings.Contains(r.Error, "login nobody")
	})

	// Revoked: only an admin revokes; then the serial is refused.
	if _, e, c := gw.Run("ssh", "revoke", "--gateway", api, "--token", tok, serial[1]); c == 0 || !strings.Contains(e, "403") {
		t.Errorf("revoke by a non-admin: code %d stderr %q", c, e)
	}
	admin := mint("--sub", "ops@example.com", "--group", "admins")
	if o, e, c := gw.Run("ssh", "revoke", "--gateway", api, "--token", admin, "--reason", "test", serial[1]); c != 0 || !strings.Contains(o, "revoked "+serial[1]) {
		t.Fatalf("revoke: code %d %q %q", c, o, e)
	}
	if o, e, c := run(conf, "box", "--", "echo", "should-not-run"); c != 255 || strings.Contains(o, "should-not-run") ||
		!strings.Contains(e, "tollgate: certificate serial "+serial[1]+": revoked") {
		t.Errorf("revoked: code %d stdout %q stderr %q", c, o, e)
	}
	gw.WaitAudit(trail, "ssh.revoke row", func(r audit.Row) bool {
		return r.Kind == "ssh.revoke" && r.Request["serial"] == serial[1] && r.Subject == "ops@example.com"
	})
	gw.WaitAudit(trail, "refused row for the revoked serial", func(r audit.Row) bool {
		return r.Kind == audit.KindSessionOpen && r.Verdict == "deny" && r.Request["cert_serial"] == serial[1] && strings.Contains(r.Error, "revoked")
	})

	// Expired: a certificate lives no longer than its token. A token of a
	// few seconds gives one; once past its end, it is refused.
	short := mint("--sub", "agent@example.com", "--ttl", "10s")
	shortDir := filepath.Join(t.TempDir(), "ssh")
	out, errOut, code = login(short, shortDir, "--target", "box")
	if code != 0 {
		t.Fatalf("ssh login with a short token: %s%s", out, errOut)
	}
	shortSerial := regexp.MustCompile(`certificate serial (\d+)`).FindStringSubmatch(out)[1]
	until := regexp.MustCompile(`valid until (\S+),`).FindStringSubmatch(out)[1]
	end, err := time.Parse(time.RFC3339, until)
	must(t, err)
	if end.After(time.Now().Add(11 * time.Second)) {
		t.Fatalf("certificate valid until %s outlives its 10 s token", until)
	}
	for time.Now().Before(end.Add(1500 * time.Millisecond)) {
		time.Sleep(200 * time.Millisecond)
	}
	if o, e, c := run(filepath.Join(shortDir, "config"), "box", "--", "echo", "should-not-run"); c != 255 || strings.Contains(o, "should-not-run") ||
		!strings.Contains(e, "tollgate: certificate serial "+shortSerial+": expired at ") {
		t.Errorf("expired: code %d stdout %q stderr %q", c, o, e)
	}
	gw.WaitAudit(trail, "refused row for the expired serial", func(r audit.Row) bool {
		return r.Kind == audit.KindSessionOpen && r.Verdict == "deny" && r.Request["cert_serial"] == shortSerial && strings.Contains(r.Error, "expired")
	})

	// No token byte in any row, in the gateway's log, or in what login wrote.
	rows, err := os.ReadFile(filepath.Join(dir, trail))
	must(t, err)
	state, _ := os.ReadFile(filepath.Join(sshDir, "tollgate.json"))
	for _, tk := range []string{tok, admin, short} {
		sig := tk[strings.LastIndexByte(tk, '.')+1:]
		for what, b := range map[string]string{"audit trail": string(rows), "gateway log": gw.Output(), "login state": string(state), "ssh config": string(written)} {
			if strings.Contains(b, sig) {
				t.Errorf("a token's signature is in the %s", what)
			}
		}
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
