package main_test

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tollgate-dev/tollgate/host/audit"
	"github.com/tollgate-dev/tollgate/internal/testenv"
)

// An ssh listener and target configured in gateway.toml, served by the
// binary: the real ssh client runs a command on a real sshd through it
// with its OIDC token, the output comes back, the gateway's host key was
// made on first start, and the exec has its row in the trail.
func TestSSHThroughTheBinary(t *testing.T) {
	sshd := testenv.StartSSHD(t, testenv.SSHDOptions{})
	addrs := map[string]string{}
	for _, k := range []string{"issuer", "ssh"} {
		addrs[k] = testenv.FreeAddr(t)
	}
	dir := t.TempDir()
	cfg := fmt.Sprintf(`
[gateway]
data_dir = ".tollgate"
[dev]
issuer_listen = %q
%s[[access]]
name = "dev-tokens"
issuers = ["dev"]
targets = ["box"]
`, addrs["issuer"], sshBox(t, dir, sshd, addrs["ssh"], ""))
	gw := testenv.StartGateway(t, testenv.GatewayOptions{Config: cfg, Dir: dir, Dev: true, Wait: []string{addrs["issuer"], addrs["ssh"]}})
	if _, errOut, code := gw.Run("check", "-c", gw.Config, "--dev"); code != 0 {
		t.Fatalf("gateway check: %s", errOut)
	}
	tok, errOut, code := gw.Run("token", "-c", gw.Config, "--sub", "agent@example.com")
	if code != 0 {
		t.Fatalf("token: %s", errOut)
	}
	if _, err := os.Stat(filepath.Join(dir, "gateway_host_key")); err != nil {
		t.Fatalf("the gateway's host key was not made on first start: %v", err)
	}

	_, port, _ := strings.Cut(addrs["ssh"], ":")
	askpass := filepath.Join(testenv.ModuleRoot(t), "examples", "ssh", "tollgate-askpass")
	cmd := exec.Command("ssh", "-F", "/dev/null", "-p", port, "-l", "box",
		"-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
		"-o", "PreferredAuthentications=keyboard-interactive", "-o", "PubkeyAuthentication=no",
		"-o", "NumberOfPasswordPrompts=1", "-o", "ConnectTimeout=10",
		"127.0.0.1", "--", "echo", "through-the-gateway")
	cmd.Env = append(os.Environ(), "SSH_ASKPASS="+askpass, "SSH_ASKPASS_REQUIRE=force", "DISPLAY=:0", "TOLLGATE_TOKEN="+strings.TrimSpace(tok))
	var out, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &stderr
	if err := cmd.Run(); err != nil || strings.TrimSpace(out.String()) != "through-the-gateway" {
		t.Fatalf("ssh through the gateway: %v\nstdout: %s\nstderr: %s\n%s", err, out.String(), stderr.String(), gw.Output())
	}
	row := gw.WaitAudit(filepath.Join(".tollgate", "audit.jsonl"), "ssh.exec", func(r audit.Row) bool {
		return r.Kind == "ssh.exec" && r.Request["command"] == "echo through-the-gateway" && r.Subject == "agent@example.com"
	})
	if row.Status != "exit 0" {
		t.Errorf("exec row status %q", row.Status)
	}
}

// sshBox is the TOML of the target "box" on sshd, reached with sshd's
// client key (written to dir/client.key), and of the listener "ssh" at
// listen, whose table goes on with listenerKeys.
func sshBox(t *testing.T, dir string, sshd *testenv.SSHD, listen, listenerKeys string) string {
	t.Helper()
	if err := os.WriteFile(filepath.Join(dir, "client.key"), sshd.ClientKeyPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf(`[[targets]]
name = "box"
protocol = "ssh"
upstream = %q
known_hosts = [%q]
[targets.credential]
type = "key"
username = %q
value = "file:client.key"
[[listeners]]
name = "ssh"
protocol = "ssh"
listen = %q
host_key = "gateway_host_key"
`, sshd.Addr, sshd.HostKeyLine, sshd.User, listen) + listenerKeys
}
