package ssh_test

import (
	"bytes"
	"crypto/rand"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	xssh "golang.org/x/crypto/ssh"

	"github.com/tollgate-dev/tollgate/host/audit"
	"github.com/tollgate-dev/tollgate/host/identity"
	"github.com/tollgate-dev/tollgate/internal/testenv"
	tssh "github.com/tollgate-dev/tollgate/protocols/ssh"
)

// certEnv is env with the user CA on, its API routes served by a real
// HTTP server (as the admin listener mounts them), and the log kept.
type certEnv struct {
	*env
	api      *httptest.Server
	caPath   string
	revoked  string
	logs     *lockedBuffer
	keyDir   string
	keyPEM   []byte
	pub      xssh.PublicKey
	listener string
}

func startCertEnv(t testing.TB, opts ...func(*tssh.ListenerOptions)) *certEnv {
	t.Helper()
	dir := t.TempDir()
	ce := &certEnv{caPath: filepath.Join(dir, "ca_ed25519"), revoked: filepath.Join(dir, "revoked"), logs: &lockedBuffer{}, keyDir: t.TempDir()}
	ce.env = startEnv(t, envOptions{log: slog.New(slog.NewTextHandler(ce.logs, nil)), listener: func(o *tssh.ListenerOptions) {
		o.CAKey, o.RevokedSerials = ce.caPath, ce.revoked
		for _, f := range opts {
			f(o)
		}
	}})
	mux := http.NewServeMux()
	for _, r := range ce.l.API() {
		mux.Handle(r.Pattern, r.Handler)
	}
	ce.api = httptest.NewServer(mux)
	t.Cleanup(ce.api.Close)
	ce.keyPEM, ce.pub = testenv.NewSSHKey(t)
	return ce
}

