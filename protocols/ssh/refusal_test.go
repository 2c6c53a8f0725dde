package ssh_test

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	xssh "golang.org/x/crypto/ssh"

	"github.com/tollgate-dev/tollgate/host/audit"
	"github.com/tollgate-dev/tollgate/host/gate"
	"github.com/tollgate-dev/tollgate/host/identity"
	"github.com/tollgate-dev/tollgate/host/plugin"
	"github.com/tollgate-dev/tollgate/internal/testenv"
	tssh "github.com/tollgate-dev/tollgate/protocols/ssh"
)

// Every way in that must fail does, with a message the client shows and
// a row that says why; no byte the client received and no row carries
// the agent's token or the gateway's key.
func TestRefusals(t *testing.T) {
	e := startEnv(t, envOptions{})
	good := e.token(t, "agents")
	expired, err := e.iss.Mint(identity.MintOptions{Subject: "agent", Groups: []string{"agents"}, TTL: time.Minute, Now: time.Now().Add(-time.Hour)})
	must(t, err)
	root := e.sshd.User
	var received [][]byte
	for _, tc := range []struct {
		name, token, user, command string
		code                       int
		client, row                string // what the client's stderr and the row's error say
	}{
		{"wrong token", "not-a-jwt", root + "@box", "true", 255, "tollgate: authentication failed: ", "authentication failed: "},
		{"expired token", expired, root + "@box", "true", 255, "tollgate: authentication failed: ", "expired"},
		{"no group", e.token(t, "visitors"), root + "@box", "true", 255, "tollgate: access denied: login " + root + " on target box: no access rule grants target box", "access denied"},
		{"unknown target", good, root + "@nowhere", "true", 255, "tollgate: unknown target nowhere", "unknown target nowhere"},
		{"login not allowed", good, "nobody@box", "true", 255, "tollgate: access denied: login nobody on target box: no access rule allows exec /nobody on target box", "access denied"},
		{"bad user", good, "root@box@", "true", 255, "tollgate: the SSH user must be login@target or target", "not a target name"},
		{"host key mismatch", good, root + "@mitm", "echo should-not-run", 255, "tollgate: target mitm: the upstream's host key CHANGED: it presented ssh-ed25519 SHA256:", "host key CHANGED"},
		{"upstream down", good, root + "@down", "echo should-not-run", 255, "tollgate: target down is unreachable (connection refused)", "unreachable"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := e.ssh(t, tc.token, tc.user, nil, tc.command)
			received = append(received, r.stdout, r.stderr)
			if r.code != tc.code || !strings.Contains(string(r.stderr), tc.client) || bytes.Contains(r.stdout, []byte("should-not-run")) {
				t.Fatalf("code %d (want %d) stdout %q stderr %q (want %q)", r.code, tc.code, r.stdout, r.stderr, tc.client)
			}
			e.rec.Wait(t, "a row saying "+tc.row, func(r audit.Row) bool {
				return (r.Kind == audit.KindSessionOpen || r.Kind == "ssh.exec") && strings.Contains(r.Error, tc.row)
			})
		})
	}
	// An unreachable target and a changed host key are upstream errors.
	for _, target := range []string{"down", "mitm"} {
		if n := e.counter(t, "tollgate_upstream_errors_total", map[string]string{"protocol": "ssh", "target": target}); n != 1 {
			t.Errorf("tollgate_upstream_errors_total for target %s = %v, want 1", target, n)
		}
	}
	// The host key message names both keys' fingerprints, never more.
	secrets := []string{good, expired, string(e.sshd.ClientKeyPEM)}
	for _, line := range strings.Split(string(e.sshd.ClientKeyPEM), "\n") {
		if len(line) > 20 && !strings.HasPrefix(line, "-----") {
			secrets = append(secrets, line)
		}
	}
	rows, _ := json.Marshal(e.rec.Rows())
	for _, s := range secrets {
		for _, b := range received {
			if bytes.Contains(b, []byte(s)) {
				t.Fatalf("a credential reached the client: %q", b)
			}
		}
		if bytes.Contains(rows, []byte(s)) {
			t.Fatalf("a credential is in a row: %s", rows)
		}
	}
	for _, r := range e.rec.Rows() {
		if r.Kind == audit.KindSessionOpen && r.Verdict == "deny" {
			verifyComplete(t, e.sessionRows(t, func(o audit.Row) bool { return o.SessionID == r.SessionID }))
		}
	}

	// The password method works as keyboard-interactive does.
	cmd := e.sshCmd(good, root+"@box", "echo via-password")
	for i, a := range cmd.Args {
		if a == "PreferredAuthentications=keyboard-interactive" {
			cmd.Args[i] = "PreferredAuthentications=password"
		}
	}
	if out, err := cmd.Output(); err != nil || string(out) != "via-password\n" {
		t.Fatalf("password auth: %q %v", out, err)
	}
	// The target alone takes the default login.
	if r := e.ssh(t, good, "box", nil, "whoami"); r.code != 0 || strings.TrimSpace(string(r.stdout)) != root {
		t.Fatalf("default login: code %d stdout %q stderr %q", r.code, r.stdout, r.stderr)
	}
}

