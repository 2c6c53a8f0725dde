package ssh_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	xssh "golang.org/x/crypto/ssh"

	"github.com/tollgate-dev/tollgate/host/access"
	"github.com/tollgate-dev/tollgate/host/approval"
	"github.com/tollgate-dev/tollgate/host/audit"
	"github.com/tollgate-dev/tollgate/host/config"
	"github.com/tollgate-dev/tollgate/host/event"
	"github.com/tollgate-dev/tollgate/host/gate"
	"github.com/tollgate-dev/tollgate/host/identity"
	"github.com/tollgate-dev/tollgate/host/plugin"
	"github.com/tollgate-dev/tollgate/internal/testenv"
	tssh "github.com/tollgate-dev/tollgate/protocols/ssh"
)

// env is one gateway listener in this process in front of real sshd
// servers, with a dev issuer, an approval manager and an in-memory
// audit recorder. Targets:
//
//   - box: the sshd, reached with the gateway's key, known_hosts pinned.
//   - safe: a second sshd whose ForceCommand only echoes the command, for
//     commands a policy must stop ("rm -rf /"): if the policy failed, the
//     test would see RAN, and nothing would be removed.
//   - down: an address nothing listens on.
//   - mitm: the first sshd, with known_hosts naming another key.
type env struct {
	sshd, safe *testenv.SSHD
	l          *tssh.Listener
	rec        *testenv.Recorder
	iss        *identity.DevIssuer
	appr       *approval.Manager
	dir        string
	knownHosts string // the gateway's host key, for the ssh client
	askpass    string
	metrics    *gate.Metrics
}

type envOptions struct {
	chain    event.Chain
	log      *slog.Logger
	listener func(*tssh.ListenerOptions)
	targets  func(map[string]tssh.TargetOptions) // changes the targets' options
	sshd     []string                            // more sshd_config lines for box's sshd
	verbs    []string                            // the access rule's verbs (default: all)
}

func startEnv(t testing.TB, o envOptions) *env {
	t.Helper()
	e := &env{rec: &testenv.Recorder{}, dir: t.TempDir()}
	e.sshd = testenv.StartSSHD(t, testenv.SSHDOptions{Config: o.sshd})
	e.safe = testenv.StartSSHD(t, testenv.SSHDOptions{Config: []string{`ForceCommand echo "RAN $SSH_ORIGINAL_COMMAND"`}})
	issLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	e.iss, err = identity.NewDevIssuer(&config.Dev{IssuerListen: issLn.Addr().String(), Audience: "tollgate"}, e.dir)
	if err != nil {
		t.Fatal(err)
	}
	issSrv := &http.Server{Handler: e.iss.Handler()}
	go issSrv.Serve(issLn)
	t.Cleanup(func() { issSrv.Close() })
	e.appr, err = approval.New(approval.Options{URL: func(id string) string { return "https://gw.example/approvals/" + id }})
	if err != nil {
		t.Fatal(err)
	}
	otherKey, otherPub := testenv.NewSSHKey(t)
	_ = otherKey
	key := func(s *testenv.SSHD) tssh.Secret {
		return tssh.SecretValue("file:"+s.ClientKeyFile, string(s.ClientKeyPEM))
	}
	targets := map[string]tssh.TargetOptions{
		"box":  {Address: e.sshd.Addr, Key: key(e.sshd), KnownHosts: []string{e.sshd.HostKeyLine}},
		"safe": {Address: e.safe.Addr, Key: key(e.safe), KnownHosts: []string{e.safe.HostKeyLine}},
		"down": {Address: testenv.FreeAddr(t), Key: key(e.sshd), InsecureIgnoreHostKey: true},
		"lax":  {Address: e.sshd.Addr, Key: key(e.sshd), InsecureIgnoreHostKey: true},
		"mitm": {Address: e.sshd.Addr, Key: key(e.sshd), KnownHosts: []string{
			strings.Fields(e.sshd.HostKeyLine)[0] + " " + strings.TrimSpace(string(xssh.MarshalAuthorizedKey(otherPub)))}},
	}
	if o.targets != nil {
		o.targets(targets)
	}
	lo := tssh.ListenerOptions{Listen: "127.0.0.1:0", HostKey: filepath.Join(e.dir, "gw", "host_ed25519"),
		DefaultLogin: e.sshd.User, MaxAuthFailures: 1000}
	if o.listener != nil {
		o.listener(&lo)
	}
	chain := o.chain
	if chain == nil {
		chain = plugin.Empty{}
	}
	e.metrics = gate.NewMetrics()
	l, err := tssh.New("ssh", lo, targets, gate.Deps{
		GatewayID: "test",
		Metrics:   e.metrics,
		Auth:      identity.NewVerifier([]config.Issuer{e.iss.IssuerConfig()}, 10, identity.Options{}),
		Policy: access.New([]config.Rule{{Name: "agents", Targets: []string{"box", "safe", "down", "mitm", "lax"}, Groups: []string{"agents"},
			Paths: []string{"/" + e.sshd.User}, Methods: o.verbs}}),
		Chain:     chain,
		Recorder:  e.rec,
		Approvals: e.appr,
		Log:       o.log,
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := l.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		l.Shutdown(ctx)
	})
	e.l = l
	_, port, _ := net.SplitHostPort(l.Addr().String())
	e.knownHosts = filepath.Join(e.dir, "known_hosts")
	os.WriteFile(e.knownHosts, []byte("[127.0.0.1]:"+port+" "+string(xssh.MarshalAuthorizedKey(l.HostKey()))), 0o600)
	// The askpass the README ships, so that the tests prove it.
	e.askpass = filepath.Join(testenv.ModuleRoot(t), "examples", "ssh", "tollgate-askpass")
	return e
}