// issue asks the API for a certificate for the env's key.
func (ce *certEnv) issue(t testing.TB, token string, req tssh.CertRequest) (int, tssh.CertResponse, string) {
	t.Helper()
	if req.PublicKey == "" {
		req.PublicKey = string(xssh.MarshalAuthorizedKey(ce.pub))
	}
	b, _ := json.Marshal(req)
	hr, _ := http.NewRequest("POST", ce.api.URL+"/v1/ssh/ssh/certificate", bytes.NewReader(b))
	if token != "" {
		hr.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(hr)
	must(t, err)
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	var cr tssh.CertResponse
	if resp.StatusCode == 200 {
		must(t, json.Unmarshal(body, &cr))
	}
	return resp.StatusCode, cr, string(body)
}

// sshCert runs the real OpenSSH client with the env's key and cert
// (authorized_keys format), publickey only.
func (ce *certEnv) sshCert(t testing.TB, cert, user string, args ...string) result {
	t.Helper()
	cmd := ce.sshCertCmd(t, cert, user, args...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("ssh: %v", err)
	}
	return result{out.Bytes(), errb.Bytes(), code}
}

// sshCertCmd is the OpenSSH client's command line with the env's key and
// cert (authorized_keys format), publickey only.
func (ce *certEnv) sshCertCmd(t testing.TB, cert, user string, args ...string) *exec.Cmd {
	t.Helper()
	dir := t.TempDir()
	key := filepath.Join(dir, "id")
	must(t, os.WriteFile(key, ce.keyPEM, 0o600))
	must(t, os.WriteFile(key+"-cert.pub", []byte(cert+"\n"), 0o600))
	_, port, _ := strings.Cut(ce.l.Addr().String(), ":")
	return exec.Command("ssh", append([]string{"-F", "/dev/null", "-p", port, "-l", user,
		"-i", key, "-o", "CertificateFile=" + key + "-cert.pub", "-o", "IdentitiesOnly=yes", "-o", "IdentityAgent=none",
		"-o", "UserKnownHostsFile=" + ce.knownHosts, "-o", "StrictHostKeyChecking=yes",
		"-o", "PreferredAuthentications=publickey", "-o", "BatchMode=yes", "-o", "ConnectTimeout=10", "-o", "ControlMaster=no",
		"127.0.0.1"}, args...)...)
}

// craft signs a certificate for the env's key with signer, for the
// principal "agent" in group agents.
func (ce *certEnv) craft(t *testing.T, signer xssh.Signer, principals []string, after, before time.Time, serial uint64) string {
	t.Helper()
	c := &xssh.Certificate{Key: ce.pub, Serial: serial, CertType: xssh.UserCert, KeyId: "crafted",
		ValidPrincipals: principals, ValidAfter: uint64(after.Unix()), ValidBefore: uint64(before.Unix()),
		Permissions: xssh.Permissions{Extensions: map[string]string{
			tssh.ExtIssuer: "dev", tssh.ExtSubject: "agent", tssh.ExtGroups: `["agents"]`,
			tssh.ExtClaims: `{"sub":"agent","repository":"acme/app"}`, tssh.ExtKept: `{}`}}}
	must(t, c.SignCert(rand.Reader, signer))
	return strings.TrimSpace(string(xssh.MarshalAuthorizedKey(c)))
}

// noToken checks that no token is in any row or in the log.
func (ce *certEnv) noToken(t *testing.T, tokens ...string) {
	t.Helper()
	rows, _ := json.Marshal(ce.rec.Rows())
	for _, tok := range tokens {
		sig := tok[strings.LastIndexByte(tok, '.')+1:]
		if bytes.Contains(rows, []byte(sig)) {
			t.Errorf("a token's signature is in an audit row")
		}
		if strings.Contains(ce.logs.String(), sig) {
			t.Errorf("a token's signature is in the log")
		}
	}
}

// A certificate from the API opens the same session the token would:
// the plain OpenSSH client with it runs a command, and the rows name
// the principal and the serial. The certificate lives no longer than
// the token and carries the identity in its extensions.
func TestCertificateLogin(t *testing.T) {
	ce := startCertEnv(t)
	tok, err := ce.iss.Mint(identity.MintOptions{Subject: "agent", Groups: []string{"agents"}, Claims: map[string]any{"repository": "acme/app"}, TTL: 5 * time.Minute})
	must(t, err)
	code, cr, body := ce.issue(t, tok, tssh.CertRequest{})
	if code != 200 {
		t.Fatalf("issue: %d %s", code, body)
	}
	pk, _, _, _, err := xssh.ParseAuthorizedKey([]byte(cr.Certificate))
	must(t, err)
	cert := pk.(*xssh.Certificate)
	exp := time.Now().Add(5 * time.Minute)
	if time.Unix(int64(cert.ValidBefore), 0).After(exp.Add(time.Second)) || int64(cert.ValidAfter) > time.Now().Unix() {
		t.Errorf("validity %s .. %s outlives the token (exp about %s) or starts in the future", cr.ValidAfter, cr.ValidBefore, exp)
	}
	if strconv.FormatUint(cert.Serial, 10) != cr.Serial || cert.Permissions.Extensions[tssh.ExtSubject] != "agent" {
		t.Errorf("serial %d vs %s, extensions %v", cert.Serial, cr.Serial, cert.Permissions.Extensions)
	}
	if !bytes.Equal(cert.SignatureKey.Marshal(), ce.l.CA().Marshal()) {
		t.Errorf("not signed by the listener's CA")
	}
	// Every target the rule grants, each reachable with any login it allows.
	if got := strings.Join(cr.Principals, ","); got != "box,down,lax,mitm,safe" {
		t.Errorf("principals %q", got)
	}
	r := ce.sshCert(t, cr.Certificate, "box", "echo", "with-a-cert")
	if r.code != 0 || string(r.stdout) != "with-a-cert\n" {
		t.Fatalf("ssh with the certificate: code %d stdout %q stderr %q", r.code, r.stdout, r.stderr)
	}
	r = ce.sshCert(t, cr.Certificate, ce.sshd.User+"@box", "echo", "again")
	if r.code != 0 || string(r.stdout) != "again\n" {
		t.Fatalf("ssh with the certificate as login@target: code %d stdout %q stderr %q", r.code, r.stdout, r.stderr)
	}
	rows := ce.sessionRows(t, func(r audit.Row) bool { return r.Request["cert_serial"] == cr.Serial && r.Verdict != "deny" })
	open := rows[0]
	if open.Subject != "agent" || open.Issuer != "dev" || open.Request["auth"] != "certificate" || open.Target != "box" {
		t.Errorf("open row: %+v", open)
	}
	if ex := rowsOf(rows, tssh.KindExec); len(ex) != 1 || ex[0].Subject != "agent" || ex[0].Status != "exit 0" {
		t.Errorf("exec rows: %+v", ex)
	}
	verifyComplete(t, rows)
	issued := ce.rec.Wait(t, "ssh.certificate", func(r audit.Row) bool { return r.Kind == tssh.KindCertificate && r.Status == "issued" })
	if issued.Request["serial"] != cr.Serial || issued.Request["key_fingerprint"] != xssh.FingerprintSHA256(ce.pub) ||
		issued.Subject != "agent" || issued.Request["valid_before"] == "" || issued.Request["key_id"] != cr.KeyID {
		t.Errorf("issue row: %+v", issued)
	}
	ce.noToken(t, tok)
}

// A certificate for one login names login@target; it opens nothing else.
// And the certificate never outlives its token.
func TestCertificateForOneLogin(t *testing.T) {
	ce := startCertEnv(t)
	tok, err := ce.iss.Mint(identity.MintOptions{Subject: "agent", Groups: []string{"agents"}, TTL: 90 * time.Second})
	must(t, err)
	code, cr, body := ce.issue(t, tok, tssh.CertRequest{Targets: []string{"box"}, Login: ce.sshd.User})
	if code != 200 {
		t.Fatalf("issue: %d %s", code, body)
	}
	if got := strings.Join(cr.Principals, ","); got != ce.sshd.User+"@box" {
		t.Errorf("principals %q", got)
	}
	if cr.ValidBefore.After(time.Now().Add(91 * time.Second)) {
		t.Errorf("valid until %s, after the token's expiry", cr.ValidBefore)
	}
	if r := ce.sshCert(t, cr.Certificate, "box", "echo", "ok"); r.code != 0 {
		t.Errorf("default login: code %d stderr %q", r.code, r.stderr)
	}
	r := ce.sshCert(t, cr.Certificate, "safe", "true")
	if r.code != 255 || !strings.Contains(string(r.stderr), "tollgate: certificate serial "+cr.Serial+": it does not reach "+ce.sshd.User+"@safe") {
		t.Errorf("other target: code %d stderr %q", r.code, r.stderr)
	}
}

// Every way a certificate is refused at login: a clear banner naming its
// serial, exit 255, and a refused row naming the serial.
func TestCertificateRefused(t *testing.T) {
	ce := startCertEnv(t)
	tok := ce.token(t, "agents")
	code, cr, body := ce.issue(t, tok, tssh.CertRequest{})
	if code != 200 {
		t.Fatalf("issue: %d %s", code, body)
	}
	ca, err := tssh.LoadOrCreateCAKey(ce.caPath)
	must(t, err)
	other, err := xssh.ParsePrivateKey(must2(t, testenv.NewSSHKey))
	must(t, err)
	now := time.Now()
	all := []string{"box", "safe"}
	// The revoked one: issued by the API, then its serial listed.
	_, rev, _ := ce.issue(t, tok, tssh.CertRequest{Targets: []string{"box"}})
	must(t, os.WriteFile(ce.revoked, []byte("# revoked in a test\n"+rev.Serial+"\n"), 0o600))
	user := ce.sshd.User + "@box"
	for _, tc := range []struct {
		name, cert, user, serial, want string
	}{
		{"expired", ce.craft(t, ca, all, now.Add(-time.Hour), now.Add(-time.Minute), 1001), user, "1001", "expired at "},
		{"not yet valid", ce.craft(t, ca, all, now.Add(time.Hour), now.Add(2*time.Hour), 1002), user, "1002", "not valid before "},
		{"other CA", ce.craft(t, other, all, now.Add(-time.Minute), now.Add(time.Hour), 1003), user, "1003", "not signed by this gateway's SSH CA"},
		{"revoked", rev.Certificate, user, rev.Serial, "revoked"},
		{"login not allowed", cr.Certificate, "nobody@box", cr.Serial, "access denied: login nobody on target box"},
		{"target not in principals", ce.craft(t, ca, []string{"safe"}, now.Add(-time.Minute), now.Add(time.Hour), 1004), user, "1004", "it does not reach " + user},
		{"unknown target", ce.craft(t, ca, []string{"nowhere"}, now.Add(-time.Minute), now.Add(time.Hour), 1005), "nowhere", "1005", "unknown target nowhere"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := ce.sshCert(t, tc.cert, tc.user, "echo", "should-not-run")
			want := "tollgate: certificate serial " + tc.serial + ": " + tc.want
			if r.code != 255 || !strings.Contains(string(r.stderr), want) || bytes.Contains(r.stdout, []byte("should-not-run")) {
				t.Fatalf("code %d stdout %q stderr %q, want %q", r.code, r.stdout, r.stderr, want)
			}
			rows := ce.sessionRows(t, func(r audit.Row) bool { return r.Request["cert_serial"] == tc.serial && r.Verdict == "deny" })
			if !strings.Contains(rows[0].Error, tc.want) || rows[0].Subject != "" {
				t.Errorf("refused row: error %q subject %q (the certificate's holder is unproven: no subject)", rows[0].Error, rows[0].Subject)
			}
		})
	}
	// A revoked serial taken off the list works again: the list is read
	// when it changes.
	must(t, os.WriteFile(ce.revoked, nil, 0o600))
	if r := ce.sshCert(t, rev.Certificate, user, "true"); r.code != 0 {
		t.Errorf("unrevoked: code %d stderr %q", r.code, r.stderr)
	}
	// An unreadable list refuses every certificate (fail closed).
	must(t, os.WriteFile(ce.revoked, []byte("not-a-serial\n"), 0o600))
	if r := ce.sshCert(t, cr.Certificate, user, "true"); r.code != 255 || !strings.Contains(string(r.stderr), "cannot read its revoked serials") {
		t.Errorf("broken list: code %d stderr %q", r.code, r.stderr)
	}
	ce.noToken(t, tok)
}