// Everything but exec and shells is refused with a message: sftp, local
// and remote port forwarding, X11 and agent forwarding.
func TestOtherChannelsRefused(t *testing.T) {
	e := startEnv(t, envOptions{})
	tok := e.token(t, "agents")
	user := e.sshd.User + "@box"

	if r := e.ssh(t, tok, user, nil, "-s", "sftp"); r.code == 0 || !strings.Contains(string(r.stderr), `tollgate: the "sftp" subsystem is not allowed`) {
		t.Fatalf("sftp: code %d stderr %q", r.code, r.stderr)
	}

	c, err := e.goClient(t, tok, user)
	must(t, err)
	defer c.Close()
	if _, err := c.Dial("tcp", e.sshd.Addr); err == nil || !strings.Contains(err.Error(), "tollgate: port forwarding is not allowed") {
		t.Fatalf("direct-tcpip: %v", err)
	}
	if ln, err := c.Listen("tcp", "127.0.0.1:0"); err == nil {
		ln.Close()
		t.Fatal("remote forwarding was accepted")
	}
	s, err := c.NewSession()
	must(t, err)
	if ok, _ := s.SendRequest("x11-req", true, xssh.Marshal(struct {
		Single        bool
		Proto, Cookie string
		Screen        uint32
	}{false, "MIT-MAGIC-COOKIE-1", "00", 0})); ok {
		t.Fatal("x11-req accepted")
	}
	if ok, _ := s.SendRequest("auth-agent-req@openssh.com", true, nil); ok {
		t.Fatal("agent forwarding accepted")
	}
	// The channel still runs a command afterwards.
	out, err := s.Output("echo still-fine")
	if err != nil || string(out) != "still-fine\n" {
		t.Fatalf("exec after refusals: %q %v", out, err)
	}
	c.Close()
	rows := e.sessionRows(t, func(r audit.Row) bool { return true })
	var refused []string
	for _, r := range e.rec.Rows() {
		if (r.Kind == "ssh.channel" || r.Kind == "ssh.request") && r.Verdict == "deny" {
			refused = append(refused, r.Request["type"])
		}
	}
	for _, want := range []string{"subsystem sftp", "direct-tcpip", "tcpip-forward", "x11-req", "auth-agent-req@openssh.com"} {
		if !strings.Contains(strings.Join(refused, "|"), want) {
			t.Errorf("no refusal row for %s (rows for %q)", want, refused)
		}
	}
	verifyComplete(t, rows)
}

