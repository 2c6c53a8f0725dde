package ssh_test

import (
	"bytes"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tollgate-dev/tollgate/host/audit"
	tssh "github.com/tollgate-dev/tollgate/protocols/ssh"
)

// A file holding an AWS key pair and GitHub tokens, one of them across
// the 32 KiB boundary between two of the sftp client's reads with -B
// 32768, another across the boundary of its default reads (255 KiB, what
// sftp-server's limits allow), downloaded with the real sftp client
// (which sends many reads at a time) through the real redact plugin: on a target with sftp_mask the secrets arrive
// as '*' and every other byte as it is, the length unchanged; on a
// target without, byte for byte. No row and no log line holds a secret;
// the read row counts what was masked.
func TestSFTPMask(t *testing.T) {
	logs := &lockedBuffer{}
	e := startEnv(t, envOptions{chain: wasmChain(t), log: slog.New(slog.NewTextHandler(logs, nil)), targets: func(ts map[string]tssh.TargetOptions) {
		box := ts["box"]
		box.SFTP, box.SFTPMask = true, true
		ts["box"] = box
		lax := ts["lax"]
		lax.SFTP = true
		ts["lax"] = lax
	}})
	keyID, secret := "AKIAZ7XQ4WRT2LMN5KPB", "q8Xr2LmN4vB7kP1sT9wZ3yH6jD0fG5aC8eR2uV4x"
	token, across := "ghp_R7tK2mQ9xL4vN8bW3zJ6pF1sH5dG0cY2aE7u", "ghp_W3nP8sD1fK6hJ2lZ9xC4vB7mQ5tR0yU3iO8e"
	across2 := "ghp_Q2wE9rT4yU7iO1pA5sD8fG3hJ6kL0zX4cV9b"
	var b strings.Builder
	line := 0
	filler := func(upTo int) {
		for b.Len() < upTo {
			line++
			fmt.Fprintf(&b, "line %05d: the quick brown fox jumps over the lazy dog\n", line)
		}
	}
	var spans [][2]int
	put := func(prefix, s string) {
		b.WriteString(prefix)
		spans = append(spans, [2]int{b.Len(), b.Len() + len(s)})
		b.WriteString(s)
		b.WriteString("\n")
	}
	filler(1000)
	b.WriteString("[default]\n")
	put("aws_access_key_id = ", keyID)
	put("aws_secret_access_key = ", secret)
	filler(32<<10 - 200)
	// The token starts 20 bytes before the second read's offset.
	b.WriteString(strings.Repeat("x", 32<<10-20-len("GITHUB_TOKEN=")-b.Len()) + "\n")
	put("GITHUB_TOKEN=", across)
	filler(70 << 10)
	put("token: ", token)
	filler(255<<10 - 200)
	b.WriteString(strings.Repeat("y", 255<<10-10-len("token: ")-b.Len()) + "\n")
	put("token: ", across2)
	filler(300<<10 + 123)
	data := []byte(b.String())
	if s := spans[2]; s[0] >= 32<<10 || s[1] <= 32<<10 {
		t.Fatalf("the token is not across the boundary: %v", s)
	}
	if s := spans[4]; s[0] >= 255<<10 || s[1] <= 255<<10 {
		t.Fatalf("the token is not across the boundary: %v", s)
	}
	all := []string{keyID, secret, token, across, across2}
	remote := filepath.Join(e.sshd.Dir, "secrets.txt")
	must(t, os.WriteFile(remote, data, 0o600))
	tok := e.token(t, "agents")
	dir := t.TempDir()

	inSpan := func(x int) bool {
		for _, s := range spans {
			if x >= s[0] && x < s[1] {
				return true
			}
		}
		return false
	}
	for _, args := range [][]string{{"-B", "32768"}, nil} {
		masked := filepath.Join(dir, "masked.txt")
		r := e.sftp(t, tok, e.sshd.User+"@box", "get "+remote+" "+masked+"\n", args...)
		if r.code != 0 {
			t.Fatalf("sftp %q on box: code %d stdout %q stderr %q", args, r.code, r.stdout, r.stderr)
		}
		got, err := os.ReadFile(masked)
		must(t, err)
		if len(got) != len(data) {
			t.Fatalf("sftp %q: masked download: %d bytes, the file has %d", args, len(got), len(data))
		}
		for _, s := range append(all, keyID[4:16], secret[8:24], token[4:20], across[4:14], across[20:], across2[4:14], across2[20:]) {
			if bytes.Contains(got, []byte(s)) {
				t.Fatalf("sftp %q: secret %q reached the client", args, s)
			}
		}
		for x := range data {
			if got[x] != data[x] && (got[x] != '*' || !inSpan(x)) {
				t.Fatalf("sftp %q: byte %d: %q, the file has %q", args, x, got[x], data[x])
			}
		}
		for _, s := range spans {
			if m := got[s[0]:s[1]]; !bytes.Equal(m, bytes.Repeat([]byte{'*'}, len(m))) {
				t.Errorf("sftp %q: secret at %v arrived as %q", args, s, m)
			}
		}
		os.Remove(masked)
	}

	exact := filepath.Join(dir, "exact.txt")
	r := e.sftp(t, tok, e.sshd.User+"@lax", "get "+remote+" "+exact+"\n")
	if r.code != 0 {
		t.Fatalf("sftp on lax: code %d stdout %q stderr %q", r.code, r.stdout, r.stderr)
	}
	if got, err := os.ReadFile(exact); err != nil || !bytes.Equal(got, data) {
		t.Fatalf("unmasked download: %d bytes, equal %v, %v", len(got), bytes.Equal(got, data), err)
	}

	var reads []audit.Row
	for _, r := range e.rec.Rows() {
		if r.Target == "box" && r.Kind == tssh.KindSFTP {
			reads = append(reads, r)
		}
	}
	if len(reads) != 2 {
		t.Fatalf("read rows: %+v", reads)
	}
	for _, r := range reads {
		if r.Request["operation"] != "read" || r.Request["path"] != remote || r.Status != "ok" ||
			r.ResponseBytes != int64(len(data)) || r.Annotations["sftp.masked_values"] != "5" ||
			r.Annotations["sftp.masked_bytes"] != fmt.Sprint(len(keyID)+len(secret)+len(token)+len(across)+len(across2)) {
			t.Errorf("read row: %+v", r)
		}
	}
	lax := e.sessionRows(t, func(r audit.Row) bool { return r.Target == "lax" })
	if reads := rowsOf(lax, tssh.KindSFTP); len(reads) != 1 || reads[0].ResponseBytes != int64(len(data)) || reads[0].Annotations != nil {
		t.Errorf("unmasked read rows: %+v", reads)
	}
	for _, row := range e.rec.Rows() {
		j, _ := row.MarshalJSON()
		for _, s := range all {
			if bytes.Contains(j, []byte(s)) {
				t.Fatalf("a secret in a row: %s", j)
			}
		}
	}
	for _, s := range all {
		if strings.Contains(logs.String(), s) {
			t.Fatalf("a secret in the log: %s", logs.String())
		}
	}
}

