package ssh_test

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/tollgate-dev/tollgate/host/audit"
	"github.com/tollgate-dev/tollgate/host/audit/cast"
)

// -update rewrites testdata/session.json (audittest.Golden reads it).
var _ = flag.Bool("update", false, "rewrite golden files")

// recordingOf assembles the recording a session's rows hold, failing on
// a gap.
func recordingOf(t *testing.T, rows []audit.Row) *cast.Cast {
	t.Helper()
	var chunks []cast.Chunk
	for _, r := range rowsOf(rows, audit.KindRecording) {
		n, err := strconv.Atoi(r.Request["chunk"])
		if err != nil {
			t.Fatalf("chunk %q: %v", r.Request["chunk"], err)
		}
		chunks = append(chunks, cast.Chunk{Number: n, Text: r.Request["events"]})
	}
	c, gaps, err := cast.Assemble(chunks)
	if err != nil || len(gaps) > 0 {
		t.Fatalf("recording: %v, gaps %v", err, gaps)
	}
	return c
}

// The recording holds what the client received, after redaction, byte for
// byte (a secret the remote printed never), and what was piped in.
func TestRecordingIsWhatTheClientReceived(t *testing.T) {
	e := startEnv(t, envOptions{chain: wasmChain(t)})
	keyID, secret := "AKIAZ7XQ4WRT2LMN5KPB", "q8Xr2LmN4vB7kP1sT9wZ3yH6jD0fG5aC8eR2uV4x"
	creds := filepath.Join(e.sshd.Dir, "credentials")
	must(t, os.WriteFile(creds, []byte("[default]\naws_access_key_id = "+keyID+"\naws_secret_access_key = "+secret+"\nnaïve ✓\n"), 0o600))
	tok := e.token(t, "agents")
	user := e.sshd.User + "@box"

	stdin := []byte("piped line one\npiped ✓ two\n")
	r := e.ssh(t, tok, user, stdin, "cat "+creds+"; cat")
	if r.code != 0 || !bytes.Contains(r.stdout, []byte("aws_access_key_id")) || !bytes.HasSuffix(r.stdout, stdin) {
		t.Fatalf("code %d stdout %q stderr %q", r.code, r.stdout, r.stderr)
	}
	rows := e.sessionRows(t, func(audit.Row) bool { return true })
	verifyComplete(t, rows)
	if len(rowsOf(rows, audit.KindRecording)) == 0 {
		t.Fatal("no recording rows")
	}
	for _, row := range rows {
		b, _ := row.MarshalJSON()
		for _, s := range []string{keyID, secret, secret[8:24]} {
			if bytes.Contains(b, []byte(s)) {
				t.Fatalf("a secret in a %s row: %s", row.Kind, b)
			}
		}
	}
	c := recordingOf(t, rows)
	if got := c.Output(); got != string(r.stdout) {
		t.Fatalf("recorded output differs from what the client received:\n got %q\nwant %q", got, r.stdout)
	}
	var in strings.Builder
	for _, ev := range c.Events {
		if ev.Code == cast.Input {
			in.WriteString(ev.Data)
		}
	}
	if in.String() != string(stdin) {
		t.Fatalf("recorded input %q, want %q", in.String(), stdin)
	}
	// The recording closes before the session: no row after the close.
	if last := rows[len(rows)-1]; last.Kind != audit.KindSessionClose {
		t.Fatalf("last row %s", last.Kind)
	}
}

// A window-change on an exec channel is a resize event.
func TestRecordingResize(t *testing.T) {
	e := startEnv(t, envOptions{})
	tok := e.token(t, "agents")
	cl, err := e.goClient(t, tok, e.sshd.User+"@box")
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	sess, err := cl.NewSession()
	if err != nil {
		t.Fatal(err)
	}
	in, err := sess.StdinPipe()
	must(t, err)
	var out bytes.Buffer
	sess.Stdout = &out
	must(t, sess.Start("cat"))
	must(t, sess.WindowChange(33, 101)) // rows, cols
	in.Write([]byte("after resize\n"))
	in.Close()
	must(t, sess.Wait())
	cl.Close()
	rows := e.sessionRows(t, func(audit.Row) bool { return true })
	c := recordingOf(t, rows)
	found := false
	for _, ev := range c.Events {
		found = found || ev.Code == cast.Resize && ev.Data == "101x33"
	}
	if !found || c.Output() != out.String() {
		t.Fatalf("events %+v; output %q", c.Events, out.String())
	}
}