// Past max_auth_failures from one address, even a good token is refused
// until the window passes.
func TestAuthFailuresLimited(t *testing.T) {
	e := startEnv(t, envOptions{listener: func(o *tssh.ListenerOptions) { o.MaxAuthFailures = 2; o.AuthFailureWindow = time.Hour }})
	user := e.sshd.User + "@box"
	for range 2 {
		if r := e.ssh(t, "wrong", user, nil, "true"); r.code != 255 || !strings.Contains(string(r.stderr), "authentication failed") {
			t.Fatalf("wrong token: code %d stderr %q", r.code, r.stderr)
		}
	}
	r := e.ssh(t, e.token(t, "agents"), user, nil, "echo let-in")
	if r.code != 255 || bytes.Contains(r.stdout, []byte("let-in")) || !strings.Contains(string(r.stderr), "tollgate: too many failed authentications from 127.0.0.1") {
		t.Fatalf("after the limit: code %d stdout %q stderr %q", r.code, r.stdout, r.stderr)
	}
}

// The host key is created once, 0600, and the same key is served after a
// restart.
func TestHostKeyPersisted(t *testing.T) {
	path := filepath.Join(t.TempDir(), "keys", "host_ed25519")
	a, err := tssh.LoadOrCreateHostKey(path)
	must(t, err)
	st, err := os.Stat(path)
	must(t, err)
	if st.Mode().Perm() != 0o600 || a.PublicKey().Type() != xssh.KeyAlgoED25519 {
		t.Fatalf("mode %v, type %s", st.Mode(), a.PublicKey().Type())
	}
	b, err := tssh.LoadOrCreateHostKey(path)
	must(t, err)
	if !bytes.Equal(a.PublicKey().Marshal(), b.PublicKey().Marshal()) {
		t.Fatal("a second start made a new key")
	}
	os.WriteFile(path, []byte("garbage"), 0o600)
	if _, err := tssh.LoadOrCreateHostKey(path); err == nil {
		t.Fatal("a corrupt host key was accepted")
	}
}

// New refuses options that cannot work, before anything listens.
func TestOptionsChecked(t *testing.T) {
	deps := gate.Deps{Auth: identity.NewVerifier(nil, 1, identity.Options{}), Recorder: &testenv.Recorder{}}
	lo := tssh.ListenerOptions{Listen: "127.0.0.1:0", HostKey: filepath.Join(t.TempDir(), "k")}
	key := tssh.SecretValue("env:KEY", "not a key")
	for name, tc := range map[string]struct {
		t    tssh.TargetOptions
		want string
	}{
		"no address":     {tssh.TargetOptions{Password: tssh.SecretValue("env:PW", "pw"), InsecureIgnoreHostKey: true}, "address is required"},
		"no credential":  {tssh.TargetOptions{Address: "h:22", InsecureIgnoreHostKey: true}, "a key or a password is required"},
		"bad key":        {tssh.TargetOptions{Address: "h:22", Key: key, InsecureIgnoreHostKey: true}, "key env:KEY"},
		"no known_hosts": {tssh.TargetOptions{Address: "h:22", Password: tssh.SecretValue("env:PW", "pw")}, "known_hosts lines are required"},
		"unresolved":     {tssh.TargetOptions{Address: "h:22", Password: tssh.Secret{Ref: "env:PW"}, InsecureIgnoreHostKey: true}, "not resolved"},
		"bad line":       {tssh.TargetOptions{Address: "h:22", Password: tssh.SecretValue("env:PW", "pw"), KnownHosts: []string{"h ssh-ed25519 !!"}}, "known_hosts"},
	} {
		_, err := tssh.New("ssh", lo, map[string]tssh.TargetOptions{"t": tc.t}, deps)
		if err == nil || !strings.Contains(err.Error(), tc.want) || strings.Contains(err.Error(), "not a key") {
			t.Errorf("%s: %v, want %q", name, err, tc.want)
		}
	}
}

