package http_test

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"io"
	mrand "math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tollgate-dev/tollgate/host/admin"
	"github.com/tollgate-dev/tollgate/host/approval"
	"github.com/tollgate-dev/tollgate/host/audit"
	"github.com/tollgate-dev/tollgate/internal/testenv"
	"github.com/tollgate-dev/tollgate/protocols/http/gitwire"
)

// gitEnv is a gateway whose target "repos" is a real git http-backend,
// with guard refusing pushes to a protected branch and force pushes,
// approve holding pushes to release branches, and the secret scan on.
type gitEnv struct {
	gw     *testenv.Gateway
	srv    *testenv.GitServer
	addr   string
	admin  string
	token  string // the agent's
	remote string // the repository's URL through the gateway
}

// gitOptions: keys for the target, whether the guard and approve
// plugins run, and tables appended to the config (%UPSTREAM% is the git
// server's URL).
type gitOptions struct {
	target  string
	plugins bool
	extra   string
}

const gitPlugins = `
[[plugins]]
name = "guard"
path = "%GUARD%"
[plugins.config]
kinds = ["git.push", "git.fetch"]
rules = [
  { name = "frozen", kinds = ["git.fetch"], paths = ["/acme/frozen.git"], reason = "repository frozen for an audit" },
  { name = "protected", kinds = ["git.push"], refs = ["refs/heads/protected"], reason = "protected branch: open a merge request" },
  { name = "no-force", kinds = ["git.push"], force = ["true", "unknown"], reason = "force pushes are not allowed" },
]

[[plugins]]
name = "approve"
path = "%APPROVE%"
[plugins.config]
[[plugins.config.rules]]
name = "release"
kinds = ["git.push"]
refs = ["refs/heads/release*"]
approvers = ["dba"]
reason = "release branches need a maintainer"
`

func startGit(t testing.TB, o gitOptions) *gitEnv {
	t.Helper()
	e := &gitEnv{addr: testenv.FreeAddr(t), admin: testenv.FreeAddr(t)}
	issuer := testenv.FreeAddr(t)
	e.srv = testenv.StartGitServer(t, upstreamSecret)
	e.srv.InitBare(t, "acme/app.git")
	plugins := ""
	if o.plugins {
		plugins = strings.NewReplacer("%GUARD%", testenv.BuildWasm(t, "plugins/guard"), "%APPROVE%", testenv.BuildWasm(t, "plugins/approve")).Replace(gitPlugins)
	}
	cfg := fmt.Sprintf(`
[gateway]
data_dir = "data"
shutdown_grace = "5s"

[dev]
issuer_listen = %q

[admin]
listen = %q

[approvals]
http_wait = "30s"

[[targets]]
name = "repos"
protocol = "http"
upstream = %q
git = true
%s
[targets.credential]
type = "bearer"
token = "env:TEST_UPSTREAM_TOKEN"

[[listeners]]
name = "http"
protocol = "http"
listen = %q
[[listeners.routes]]
target = "repos"
path_prefix = "/git"

[[access]]
name = "ci-git"
issuers = ["dev"]
targets = ["*"]
methods = ["FETCH", "PUSH"]
paths = ["/acme/"]
[access.claims]
repository = "acme/*"

%s%s`, issuer, e.admin, e.srv.URL, o.target, e.addr, plugins, strings.ReplaceAll(o.extra, "%UPSTREAM%", e.srv.URL))
	e.gw = testenv.StartGateway(t, testenv.GatewayOptions{
		Config: cfg, Dev: true, Env: []string{"TEST_UPSTREAM_TOKEN=" + upstreamSecret},
		Wait: []string{e.addr, issuer, e.admin},
	})
	out, errOut, code := e.gw.Run("token", "-c", e.gw.Config, "--sub", "repo:acme/app:ref:refs/heads/main",
		"--claim", "repository=acme/app", "--claim", "run_id=77", "--group", "ci")
	if code != 0 {
		t.Fatalf("gateway token: %d %s", code, errOut)
	}
	e.token = strings.TrimSpace(out)
	e.remote = "http://" + e.addr + "/git/acme/app.git"
	return e
}