// The issue endpoint refuses, with a JSON reason and a row each: no
// token, a bad one, a login or target the rules do not grant, a key that
// is not one. No token byte in any row or log line.
func TestCertificateIssueRefused(t *testing.T) {
	ce := startCertEnv(t)
	tok := ce.token(t, "agents")
	visitor := ce.token(t, "visitors")
	for _, tc := range []struct {
		name, token string
		req         tssh.CertRequest
		code        int
		want        string
	}{
		{"no token", "", tssh.CertRequest{}, 401, "an OIDC token is required"},
		{"bad token", "not-a-jwt", tssh.CertRequest{}, 401, "authentication failed"},
		{"no rule", visitor, tssh.CertRequest{}, 403, "access denied: login " + ce.sshd.User + " on target box: no access rule grants target box to agent; login "},
		{"login not allowed", tok, tssh.CertRequest{Targets: []string{"box"}, Login: "nobody"}, 403, "access denied: login nobody on target box"},
		{"unknown target", tok, tssh.CertRequest{Targets: []string{"nowhere"}}, 403, "unknown target nowhere"},
		{"not a key", tok, tssh.CertRequest{PublicKey: "ssh-ed25519 AAAA"}, 400, "not an SSH public key"},
		{"a certificate", tok, tssh.CertRequest{PublicKey: ce.craft(t, must2s(t, ce.caPath), []string{"box"}, time.Now(), time.Now().Add(time.Hour), 7)}, 400, "not certified"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, _, body := ce.issue(t, tc.token, tc.req)
			if code != tc.code || !strings.Contains(body, tc.want) {
				t.Fatalf("got %d %s, want %d %q", code, body, tc.code, tc.want)
			}
			ce.rec.Wait(t, "refused ssh.certificate row", func(r audit.Row) bool {
				return r.Kind == tssh.KindCertificate && r.Verdict == "deny" && strings.Contains(r.Error, tc.want)
			})
		})
	}
	ce.noToken(t, tok, visitor)
}