// No goroutine is left behind after 100 sessions (and a shutdown).
func TestNoGoroutinesLeftAfter100Sessions(t *testing.T) {
	e := startEnv(t, envOptions{chain: plugin.Empty{}})
	tok := e.token(t, "agents")
	// A first session warms up what stays (the verifier's keep-alive
	// connection to the issuer's JWKS).
	c, err := e.goClient(t, tok, e.sshd.User+"@box")
	must(t, err)
	c.Close()
	checkNoLeak(t, runtime.NumGoroutine()) // settle
	base := runtime.NumGoroutine()
	start := time.Now()
	// Ten clients at a time, ten sessions each.
	var wg sync.WaitGroup
	for w := range 10 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range 10 {
				i := w*10 + j
				c, err := e.goClient(t, tok, e.sshd.User+"@box")
				if err != nil {
					t.Errorf("session %d: %v", i, err)
					return
				}
				s, err := c.NewSession()
				if err != nil {
					t.Errorf("session %d: %v", i, err)
					c.Close()
					return
				}
				out, err := s.Output("echo ok")
				if err != nil || string(out) != "ok\n" {
					t.Errorf("session %d: %q %v", i, out, err)
				}
				if j == 0 {
					// Some clients go away in the middle of a command.
					if s2, err := c.NewSession(); err == nil {
						s2.Start("sleep 30")
					}
				}
				c.Close()
			}
		}()
	}
	wg.Wait()
	if t.Failed() {
		return
	}
	t.Logf("100 sessions in %v", time.Since(start))
	checkNoLeak(t, base)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	must(t, e.l.Shutdown(ctx))
	if _, err := net.DialTimeout("tcp", e.l.Addr().String(), time.Second); err == nil {
		t.Fatal("still listening after Shutdown")
	}
}

// insecure_ignore_host_key connects whatever key the upstream shows, and
// says so in the log on every connection.
func TestInsecureHostKeyWarnedEveryConnection(t *testing.T) {
	var logs lockedBuffer
	e := startEnv(t, envOptions{log: slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelWarn}))})
	tok := e.token(t, "agents")
	for i := range 2 {
		if r := e.ssh(t, tok, e.sshd.User+"@lax", nil, "echo ok"); r.code != 0 || string(r.stdout) != "ok\n" {
			t.Fatalf("connection %d: code %d stdout %q stderr %q", i, r.code, r.stdout, r.stderr)
		}
	}
	if n := strings.Count(logs.String(), "upstream host key NOT verified"); n != 2 {
		t.Fatalf("%d warnings for 2 connections:\n%s", n, logs.String())
	}
}

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// A password target's password is blanked wherever the target prints it
// (raw or base64, on stdout and stderr, cut anywhere), before any plugin
// sees the output, and the row counts it.
func TestTargetPasswordScrubbed(t *testing.T) {
	e := startEnv(t, envOptions{chain: holdPolicy{}})
	pw := "Upstream-Pa55-7731"
	tssh.ScrubForTest(e.l, "box", pw)
	r := e.ssh(t, e.token(t, "agents"), e.sshd.User+"@box", nil,
		"printf 'pw=Upstream-Pa5'; sleep 0.2; printf '5-7731\\n'; echo "+pw+" >&2; printf %s "+pw+" | base64")
	if r.code != 0 || strings.Contains(string(r.stdout)+string(r.stderr), "Pa55-7731") ||
		strings.Contains(string(r.stdout), "VXBzdHJlYW0tUGE1NS03NzMx") || !strings.HasPrefix(string(r.stdout), "pw=******************\n") {
		t.Fatalf("code %d stdout %q stderr %q", r.code, r.stdout, r.stderr)
	}
	row := e.rec.Wait(t, "exec row", func(r audit.Row) bool { return r.Kind == "ssh.exec" })
	if row.Annotations["ssh.credential_scrubbed"] != "3" {
		t.Errorf("row annotations: %v", row.Annotations)
	}
}