// sftp_mask with no plugin that masks: file contents are refused (the
// client's read fails: OpenSSH's sftp shows "Failure", not the message)
// rather than passed unchecked, and the row says why.
func TestSFTPMaskNoPlugin(t *testing.T) {
	e := startEnv(t, envOptions{targets: func(ts map[string]tssh.TargetOptions) {
		box := ts["box"]
		box.SFTP, box.SFTPMask = true, true
		ts["box"] = box
	}})
	remote := filepath.Join(e.sshd.Dir, "plain.txt")
	must(t, os.WriteFile(remote, []byte("nothing secret\n"), 0o600))
	local := filepath.Join(t.TempDir(), "plain.txt")
	// -b: a failed get fails the client; BatchMode=no (first wins) keeps
	// askpass.
	r := e.sftp(t, e.token(t, "agents"), e.sshd.User+"@box", "get "+remote+" "+local+"\n", "-o", "BatchMode=no", "-b", "-")
	if got, _ := os.ReadFile(local); r.code == 0 || len(got) != 0 || !strings.Contains(string(r.stderr), "Failure") {
		t.Fatalf("sftp: code %d, %d bytes arrived; stderr %q", r.code, len(got), r.stderr)
	}
	rows := e.sessionRows(t, func(r audit.Row) bool { return r.Target == "box" })
	reads := rowsOf(rows, tssh.KindSFTP)
	if len(reads) != 1 || reads[0].ResponseBytes != 0 || !strings.Contains(reads[0].Error, "file contents withheld: no plugin masks file contents") {
		t.Errorf("read rows: %+v", reads)
	}
}
