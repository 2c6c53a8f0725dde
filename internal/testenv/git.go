package testenv

import (
	"io"
	"net"
	"net/http"
	"net/http/cgi"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// GitServer is Debian's `git http-backend` behind Go's net/http/cgi on
// loopback: a real Git smart HTTP server (clone, fetch, push, protocol
// v2) over bare repositories under Root. It accepts only requests that
// carry "Authorization: Bearer <Token>", as a forge checks the gateway's
// credential.
type GitServer struct {
	URL   string
	Root  string
	Token string

	mu    sync.Mutex
	posts []string // paths of the POSTs received
}

// GitBin is the git client, checked once.
func GitBin(t testing.TB) string {
	t.Helper()
	p, err := exec.LookPath("git")
	if err != nil {
		t.Fatalf("testenv: git is not installed; run `make deps` (it installs the test peers): %v", err)
	}
	return p
}

// StartGitServer starts a git http-backend server whose credential is
// token. It stops when the test ends.
func StartGitServer(t testing.TB, token string) *GitServer {
	t.Helper()
	git := GitBin(t)
	out, err := exec.Command(git, "--exec-path").Output()
	if err != nil {
		t.Fatalf("testenv: git --exec-path: %v", err)
	}
	backend := filepath.Join(strings.TrimSpace(string(out)), "git-http-backend")
	if _, err := os.Stat(backend); err != nil {
		t.Fatalf("testenv: git-http-backend is missing (Debian package git); run `make deps`: %v", err)
	}
	g := &GitServer{Root: t.TempDir(), Token: token}
	h := &cgi.Handler{
		Path: backend,
		Env: []string{"GIT_PROJECT_ROOT=" + g.Root, "GIT_HTTP_EXPORT_ALL=1", "REMOTE_USER=tollgate",
			"GIT_CONFIG_NOSYSTEM=1", "HOME=" + g.Root},
		Stderr: io.Discard, // "Not a git repository" for the tests' unknown repositories
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("testenv: git server: %v", err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer "+token {
			w.Header().Set("WWW-Authenticate", `Bearer realm="git"`)
			http.Error(w, "unauthorized", http.StatusUnauthorized)
			return
		}
		if r.Method == http.MethodPost {
			g.mu.Lock()
			g.posts = append(g.posts, r.URL.Path)
			g.mu.Unlock()
		}
		// net/http/cgi answers a chunked body with 400: spool it and give
		// the CGI its length.
		if r.Method == http.MethodPost && r.ContentLength < 0 {
			f, err := os.CreateTemp("", "git-body-")
			if err != nil {
				http.Error(w, err.Error(), http.StatusInternalServerError)
				return
			}
			defer os.Remove(f.Name())
			defer f.Close()
			n, err := io.Copy(f, r.Body)
			if err != nil {
				http.Error(w, err.Error(), http.StatusBadRequest)
				return
			}
			f.Seek(0, io.SeekStart)
			r.Body, r.ContentLength = f, n
			r.TransferEncoding = nil
		}
		h.ServeHTTP(w, r)
	})}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	g.URL = "http://" + ln.Addr().String()
	return g
}

// Posts returns the paths of the POSTs the server received so far.
func (g *GitServer) Posts() []string {
	g.mu.Lock()
	defer g.mu.Unlock()
	return append([]string(nil), g.posts...)
}

// InitBare creates the bare repository name (e.g. "acme/app.git") and
// returns its directory.
func (g *GitServer) InitBare(t testing.TB, name string) string {
	t.Helper()
	dir := filepath.Join(g.Root, name)
	Git(t, "", "init", "-q", "--bare", "-b", "main", dir)
	Git(t, dir, "config", "http.receivepack", "true")
	Git(t, dir, "config", "receive.advertisePushOptions", "true")
	return dir
}

// Git runs git in dir (a clean environment: no system or user config, no
// prompts) and fails the test when it fails; it returns the output.
func Git(t testing.TB, dir string, args ...string) string {
	t.Helper()
	out, err := GitCmd(t, dir, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("git %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// GitCmd is the command Git runs, for a test that expects it to fail.
func GitCmd(t testing.TB, dir string, args ...string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(GitBin(t), args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GIT_CONFIG_NOSYSTEM=1", "GIT_CONFIG_GLOBAL=/dev/null", "GIT_TERMINAL_PROMPT=0",
		"GIT_AUTHOR_NAME=Agent", "GIT_AUTHOR_EMAIL=agent@ci.test", "GIT_COMMITTER_NAME=Agent", "GIT_COMMITTER_EMAIL=agent@ci.test")
	return cmd
}