func must2(t *testing.T, f func(testing.TB) ([]byte, xssh.PublicKey)) []byte {
	b, _ := f(t)
	return b
}

func must2s(t *testing.T, caPath string) xssh.Signer {
	s, err := tssh.LoadOrCreateCAKey(caPath)
	must(t, err)
	return s
}

// lyingSigner presents a certificate it does not hold the key of: it
// signs with another key.
type lyingSigner struct {
	cert *xssh.Certificate
	xssh.Signer
}

func (s lyingSigner) PublicKey() xssh.PublicKey { return s.cert }

// A certificate is public (the -cert.pub file); without its private key
// it opens nothing, and no row names its subject: x/crypto asks about
// the key before the client proves it holds it, and the gateway takes
// the identity only from the method that succeeded.
func TestCertificateWithoutItsKey(t *testing.T) {
	ce := startCertEnv(t)
	tok := ce.token(t, "agents")
	code, cr, body := ce.issue(t, tok, tssh.CertRequest{Targets: []string{"box"}})
	if code != 200 {
		t.Fatalf("issue: %d %s", code, body)
	}
	pk, _, _, _, err := xssh.ParseAuthorizedKey([]byte(cr.Certificate))
	must(t, err)
	otherPEM, _ := testenv.NewSSHKey(t)
	other, err := xssh.ParsePrivateKey(otherPEM)
	must(t, err)
	c, err := xssh.Dial("tcp", ce.l.Addr().String(), &xssh.ClientConfig{
		User: "box", Auth: []xssh.AuthMethod{xssh.PublicKeys(lyingSigner{cert: pk.(*xssh.Certificate), Signer: other})},
		HostKeyCallback: xssh.FixedHostKey(ce.l.HostKey()), Timeout: 10 * time.Second,
	})
	if err == nil {
		c.Close()
		t.Fatal("a certificate without its key logged in")
	}
	rows := ce.sessionRows(t, func(r audit.Row) bool { return r.Request["cert_serial"] == cr.Serial })
	if rows[0].Verdict != "deny" || rows[0].Subject != "" || rows[0].Target != "" {
		t.Errorf("open row of the refused connection: %+v", rows[0])
	}
	if len(rowsOf(rows, tssh.KindExec)) != 0 {
		t.Errorf("an exec row for a refused connection")
	}
	// The same certificate with its key still works.
	if r := ce.sshCert(t, cr.Certificate, "box", "true"); r.code != 0 {
		t.Errorf("with its key: code %d stderr %q", r.code, r.stderr)
	}
}