func (e *env) token(t testing.TB, groups ...string) string {
	t.Helper()
	tok, err := e.iss.Mint(identity.MintOptions{Subject: "agent", Groups: groups, Claims: map[string]any{"repository": "acme/app"}})
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// result is what the real ssh client gave back.
type result struct {
	stdout, stderr []byte
	code           int
}

// ssh runs the OpenSSH client against the gateway as user, with the
// token answered through SSH_ASKPASS (keyboard-interactive).
func (e *env) ssh(t testing.TB, token, user string, stdin []byte, args ...string) result {
	t.Helper()
	cmd := e.sshCmd(token, user, args...)
	if stdin != nil {
		cmd.Stdin = bytes.NewReader(stdin)
	}
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

func (e *env) sshCmd(token, user string, args ...string) *exec.Cmd {
	_, port, _ := net.SplitHostPort(e.l.Addr().String())
	base := []string{"-F", "/dev/null", "-p", port, "-l", user,
		"-o", "UserKnownHostsFile=" + e.knownHosts, "-o", "StrictHostKeyChecking=yes",
		"-o", "PreferredAuthentications=keyboard-interactive", "-o", "PubkeyAuthentication=no",
		"-o", "NumberOfPasswordPrompts=1", "-o", "ConnectTimeout=10", "-o", "ControlMaster=no",
		"127.0.0.1"}
	cmd := exec.Command("ssh", append(base, args...)...)
	cmd.Env = append(os.Environ(), "SSH_ASKPASS="+e.askpass, "SSH_ASKPASS_REQUIRE=force", "DISPLAY=:0", "TOLLGATE_TOKEN="+token)
	return cmd
}

// goClient connects with x/crypto's client (password auth).
func (e *env) goClient(t testing.TB, token, user string) (*xssh.Client, error) {
	t.Helper()
	return xssh.Dial("tcp", e.l.Addr().String(), &xssh.ClientConfig{
		User: user, Auth: []xssh.AuthMethod{xssh.Password(token)},
		HostKeyCallback: xssh.FixedHostKey(e.l.HostKey()), Timeout: 10 * time.Second,
	})
}

// sessionRows waits for the session.close row of the session whose
// open row matches, and returns that session's rows.
func (e *env) sessionRows(t testing.TB, match func(audit.Row) bool) []audit.Row {
	t.Helper()
	open := e.rec.Wait(t, "session.open", func(r audit.Row) bool { return r.Kind == audit.KindSessionOpen && match(r) })
	e.rec.Wait(t, "session.close", func(r audit.Row) bool { return r.SessionID == open.SessionID && r.Kind == audit.KindSessionClose })
	var rows []audit.Row
	for _, r := range e.rec.Rows() {
		if r.SessionID == open.SessionID {
			rows = append(rows, r)
		}
	}
	return rows
}

func rowsOf(rows []audit.Row, kind string) []audit.Row {
	var out []audit.Row
	for _, r := range rows {
		if r.Kind == kind {
			out = append(out, r)
		}
	}
	return out
}

func verifyComplete(t testing.TB, rows []audit.Row) {
	t.Helper()
	for _, f := range audit.Verify(rows) {
		if f.Status != audit.StatusComplete {
			t.Errorf("audit verify: session %s is %s: %s", f.SessionID, f.Status, f.Detail)
		}
	}
}

var (
	hostOnce sync.Once
	host     *plugin.Host
)

// loadPlugin loads a built-in plugin from this tree, compiled to Wasm.
func loadPlugin(t testing.TB, name string, cfg map[string]any) *plugin.Plugin {
	t.Helper()
	hostOnce.Do(func() {
		h, err := plugin.NewHost(plugin.Options{CacheDir: filepath.Join(os.TempDir(), "tollgate-test-wazero-cache"), MaskKey: []byte("k")})
		if err != nil {
			t.Fatal(err)
		}
		host = h
	})
	p, err := host.Load(context.Background(), config.Plugin{Name: name, Config: cfg}, testenv.WasmBytes(t, "plugins/"+name),
		plugin.Limits{MemoryPages: 512, Timeout: 2 * time.Second, Instances: 2})
	if err != nil {
		t.Fatalf("load %s: %v", name, err)
	}
	t.Cleanup(func() { p.Close(context.Background()) })
	return p
}

// holdPolicy is a chain in Go: "systemctl restart *" is held for the
// group ops; everything else goes to next (or is allowed).
type holdPolicy struct{ next event.Chain }

func (h holdPolicy) Process(ctx context.Context, ev *event.Event) (event.Verdict, error) {
	if ev.Kind == tssh.KindExec && strings.HasPrefix(ev.Fields["command"], "systemctl restart ") {
		return event.Verdict{Action: event.Hold, Plugin: "approve", Reason: "restarts need a person", ApproverGroups: []string{"ops"}}, nil
	}
	if h.next == nil {
		return event.Verdict{Action: event.Allow}, nil
	}
	return h.next.Process(ctx, ev)
}

// checkNoLeak waits until the goroutine count is back at base.
func checkNoLeak(t *testing.T, base int) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		n := runtime.NumGoroutine()
		if n <= base {
			return
		}
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<20)
			buf = buf[:runtime.Stack(buf, true)]
			t.Fatalf("goroutines: %d, baseline %d:\n%s", n, base, buf)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

var _ = fmt.Sprintf

// counter is the value of the counter name with exactly labels in the
// gateway's metrics (0 when there is none).
func (e *env) counter(t *testing.T, name string, labels map[string]string) float64 {
	t.Helper()
	reg := prometheus.NewPedanticRegistry()
	must(t, reg.Register(e.metrics))
	fams, err := reg.Gather()
	must(t, err)
	for _, f := range fams {
		if f.GetName() != name {
			continue
		}
	metrics:
		for _, m := range f.GetMetric() {
			if len(m.GetLabel()) != len(labels) {
				continue
			}
			for _, l := range m.GetLabel() {
				if labels[l.GetName()] != l.GetValue() {
					continue metrics
				}
			}
			return m.GetCounter().GetValue()
		}
	}
	return 0
}
