package main_test

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tollgate-dev/tollgate/host/audit"
	"github.com/tollgate-dev/tollgate/host/audit/cast"
	"github.com/tollgate-dev/tollgate/host/audit/embedded"
	"github.com/tollgate-dev/tollgate/host/gate"
	"github.com/tollgate-dev/tollgate/internal/testenv"
)

// The acceptance path of session recording, through the binary: the real
// ssh client runs a command on a real sshd through the gateway (redact
// plugin, embedded audit store); the remote prints an AWS key, the client
// gets it redacted; `gateway replay --cast` (through the running
// gateway's admin API) writes a .cast file whose output events are the
// client's stdout byte for byte and hold no secret; `gateway replay`
// plays the same bytes; after a stop, `audit verify` checks the chunks
// in the session's chain.
func TestReplayThroughTheBinary(t *testing.T) {
	sshd := testenv.StartSSHD(t, testenv.SSHDOptions{})
	addrs := map[string]string{}
	for _, k := range []string{"issuer", "ssh", "admin"} {
		addrs[k] = testenv.FreeAddr(t)
	}
	dir := t.TempDir()
	keyID, secret := "AKIAZ7XQ4WRT2LMN5KPB", "q8Xr2LmN4vB7kP1sT9wZ3yH6jD0fG5aC8eR2uV4x"
	creds := filepath.Join(sshd.Dir, "credentials")
	if err := os.WriteFile(creds, []byte("[default]\naws_access_key_id = "+keyID+"\naws_secret_access_key = "+secret+"\nnaïve ✓ done\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg := fmt.Sprintf(`
[gateway]
data_dir = ".tollgate"
[dev]
issuer_listen = %q
[admin]
listen = %q
groups = ["auditors"]
[audit]
store = "embedded"
[audit.embedded]
dir = "clickhouse"
[[plugins]]
name = "redact"
path = %q
%s[[access]]
name = "dev-tokens"
issuers = ["dev"]
targets = ["box"]
`, addrs["issuer"], addrs["admin"], testenv.BuildWasm(t, "plugins/redact"), sshBox(t, dir, sshd, addrs["ssh"], ""))
	env := []string{embedded.EnvLibPath + "=" + testenv.ChDBLib(t)}
	// Compiling the redact plugin and opening chDB take a while on shared
	// cores: a generous bound, not a measure.
	gw := testenv.StartGateway(t, testenv.GatewayOptions{Config: cfg, Dir: dir, Dev: true, Env: env,
		Wait: []string{addrs["issuer"], addrs["ssh"], addrs["admin"]}, ReadyTimeout: 2 * time.Minute})
	tok, errOut, code := gw.Run("token", "-c", gw.Config, "--sub", "agent@example.com")
	if code != 0 {
		t.Fatalf("token: %s", errOut)
	}
	_, port, _ := strings.Cut(addrs["ssh"], ":")
	askpass := filepath.Join(testenv.ModuleRoot(t), "examples", "ssh", "tollgate-askpass")
	cmd := exec.Command("ssh", "-F", "/dev/null", "-p", port, "-l", "box",
		"-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
		"-o", "PreferredAuthentications=keyboard-interactive", "-o", "PubkeyAuthentication=no",
		"-o", "NumberOfPasswordPrompts=1", "-o", "ConnectTimeout=10",
		"127.0.0.1", "--", "cat", creds)
	cmd.Env = append(os.Environ(), "SSH_ASKPASS="+askpass, "SSH_ASKPASS_REQUIRE=force", "DISPLAY=:0", "TOLLGATE_TOKEN="+strings.TrimSpace(tok))
	var out, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &stderr
	if err := cmd.Run(); err != nil || !strings.Contains(out.String(), "aws_access_key_id") {
		t.Fatalf("ssh: %v\nstdout: %s\nstderr: %s\n%s", err, out.String(), stderr.String(), gw.Output())
	}
	if strings.Contains(out.String(), keyID) || strings.Contains(out.String(), secret) {
		t.Fatalf("the secret reached the client: %q", out.String())
	}

	audTok, errOut, code := gw.Run("token", "-c", gw.Config, "--sub", "auditor@example.com", "--group", "auditors")
	if code != 0 {
		t.Fatalf("token: %s", errOut)
	}
	gw.Env = append(gw.Env, "TOLLGATE_TOKEN="+strings.TrimSpace(audTok))
	var id string
	for deadline := time.Now().Add(30 * time.Second); ; {
		got, errOut, code := gw.Run("audit", "sql", "-c", gw.Config, "--format", "tsv",
			"SELECT toString(session_id) FROM recordings GROUP BY session_id")
		if lines := strings.Split(strings.TrimSpace(got), "\n"); code == 0 && len(lines) == 2 {
			id = lines[1]
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no recording in the store: exit %d\n%s%s\n%s", code, got, errOut, gw.Output())
		}
		time.Sleep(200 * time.Millisecond)
	}

	castFile := filepath.Join(dir, "out.cast")
	if got, errOut, code := gw.Run("replay", "-c", gw.Config, id, "--cast", castFile); code != 0 {
		t.Fatalf("replay --cast: exit %d\n%s%s", code, got, errOut)
	}
	b, err := os.ReadFile(castFile)
	if err != nil {
		t.Fatal(err)
	}
	if first, _, _ := strings.Cut(string(b), "\n"); !strings.HasPrefix(first, `{"version":2,"width":80,"height":24,"timestamp":`) {
		t.Errorf("header line %s", first)
	}
	for _, s := range []string{keyID, secret, secret[8:24]} {
		if bytes.Contains(b, []byte(s)) {
			t.Fatalf("the .cast file holds a secret:\n%s", b)
		}
	}
	c, err := cast.Decode(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	if c.Output() != out.String() {
		t.Fatalf("the .cast output differs from what the client received:\n got %q\nwant %q", c.Output(), out.String())
	}
	// Played in the terminal (fast, pauses cut): the same bytes.
	played, errOut, code := gw.Run("replay", "-c", gw.Config, "--speed", "50", "--idle-limit", "10ms", id)
	if code != 0 || played != out.String() {
		t.Fatalf("replay: exit %d %s\n got %q\nwant %q", code, errOut, played, out.String())
	}
	if _, errOut, code := gw.Run("replay", "-c", gw.Config, "00000000-0000-4000-8000-000000000000"); code == 0 || !strings.Contains(errOut, "no recording") {
		t.Errorf("replay of an unknown session: exit %d %s", code, errOut)
	}

	if err := gw.Stop(); err != nil {
		t.Fatal(err)
	}
	vout, errOut, code := gw.Run("audit", "verify", "-c", gw.Config, "--session", id)
	if code != 0 || !strings.Contains(vout, id+"\tcomplete\t") {
		t.Fatalf("audit verify --session: exit %d\n%s%s", code, vout, errOut)
	}
}

// On the file store the recording is its session.recording rows:
// `gateway replay --file` assembles them, a chunk lost to a full spool
// is named on stderr, and --cast - writes the cast to stdout.
func TestReplayFromTheFileStore(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "audit.jsonl")
	f, err := audit.OpenFile(path)
	if err != nil {
		t.Fatal(err)
	}
	s := (&gate.Deps{GatewayID: "gw", Recorder: f}).NewSession(gate.SessionInfo{Protocol: "ssh"})
	if err := s.Open(s.Row("")); err != nil {
		t.Fatal(err)
	}
	s.Recording().Output([]byte("first ✓\r\n"))
	s.Recording().Flush()
	s.Recording().Output([]byte("second\r\n"))
	s.Close("ok", "")
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	out, errOut, code := testenv.RunGateway(t, dir, nil, "replay", s.ID(), "--file", path, "--cast", "-")
	if code != 0 {
		t.Fatalf("replay: exit %d %s", code, errOut)
	}
	c, err := cast.Decode(strings.NewReader(out))
	if err != nil || c.Output() != "first ✓\r\nsecond\r\n" {
		t.Fatalf("cast %v %q", err, out)
	}
	// Chunk 0 in minimal form (the spool was full): a gap, said so.
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var lines []string
	for _, l := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		r, err := audit.DecodeFileLine([]byte(l))
		if err != nil {
			t.Fatal(err)
		}
		if r.Kind == audit.KindRecording && r.Request["chunk"] == "0" {
			r = audit.Minimal(r)
		}
		line, _ := audit.EncodeFileLine(r)
		lines = append(lines, string(line))
	}
	os.WriteFile(path, []byte(strings.Join(lines, "\n")+"\n"), 0o600)
	played, errOut, code := testenv.RunGateway(t, dir, nil, "replay", "--file", path, "--idle-limit", "1ms", s.ID())
	if code != 0 || played != "second\r\n" || !strings.Contains(errOut, "missing (numbers [0])") {
		t.Fatalf("replay with a gap: exit %d %q %s", code, played, errOut)
	}
	if _, errOut, code := testenv.RunGateway(t, dir, nil, "replay", "--file", path); code != 2 {
		t.Errorf("replay without a session: exit %d %s", code, errOut)
	}
}