// Certificates the CA signed but the gateway never issues are refused
// too: a host certificate, and one with a critical option the gateway
// does not enforce (force-command). The x/crypto client presents them
// as they are, and shows the banner.
func TestCertificateOfAnotherKind(t *testing.T) {
	ce := startCertEnv(t)
	ca, err := tssh.LoadOrCreateCAKey(ce.caPath)
	must(t, err)
	key, err := xssh.ParsePrivateKey(ce.keyPEM)
	must(t, err)
	now := time.Now()
	ext := map[string]string{tssh.ExtIssuer: "dev", tssh.ExtSubject: "agent", tssh.ExtGroups: `["agents"]`, tssh.ExtClaims: `{}`, tssh.ExtKept: `{}`}
	for _, tc := range []struct {
		name   string
		kind   uint32
		crit   map[string]string
		serial uint64
		want   string
	}{
		{"host certificate", xssh.HostCert, nil, 2001, "not a user certificate"},
		{"force-command", xssh.UserCert, map[string]string{"force-command": "true"}, 2002, "unsupported critical option"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := &xssh.Certificate{Key: ce.pub, Serial: tc.serial, CertType: tc.kind, KeyId: "crafted", ValidPrincipals: []string{"box"},
				ValidAfter: uint64(now.Add(-time.Minute).Unix()), ValidBefore: uint64(now.Add(time.Hour).Unix()),
				Permissions: xssh.Permissions{Extensions: ext, CriticalOptions: tc.crit}}
			must(t, c.SignCert(rand.Reader, ca))
			signer, err := xssh.NewCertSigner(c, key)
			must(t, err)
			var banner lockedBuffer
			cl, err := xssh.Dial("tcp", ce.l.Addr().String(), &xssh.ClientConfig{
				User: "box", Auth: []xssh.AuthMethod{xssh.PublicKeys(signer)},
				HostKeyCallback: xssh.FixedHostKey(ce.l.HostKey()), Timeout: 10 * time.Second,
				BannerCallback: func(m string) error { banner.Write([]byte(m)); return nil },
			})
			if err == nil {
				cl.Close()
				t.Fatal("logged in")
			}
			if !strings.Contains(banner.String(), "tollgate: certificate serial "+strconv.FormatUint(tc.serial, 10)+": ") || !strings.Contains(banner.String(), tc.want) {
				t.Errorf("banner %q, want %q", banner.String(), tc.want)
			}
			rows := ce.sessionRows(t, func(r audit.Row) bool { return r.Request["cert_serial"] == strconv.FormatUint(tc.serial, 10) })
			if rows[0].Verdict != "deny" || !strings.Contains(rows[0].Error, tc.want) {
				t.Errorf("row: %+v", rows[0])
			}
		})
	}
}