// git runs the git client through the gateway with the agent's token.
func (e *gitEnv) git(t testing.TB, dir string, args ...string) (string, error) {
	t.Helper()
	cmd := testenv.GitCmd(t, dir, append([]string{"-c", "http.extraHeader=Authorization: Bearer " + e.token}, args...)...)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func (e *gitEnv) mustGit(t testing.TB, dir string, args ...string) string {
	t.Helper()
	out, err := e.git(t, dir, args...)
	if err != nil {
		t.Fatalf("git %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out
}

// upstreamRef is ref's id in the upstream repository ("" when missing).
func (e *gitEnv) upstreamRef(t testing.TB, ref string) string {
	out, err := testenv.GitCmd(t, filepath.Join(e.srv.Root, "acme/app.git"), "rev-parse", "--verify", "-q", ref).Output()
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(out))
}

func (e *gitEnv) row(t testing.TB, what string, match func(r audit.Row) bool) audit.Row {
	t.Helper()
	return e.gw.WaitAudit(auditPath, what, match)
}

// commitRandom adds files of random (incompressible) bytes and commits.
// The bytes come from a generator seeded by the file's name, so every run
// pushes the same files: with fresh random bytes, one run in a few
// dozen drew a run of bytes the secret scan's generic detectors read as
// a password assignment, and the push was refused.
func commitRandom(t testing.TB, dir string, files int, size int, msg string) string {
	t.Helper()
	for i := range files {
		name := filepath.Join(dir, fmt.Sprintf("data/%s-%d.bin", strings.ReplaceAll(msg, " ", "-"), i))
		b := make([]byte, size)
		mrand.NewChaCha8(sha256.Sum256([]byte(name[len(dir):]))).Read(b)
		os.MkdirAll(filepath.Dir(name), 0o755)
		if err := os.WriteFile(name, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	testenv.Git(t, dir, "add", "-A")
	testenv.Git(t, dir, "commit", "-q", "-m", msg)
	return strings.TrimSpace(testenv.Git(t, dir, "rev-parse", "HEAD"))
}

func newWork(t testing.TB) string {
	dir := t.TempDir()
	testenv.Git(t, dir, "init", "-q", "-b", "main")
	return dir
}

func TestGitPushCloneFetch(t *testing.T) {
	e := startGit(t, gitOptions{target: "git_secret_scan = true"})
	work := newWork(t)
	e.mustGit(t, work, "remote", "add", "origin", e.remote)

	// A 20 MiB history in four commits, pushed through the gateway.
	var head string
	for i := range 4 {
		head = commitRandom(t, work, 5, 1<<20, fmt.Sprintf("step %d", i))
	}
	out := e.mustGit(t, work, "push", "origin", "main")
	if e.upstreamRef(t, "refs/heads/main") != head {
		t.Fatalf("upstream main is not %s after the push:\n%s", head, out)
	}
	push := e.row(t, "for the first push", func(r audit.Row) bool {
		return r.Kind == "git.push" && strings.Contains(r.Request["commands"], head)
	})
	if push.Status != "200" || push.Request["repository"] != "/acme/app.git" || push.Verdict != "allow" ||
		!strings.Contains(push.Request["commands"], gitwire.ZeroID+" "+head+" refs/heads/main create") ||
		push.RequestBytes < 20<<20 || push.Subject != "repo:acme/app:ref:refs/heads/main" || push.AccessRule != "ci-git" ||
		!strings.HasPrefix(push.Annotations["git.scan"], "clean") {
		t.Fatalf("push row %+v", push)
	}

	// A fast-forward: force=false, decided from the pack alone.
	next := commitRandom(t, work, 1, 1000, "step ff")
	e.mustGit(t, work, "push", "-o", "ci.skip", "-o", "reviewer=maria", "origin", "main")
	ff := e.row(t, "for the fast-forward", func(r audit.Row) bool {
		return r.Kind == "git.push" && strings.Contains(r.Request["commands"], next)
	})
	if !strings.Contains(ff.Request["commands"], head+" "+next+" refs/heads/main update force=false") || ff.Status != "200" ||
		ff.Request["options"] != "ci.skip\nreviewer=maria" {
		t.Fatalf("fast-forward row %+v", ff)
	}

	// Clones with protocol v2 and v0: the same files, one git.fetch row each.
	for _, v := range []string{"2", "0"} {
		dir := filepath.Join(t.TempDir(), "clone")
		e.mustGit(t, "", "-c", "protocol.version="+v, "clone", "-q", e.remote, dir)
		if got := strings.TrimSpace(testenv.Git(t, dir, "rev-parse", "HEAD")); got != next {
			t.Fatalf("v%s clone HEAD %s, want %s", v, got, next)
		}
		testenv.Git(t, dir, "fsck", "--strict")
		row := e.row(t, "for the v"+v+" clone", func(r audit.Row) bool {
			return r.Kind == "git.fetch" && r.Request["protocol"] == v && r.Request["command"] == "fetch" && strings.Contains(r.Request["wants"], next)
		})
		if row.ResponseBytes < 20<<20 || row.Status != "200" || row.Request["repository"] != "/acme/app.git" {
			t.Fatalf("v%s clone row %+v", v, row)
		}
		if v == "2" {
			e.row(t, "for ls-refs", func(r audit.Row) bool { return r.Kind == "git.fetch" && r.Request["command"] == "ls-refs" })
		}
		e.row(t, "for the v"+v+" advertisement", func(r audit.Row) bool {
			return r.Kind == "git.refs" && r.Request["service"] == "git-upload-pack" && r.Request["protocol"] == v && r.Status == "200"
		})
	}

	// Shallow clone and deepen (deepen, deepen-relative lines) in v0.
	shallow := filepath.Join(t.TempDir(), "shallow")
	e.mustGit(t, "", "-c", "protocol.version=0", "clone", "-q", "--depth", "1", e.remote, shallow)
	e.mustGit(t, shallow, "-c", "protocol.version=0", "fetch", "-q", "--deepen=1")
	if n := strings.TrimSpace(testenv.Git(t, shallow, "rev-list", "--count", "HEAD")); n != "2" {
		t.Fatalf("deepened shallow clone has %s commits, want 2", n)
	}

	// A fetch of a commit pushed meanwhile by someone else, straight to the server.
	other := filepath.Join(t.TempDir(), "other")
	testenv.Git(t, "", "clone", "-q", filepath.Join(e.srv.Root, "acme/app.git"), other)
	third := commitRandom(t, other, 1, 2000, "someone else")
	testenv.Git(t, other, "push", "-q", "origin", "main")
	e.mustGit(t, work, "fetch", "origin")
	if got := strings.TrimSpace(testenv.Git(t, work, "rev-parse", "origin/main")); got != third {
		t.Fatalf("fetched origin/main %s, want %s", got, third)
	}
	f := e.row(t, "for the fetch", func(r audit.Row) bool {
		return r.Kind == "git.fetch" && r.Request["wants"] == third
	})
	if f.Request["haves"] == "0" || f.ResponseBytes == 0 {
		t.Fatalf("fetch row %+v", f)
	}
}

func TestGitPushRefused(t *testing.T) {
	e := startGit(t, gitOptions{target: "git_secret_scan = true", plugins: true})
	work := newWork(t)
	e.mustGit(t, work, "remote", "add", "origin", e.remote)
	// Two commits, so that amending the second leaves the pack's walk at
	// the first, and the force check asks the upstream.
	commitRandom(t, work, 1, 100, "root")
	base := commitRandom(t, work, 1, 100, "base")
	e.mustGit(t, work, "push", "origin", "main")

	t.Run("protected branch", func(t *testing.T) {
		out, err := e.git(t, work, "push", "origin", "main:protected")
		if err == nil || !strings.Contains(out, "! [remote rejected] main -> protected (protected branch: open a merge request)") {
			t.Fatalf("push to protected: %v\n%s", err, out)
		}
		if e.upstreamRef(t, "refs/heads/protected") != "" {
			t.Fatal("the refused ref reached the upstream")
		}
		row := e.row(t, "for the refused push", func(r audit.Row) bool {
			return r.Kind == "git.push" && r.Request["refs"] == "refs/heads/protected"
		})
		if row.Status != "rejected" || row.Verdict != "deny" || row.Plugin != "guard" || row.Reason != "protected branch: open a merge request" {
			t.Fatalf("row %+v", row)
		}
	})

	t.Run("one protected ref refuses the whole push", func(t *testing.T) {
		out, err := e.git(t, work, "push", "origin", "main:feature-a", "main:protected")
		if err == nil || !strings.Contains(out, "feature-a (not pushed: another ref of this push was refused)") || !strings.Contains(out, "protected (protected branch") {
			t.Fatalf("mixed push: %v\n%s", err, out)
		}
		if e.upstreamRef(t, "refs/heads/feature-a") != "" {
			t.Fatal("half of a refused push reached the upstream")
		}
	})

	t.Run("force push", func(t *testing.T) {
		testenv.Git(t, work, "commit", "-q", "--amend", "-m", "rewritten")
		amended := strings.TrimSpace(testenv.Git(t, work, "rev-parse", "HEAD"))
		out, err := e.git(t, work, "push", "--force", "origin", "main")
		if err == nil || !strings.Contains(out, "! [remote rejected] main -> main (force pushes are not allowed)") {
			t.Fatalf("force push: %v\n%s", err, out)
		}
		if e.upstreamRef(t, "refs/heads/main") != base {
			t.Fatal("the force push reached the upstream")
		}
		row := e.row(t, "for the force push", func(r audit.Row) bool {
			return r.Kind == "git.push" && strings.Contains(r.Request["commands"], amended)
		})
		if !strings.Contains(row.Request["commands"], base+" "+amended+" refs/heads/main update force=true") || row.Status != "rejected" || row.Reason != "force pushes are not allowed" {
			t.Fatalf("row %+v", row)
		}
		testenv.Git(t, work, "reset", "-q", "--hard", base)
	})

	t.Run("private key", func(t *testing.T) {
		_, key, _ := ed25519.GenerateKey(rand.Reader)
		der, _ := x509.MarshalPKCS8PrivateKey(key)
		os.MkdirAll(filepath.Join(work, "deploy"), 0o755)
		os.WriteFile(filepath.Join(work, "deploy/README"), []byte("deploy notes\n"), 0o644)
		os.WriteFile(filepath.Join(work, "deploy/id_ed25519"), append([]byte("# the deploy key\n\n"), pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})...), 0o600)
		testenv.Git(t, work, "add", "-A")
		testenv.Git(t, work, "commit", "-q", "-m", "add deploy key")
		out, err := e.git(t, work, "push", "origin", "main")
		if err == nil || !strings.Contains(out, "! [remote rejected] main -> main (secret in pushed file: ") || !strings.Contains(out, "in deploy/id_ed25519 line 3)") {
			t.Fatalf("push of a key: %v\n%s", err, out)
		}
		if e.upstreamRef(t, "refs/heads/main") != base {
			t.Fatal("the key reached the upstream")
		}
		row := e.row(t, "for the key push", func(r audit.Row) bool {
			return r.Kind == "git.push" && strings.Contains(r.Annotations["git.scan"], "deploy/id_ed25519")
		})
		if row.Status != "rejected" || row.Verdict != "deny" || strings.Contains(fmt.Sprint(row), "PRIVATE KEY") {
			t.Fatalf("row %+v", row)
		}
		testenv.Git(t, work, "reset", "-q", "--hard", base)
	})

	t.Run("fetch denied", func(t *testing.T) {
		e.srv.InitBare(t, "acme/frozen.git")
		testenv.Git(t, work, "push", "-q", filepath.Join(e.srv.Root, "acme/frozen.git"), "main")
		out, err := e.git(t, "", "-c", "protocol.version=0", "clone", "-q", "http://"+e.addr+"/git/acme/frozen.git", filepath.Join(t.TempDir(), "f"))
		if err == nil || !strings.Contains(out, "remote error: repository frozen for an audit") {
			t.Fatalf("clone of a frozen repository: %v\n%s", err, out)
		}
		row := e.row(t, "for the denied fetch", func(r audit.Row) bool {
			return r.Kind == "git.fetch" && r.Request["repository"] == "/acme/frozen.git"
		})
		if row.Verdict != "deny" || row.Plugin != "guard" || !strings.Contains(row.Error, "repository frozen") || row.Request["wants"] != base {
			t.Fatalf("row %+v", row)
		}
	})

	t.Run("held and approved", func(t *testing.T) {
		done := make(chan string, 1)
		go func() {
			out, err := e.git(t, work, "push", "origin", "main:release-1")
			done <- fmt.Sprintf("%v\n%s", err, out)
		}()
		dba := &admin.Client{URL: "http://" + e.admin}
		out, _, code := e.gw.Run("token", "-c", e.gw.Config, "--sub", "maria@acme.test", "--claim", "email=maria@acme.test", "--group", "dba")
		if code != 0 {
			t.Fatal("token for the approver")
		}
		dba.Token = strings.TrimSpace(out)
		var rec approval.Record
		deadline := time.Now().Add(30 * time.Second)
		for rec.ID == "" {
			recs, err := dba.Approvals(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			for _, r := range recs {
				if r.State == approval.StatePending {
					rec = r
				}
			}
			if time.Now().After(deadline) {
				t.Fatal("no pending approval")
			}
			time.Sleep(50 * time.Millisecond)
		}
		if rec.Kind != "git.push" || rec.Fields["ref"] != "refs/heads/release-1" || rec.Fields["action"] != "create" {
			t.Fatalf("approval %+v", rec)
		}
		if e.upstreamRef(t, "refs/heads/release-1") != "" {
			t.Fatal("the held push reached the upstream before approval")
		}
		if _, err := dba.Approve(context.Background(), rec.ID, admin.DecideRequest{Reason: "release 1"}); err != nil {
			t.Fatal(err)
		}
		res := <-done
		if !strings.HasPrefix(res, "<nil>") || !strings.Contains(res, "held for approval "+rec.ID) {
			t.Fatalf("approved push: %s", res)
		}
		if e.upstreamRef(t, "refs/heads/release-1") != base {
			t.Fatal("the approved push did not reach the upstream")
		}
		row := e.row(t, "for the approved push", func(r audit.Row) bool { return r.Kind == "git.push" && r.ApprovalID == rec.ID })
		if row.Approver != "maria@acme.test" || row.Verdict != "hold" || row.Status != "200" {
			t.Fatalf("row %+v", row)
		}

		// The approval covered that push only: the next one, at once,
		// is held on its own, and a denial rejects it in git's words.
		go func() {
			out, err := e.git(t, work, "push", "origin", "main:release-2")
			done <- fmt.Sprintf("%v\n%s", err, out)
		}()
		var next approval.Record
		deadline = time.Now().Add(30 * time.Second)
		for next.ID == "" {
			recs, err := dba.Approvals(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			for _, r := range recs {
				if r.State == approval.StatePending && r.ID != rec.ID {
					next = r
				}
			}
			if time.Now().After(deadline) {
				t.Fatal("the second push was not held")
			}
			time.Sleep(50 * time.Millisecond)
		}
		if next.Fields["ref"] != "refs/heads/release-2" || e.upstreamRef(t, "refs/heads/release-2") != "" {
			t.Fatalf("second push: approval %+v, or it reached the upstream before a decision", next)
		}
		if _, err := dba.Deny(context.Background(), next.ID, admin.DecideRequest{Reason: "not today"}); err != nil {
			t.Fatal(err)
		}
		if res := <-done; !strings.Contains(res, "[remote rejected]") || e.upstreamRef(t, "refs/heads/release-2") != "" {
			t.Fatalf("denied push: %s", res)
		}
	})
}

func TestGitBadInput(t *testing.T) {
	e := startGit(t, gitOptions{})
	post := func(path, body string) (*http.Response, string) {
		req, _ := http.NewRequest("POST", "http://"+e.addr+"/git/acme/app.git/"+path, strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+e.token)
		req.Header.Set("Content-Type", "application/x-git-"+path+"-request")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp, string(b)
	}
	t.Run("malformed pkt-line", func(t *testing.T) {
		for _, path := range []string{"git-receive-pack", "git-upload-pack"} {
			resp, body := post(path, "zzzzwant nothing")
			if resp.StatusCode != 400 || !strings.Contains(body, "bad_git_request") || !strings.Contains(body, "not 4 hex digits") {
				t.Fatalf("%s: %d %s", path, resp.StatusCode, body)
			}
			e.row(t, "for the malformed "+path, func(r audit.Row) bool {
				return r.Status == "400" && strings.Contains(r.Error, "not 4 hex digits") && r.Request["repository"] == "/acme/app.git"
			})
		}
		if len(e.srv.Posts()) != 0 {
			t.Fatalf("malformed requests reached the server: %v", e.srv.Posts())
		}
	})
	t.Run("truncated pack", func(t *testing.T) {
		id := "1111111111111111111111111111111111111111"
		var b []byte
		b, _ = gitwire.AppendPkt(b, []byte(gitwire.ZeroID+" "+id+" refs/heads/main\x00report-status side-band-64k\n"))
		b = gitwire.AppendFlush(b)
		b = append(b, "PACK\x00\x00\x00\x02\x00\x00\x00\x05\x95"...)
		resp, body := post("git-receive-pack", string(b))
		if resp.StatusCode != 200 || !strings.Contains(body, "unpack the gateway cannot read the pack") || !strings.Contains(body, "ng refs/heads/main unpacker error") {
			t.Fatalf("truncated pack: %d %q", resp.StatusCode, body)
		}
		row := e.row(t, "for the truncated pack", func(r audit.Row) bool {
			return r.Kind == "git.push" && r.Status == "rejected" && strings.Contains(r.Error, "pack")
		})
		if !strings.Contains(row.Request["commands"], id+" refs/heads/main create") {
			t.Fatalf("row %+v", row)
		}
		if len(e.srv.Posts()) != 0 {
			t.Fatalf("the truncated pack reached the server: %v", e.srv.Posts())
		}
	})
	t.Run("thin pack", func(t *testing.T) {
		// A pack with a delta against an object it lacks, as a client that
		// ignores the advertised no-thin would send: refused, unread.
		work := newWork(t)
		os.WriteFile(filepath.Join(work, "f.txt"), []byte(strings.Repeat("line of text\n", 5000)), 0o644)
		testenv.Git(t, work, "add", "-A")
		testenv.Git(t, work, "commit", "-q", "-m", "a")
		a := strings.TrimSpace(testenv.Git(t, work, "rev-parse", "HEAD"))
		testenv.Git(t, work, "push", "-q", filepath.Join(e.srv.Root, "acme/app.git"), "main")
		os.WriteFile(filepath.Join(work, "f.txt"), []byte(strings.Repeat("line of text\n", 5000)+"one more\n"), 0o644)
		testenv.Git(t, work, "commit", "-q", "-am", "b")
		b := strings.TrimSpace(testenv.Git(t, work, "rev-parse", "HEAD"))
		cmd := testenv.GitCmd(t, work, "pack-objects", "-q", "--thin", "--stdout", "--revs")
		cmd.Stdin = strings.NewReader(b + "\n^" + a + "\n")
		pack, err := cmd.Output()
		if err != nil {
			t.Fatal(err)
		}
		var body []byte
		body, _ = gitwire.AppendPkt(body, []byte(a+" "+b+" refs/heads/main\x00report-status side-band-64k\n"))
		body = gitwire.AppendFlush(body)
		resp, out := post("git-receive-pack", string(append(body, pack...)))
		if resp.StatusCode != 200 || !strings.Contains(out, "ng refs/heads/main unpacker error") || !strings.Contains(out, "reference delta not found") {
			t.Fatalf("thin pack: %d %q", resp.StatusCode, out)
		}
		if e.upstreamRef(t, "refs/heads/main") != a {
			t.Fatal("the thin pack's ref moved")
		}
		e.row(t, "for the thin pack", func(r audit.Row) bool {
			return r.Kind == "git.push" && r.Status == "rejected" && strings.Contains(r.Request["commands"], b)
		})
		for _, p := range e.srv.Posts() {
			if strings.HasSuffix(p, "git-receive-pack") {
				t.Fatalf("the thin pack reached the server: %v", e.srv.Posts())
			}
		}

		// A gzipped upload-pack request (git compresses large ones) is read too.
		var req []byte
		req, _ = gitwire.AppendPkt(req, []byte("want "+a+" ofs-delta\n"))
		req = gitwire.AppendFlush(req)
		req, _ = gitwire.AppendPkt(req, []byte("done\n"))
		var zb bytes.Buffer
		zw := gzip.NewWriter(&zb)
		zw.Write(req)
		zw.Close()
		hreq, _ := http.NewRequest("POST", "http://"+e.addr+"/git/acme/app.git/git-upload-pack", &zb)
		hreq.Header.Set("Authorization", "Bearer "+e.token)
		hreq.Header.Set("Content-Encoding", "gzip")
		hreq.Header.Set("Content-Type", "application/x-git-upload-pack-request")
		hresp, err := http.DefaultClient.Do(hreq)
		if err != nil {
			t.Fatal(err)
		}
		got, _ := io.ReadAll(hresp.Body)
		hresp.Body.Close()
		if hresp.StatusCode != 200 || !bytes.HasPrefix(got, []byte("0008NAK\nPACK")) {
			t.Fatalf("gzipped fetch: %d %q", hresp.StatusCode, got[:min(len(got), 64)])
		}
		e.row(t, "for the gzipped fetch", func(r audit.Row) bool { return r.Kind == "git.fetch" && r.Request["wants"] == a })
	})
	t.Run("unknown repository", func(t *testing.T) {
		work := newWork(t)
		commitRandom(t, work, 1, 10, "x")
		out, err := e.git(t, work, "push", "http://"+e.addr+"/git/acme/nope.git", "main")
		if err == nil || !strings.Contains(out, "not found") {
			t.Fatalf("push to an unknown repository: %v\n%s", err, out)
		}
		e.row(t, "for the unknown repository", func(r audit.Row) bool {
			return r.Kind == "git.refs" && r.Request["repository"] == "/acme/nope.git" && r.Status == "404"
		})
	})
	t.Run("not granted", func(t *testing.T) {
		out, err := e.git(t, "", "clone", "http://"+e.addr+"/git/other/app.git", filepath.Join(t.TempDir(), "c"))
		if err == nil || !strings.Contains(out, "403") {
			t.Fatalf("clone of a repository no rule grants: %v\n%s", err, out)
		}
		e.row(t, "for the refused clone", func(r audit.Row) bool {
			return r.Kind == "git.refs" && r.Status == "403" && strings.Contains(r.Error, "no access rule allows FETCH /other/app.git")
		})
	})
	t.Run("dumb protocol", func(t *testing.T) {
		req, _ := http.NewRequest("GET", "http://"+e.addr+"/git/acme/app.git/HEAD", nil)
		req.Header.Set("Authorization", "Bearer "+e.token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 404 {
			t.Fatalf("dumb GET: %d", resp.StatusCode)
		}
		// Two services: the gateway and the server could read different ones.
		req, _ = http.NewRequest("GET", "http://"+e.addr+"/git/acme/app.git/info/refs?service=git-upload-pack&service=git-receive-pack", nil)
		req.Header.Set("Authorization", "Bearer "+e.token)
		if resp, err = http.DefaultClient.Do(req); err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 404 {
			t.Fatalf("two services: %d", resp.StatusCode)
		}
	})
}
