package ssh_test

import (
	"bytes"
	"crypto/rand"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tollgate-dev/tollgate/host/audit"
	tssh "github.com/tollgate-dev/tollgate/protocols/ssh"
)

// sftp runs the real sftp client against the gateway with commands on
// stdin, and args before its own.
func (e *env) sftp(t testing.TB, token, user, commands string, args ...string) result {
	t.Helper()
	_, port, _ := net.SplitHostPort(e.l.Addr().String())
	args = append(args, "-F", "/dev/null", "-P", port, "-o", "User="+user,
		"-o", "UserKnownHostsFile="+e.knownHosts, "-o", "StrictHostKeyChecking=yes",
		"-o", "PreferredAuthentications=keyboard-interactive", "-o", "PubkeyAuthentication=no",
		"-o", "NumberOfPasswordPrompts=1", "-o", "ConnectTimeout=10", "127.0.0.1")
	cmd := exec.Command("sftp", args...)
	cmd.Env = append(os.Environ(), "SSH_ASKPASS="+e.askpass, "SSH_ASKPASS_REQUIRE=force", "DISPLAY=:0", "TOLLGATE_TOKEN="+token)
	cmd.Stdin = strings.NewReader(commands)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("sftp: %v", err)
	}
	return result{out.Bytes(), errb.Bytes(), code}
}

// sftp is refused on a target that does not allow it; on one that does
// (sftp = true), an upload, a download and a removal with the real sftp
// client go through byte for byte, each a row with its path, operation
// and bytes.
func TestSFTP(t *testing.T) {
	e := startEnv(t, envOptions{targets: func(ts map[string]tssh.TargetOptions) {
		box := ts["box"]
		box.SFTP = true
		ts["box"] = box
	}})
	tok := e.token(t, "agents")
	dir := t.TempDir()
	data := make([]byte, 100<<10+17)
	rand.Read(data)
	local := filepath.Join(dir, "local.bin")
	must(t, os.WriteFile(local, data, 0o600))
	remote := filepath.Join(e.sshd.Dir, "up.bin")
	back := filepath.Join(dir, "back.bin")

	r := e.sftp(t, tok, e.sshd.User+"@lax", "put "+local+" "+remote+"\n")
	if r.code == 0 || !strings.Contains(string(r.stderr), `tollgate: the "sftp" subsystem is not allowed`) {
		t.Fatalf("sftp on lax: code %d stdout %q stderr %q", r.code, r.stdout, r.stderr)
	}
	if _, err := os.Stat(remote); err == nil {
		t.Fatal("the refused upload arrived")
	}

	r = e.sftp(t, tok, e.sshd.User+"@box", "put "+local+" "+remote+"\nget "+remote+" "+back+"\nrename "+remote+" "+remote+".2\nrm "+remote+".2\n")
	if r.code != 0 {
		t.Fatalf("sftp on box: code %d stdout %q stderr %q", r.code, r.stdout, r.stderr)
	}
	got, err := os.ReadFile(back)
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("download: %d bytes, equal %v, %v", len(got), bytes.Equal(got, data), err)
	}
	if _, err := os.Stat(remote + ".2"); err == nil {
		t.Fatal("rm did not remove the file")
	}
	rows := e.sessionRows(t, func(r audit.Row) bool { return r.Target == "box" })
	verifyComplete(t, rows)
	var ops []string
	for _, r := range rowsOf(rows, tssh.KindSFTP) {
		ops = append(ops, r.Request["operation"]+" "+r.Request["path"]+" "+r.Request["to"]+" "+r.Status)
		switch r.Request["operation"] {
		case "write":
			if r.Request["path"] != remote || r.RequestBytes != int64(len(data)) || r.ResponseBytes != 0 || !strings.Contains(r.Request["flags"], "create") {
				t.Errorf("upload row: %+v", r)
			}
		case "read":
			if r.Request["path"] != remote || r.ResponseBytes != int64(len(data)) || r.RequestBytes != 0 {
				t.Errorf("download row: %+v", r)
			}
		}
	}
	want := []string{"write " + remote + "  ok", "read " + remote + "  ok", "rename " + remote + " " + remote + ".2 ok", "remove " + remote + ".2  ok"}
	for _, w := range want {
		found := false
		for _, o := range ops {
			found = found || o == w
		}
		if !found {
			t.Errorf("no sftp row %q; rows %q", w, ops)
		}
	}
	if sub := rowsOf(rows, tssh.KindSubsystem); len(sub) != 1 || sub[0].Request["name"] != "sftp" || sub[0].Status != "exit 0" || sub[0].RequestBytes < int64(len(data)) {
		t.Errorf("subsystem row: %+v", sub)
	}
}