// Refused certificates count against the source address like bad
// tokens; plain keys (a client offers its agent's keys first) do not.
func TestCertificateFailuresRateLimited(t *testing.T) {
	ce := startCertEnv(t, func(o *tssh.ListenerOptions) { o.MaxAuthFailures = 2 })
	tok := ce.token(t, "agents")
	code, cr, body := ce.issue(t, tok, tssh.CertRequest{Targets: []string{"box"}})
	if code != 200 {
		t.Fatalf("issue: %d %s", code, body)
	}
	user := ce.sshd.User + "@box"
	// Plain keys, many times: nothing counted.
	_, port, _ := strings.Cut(ce.l.Addr().String(), ":")
	key := filepath.Join(t.TempDir(), "plain")
	must(t, os.WriteFile(key, ce.keyPEM, 0o600))
	for range 3 {
		out, err := exec.Command("ssh", "-F", "/dev/null", "-p", port, "-l", user, "-i", key, "-o", "IdentitiesOnly=yes", "-o", "IdentityAgent=none",
			"-o", "UserKnownHostsFile="+ce.knownHosts, "-o", "PreferredAuthentications=publickey", "-o", "BatchMode=yes", "127.0.0.1", "true").CombinedOutput()
		if err == nil || bytes.Contains(out, []byte("tollgate:")) {
			t.Fatalf("a plain key: err %v, output %q (refused without a banner)", err, out)
		}
	}
	if r := ce.sshCert(t, cr.Certificate, user, "true"); r.code != 0 {
		t.Fatalf("after plain keys: code %d stderr %q", r.code, r.stderr)
	}
	// Two refused certificates, and the address is blocked, the good one too.
	ca, err := tssh.LoadOrCreateCAKey(ce.caPath)
	must(t, err)
	expired := ce.craft(t, ca, []string{"box"}, time.Now().Add(-time.Hour), time.Now().Add(-time.Minute), 3001)
	for range 2 {
		if r := ce.sshCert(t, expired, user, "true"); r.code != 255 || !strings.Contains(string(r.stderr), "expired") {
			t.Fatalf("expired: code %d stderr %q", r.code, r.stderr)
		}
	}
	if r := ce.sshCert(t, cr.Certificate, user, "true"); r.code != 255 || !strings.Contains(string(r.stderr), "too many failed authentications") {
		t.Fatalf("past the limit: code %d stderr %q", r.code, r.stderr)
	}
	// The issue endpoint shares the limit.
	if code, _, body := ce.issue(t, tok, tssh.CertRequest{}); code != 429 || !strings.Contains(body, "too many failed authentications") {
		t.Errorf("issue past the limit: %d %s", code, body)
	}
}
