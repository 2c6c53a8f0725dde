package ssh_test

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"strings"
	"testing"

	xssh "golang.org/x/crypto/ssh"

	"github.com/tollgate-dev/tollgate/host/audit"
)

// exec through the gateway with the real ssh client: output, exit
// statuses 0 and 3, a command killed by a signal (the same exit as the
// client shows when it talks to sshd directly, and the signal's name to
// a client that reads it), one row per command.
func TestExecOutputAndExitCodes(t *testing.T) {
	e := startEnv(t, envOptions{})
	tok := e.token(t, "agents")
	user := e.sshd.User + "@box"

	r := e.ssh(t, tok, user, nil, "--", "echo", "hello", "from", "$(hostname)", ";", "echo", "err", ">&2")
	if r.code != 0 || !strings.HasPrefix(string(r.stdout), "hello from ") || string(r.stderr) != "err\n" {
		t.Fatalf("echo: code %d stdout %q stderr %q", r.code, r.stdout, r.stderr)
	}
	if r := e.ssh(t, tok, user, nil, "exit 3"); r.code != 3 {
		t.Fatalf("exit 3: code %d stderr %q", r.code, r.stderr)
	}
	gw := e.ssh(t, tok, user, nil, "kill -KILL $$")
	direct := e.direct(t, "kill -KILL $$")
	if gw.code != direct.code {
		t.Fatalf("killed: through the gateway code %d stderr %q; direct code %d stderr %q", gw.code, gw.stderr, direct.code, direct.stderr)
	}

	// The signal's name, as a client sees it.
	c, err := e.goClient(t, tok, user)
	must(t, err)
	defer c.Close()
	s, err := c.NewSession()
	must(t, err)
	err = s.Run("kill -TERM $$")
	var ee *xssh.ExitError
	if !errors.As(err, &ee) || ee.Signal() != "TERM" {
		t.Fatalf("kill -TERM: %v", err)
	}
	s, err = c.NewSession()
	must(t, err)
	out, err := s.Output("printf '%s' \"$USER\"")
	if err != nil || string(out) != e.sshd.User {
		t.Fatalf("second exec on one connection: %q %v", out, err)
	}
	c.Close()

	rows := e.sessionRows(t, func(r audit.Row) bool { return true })
	execs := rowsOf(rows, "ssh.exec")
	if len(execs) != 1 || execs[0].Status != "exit 0" || execs[0].Verdict != "allow" ||
		!strings.Contains(execs[0].Request["command"], "echo hello from $(hostname)") || execs[0].ResponseBytes == 0 {
		t.Fatalf("first session's exec rows: %+v", execs)
	}
	if argv := execs[0].Request["argv"]; argv != `["echo","hello","from","$(hostname)",";","echo","err",">&","2"]` {
		t.Errorf("argv: %s", argv)
	}
	if rows[0].Subject != "agent" || rows[0].Target != "box" || rows[0].AccessRule != "agents" || rows[0].Claims["repository"] != "acme/app" {
		t.Errorf("open row: %+v", rows[0])
	}
	verifyComplete(t, rows)
	want := map[string]bool{"exit 3": false, "signal KILL": false, "signal TERM": false}
	for _, r := range e.rec.Rows() {
		if _, ok := want[r.Status]; ok && r.Kind == "ssh.exec" {
			want[r.Status] = true
		}
	}
	for st, seen := range want {
		if !seen {
			t.Errorf("no ssh.exec row with status %q", st)
		}
	}
}

// direct runs a command on the sshd with the real client and the key,
// without the gateway: the reference the gateway must match.
func (e *env) direct(t testing.TB, command string) result {
	t.Helper()
	_, port, _ := strings.Cut(e.sshd.Addr, ":")
	cmd := e.sshCmd("", e.sshd.User, "--", command)
	args := []string{"-F", "/dev/null", "-p", port, "-l", e.sshd.User, "-i", e.sshd.ClientKeyFile,
		"-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null", "-o", "LogLevel=ERROR", "-o", "BatchMode=yes",
		"127.0.0.1", "--", command}
	cmd.Args = append([]string{"ssh"}, args...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	var ee interface{ ExitCode() int }
	if errors.As(err, &ee) {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return result{out.Bytes(), errb.Bytes(), code}
}

// stdin passes through byte for byte, and output comes back byte for
// byte: 10 MiB of random bytes through `cat` and `sha256sum`.
func TestStdinTenMiBByteExact(t *testing.T) {
	e := startEnv(t, envOptions{chain: holdPolicy{}}) // a Go chain that sees every output chunk
	tok := e.token(t, "agents")
	data := make([]byte, 10<<20)
	rand.Read(data)
	sum := sha256.Sum256(data)
	r := e.ssh(t, tok, e.sshd.User+"@box", data, "cat")
	if r.code != 0 || !bytes.Equal(r.stdout, data) {
		t.Fatalf("cat: code %d, %d bytes back (want %d), equal %v, stderr %q", r.code, len(r.stdout), len(data), bytes.Equal(r.stdout, data), r.stderr)
	}
	r = e.ssh(t, tok, e.sshd.User+"@box", data, "sha256sum")
	if got := strings.Fields(string(r.stdout)); r.code != 0 || len(got) == 0 || got[0] != hex.EncodeToString(sum[:]) {
		t.Fatalf("sha256sum upstream: %q (want %x), stderr %q", r.stdout, sum, r.stderr)
	}
	row := e.rec.Wait(t, "cat row", func(r audit.Row) bool { return r.Kind == "ssh.exec" && r.Request["command"] == "cat" })
	if row.RequestBytes != int64(len(data)) || row.ResponseBytes != int64(len(data)) {
		t.Errorf("cat row bytes: in %d out %d, want %d", row.RequestBytes, row.ResponseBytes, len(data))
	}
}
