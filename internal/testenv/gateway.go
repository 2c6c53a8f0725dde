package testenv

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/tollgate-dev/tollgate/host/audit"
)

// Gateway is a `gateway serve` process built from the current tree.
type Gateway struct {
	Dir    string // holds gateway.toml and the data directory
	Config string // path of gateway.toml
	Env    []string

	t      testing.TB
	cmd    *exec.Cmd
	mu     sync.Mutex
	stderr bytes.Buffer
	exited chan struct{}
}

// GatewayOptions describe a gateway to start.
type GatewayOptions struct {
	Config string   // the whole gateway.toml
	Dev    bool     // pass --dev
	Env    []string // extra environment, e.g. "DEMO_TOKEN=..."
	// Dir reuses a directory (and so its data dir) from an earlier gateway,
	// to test what survives a restart. Default: a new temp dir.
	Dir string
	// Wait lists addresses that must accept connections before the gateway
	// counts as started (its listeners, the dev issuer).
	Wait []string
	// ReadyTimeout bounds the start (default 60 s): a bound, not a
	// measure. Compiling the plugins takes a few seconds alone and far
	// longer while `make test` keeps both cores busy (a start at load 14
	// was seen to pass 15 s).
	ReadyTimeout time.Duration
}

// StartGateway writes the config into a temp directory and runs the
// gateway there until the test ends.
func StartGateway(t testing.TB, o GatewayOptions) *Gateway {
	t.Helper()
	bin := GatewayBinary(t)
	dir := o.Dir
	if dir == "" {
		dir = t.TempDir()
	}
	g := &Gateway{Dir: dir, Config: filepath.Join(dir, "gateway.toml"), Env: o.Env, t: t, exited: make(chan struct{})}
	if err := os.WriteFile(g.Config, []byte(o.Config), 0o600); err != nil {
		t.Fatalf("testenv: %v", err)
	}
	args := []string{"serve", "-c", g.Config}
	if o.Dev {
		args = append(args, "--dev")
	}
	g.cmd = exec.Command(bin, args...)
	g.cmd.Dir = dir
	g.cmd.Env = append(os.Environ(), o.Env...)
	g.cmd.Stdout = &lockedWriter{mu: &g.mu, w: &g.stderr}
	g.cmd.Stderr = g.cmd.Stdout
	if err := g.cmd.Start(); err != nil {
		t.Fatalf("testenv: start gateway: %v", err)
	}
	go func() { g.cmd.Wait(); close(g.exited) }()
	t.Cleanup(func() {
		g.Stop()
		if t.Failed() {
			t.Logf("gateway output:\n%s", g.Output())
		}
	})
	ready := o.ReadyTimeout
	if ready == 0 {
		ready = time.Minute
	}
	deadline := time.Now().Add(ready)
	for !strings.Contains(g.Output(), "gateway ready") {
		select {
		case <-g.exited:
			t.Fatalf("testenv: gateway exited during start:\n%s", g.Output())
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("testenv: gateway not ready after %s:\n%s", ready, g.Output())
		}
	}
	for _, addr := range o.Wait {
		waitListening(t, addr, deadline)
	}
	return g
}

func waitListening(t testing.TB, addr string, deadline time.Time) {
	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("testenv: nothing listening on %s: %v", addr, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Output is everything the gateway printed so far.
func (g *Gateway) Output() string {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.stderr.String()
}

// Stop sends SIGTERM and waits for a graceful exit (SIGKILL after 20 s).
func (g *Gateway) Stop() error {
	select {
	case <-g.exited:
		return g.exitErr()
	default:
	}
	g.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-g.exited:
	case <-time.After(20 * time.Second):
		g.cmd.Process.Kill()
		<-g.exited
		return errors.New("gateway ignored SIGTERM for 20s")
	}
	return g.exitErr()
}

// PID is the gateway process's ID (to inspect or limit it: /proc, prlimit).
func (g *Gateway) PID() int { return g.cmd.Process.Pid }

// Exited is closed when the process ends.
func (g *Gateway) Exited() <-chan struct{} { return g.exited }

func (g *Gateway) exitErr() error {
	if st := g.cmd.ProcessState; st != nil && !st.Success() {
		return fmt.Errorf("gateway exited: %s", st)
	}
	return nil
}

// Run runs another gateway subcommand (token, check...) with the same
// binary, environment and config, and returns its stdout, stderr and exit code.
func (g *Gateway) Run(args ...string) (string, string, int) {
	return RunGateway(g.t, g.Dir, g.Env, args...)
}

// RunGateway runs the gateway binary once in dir.
func RunGateway(t testing.TB, dir string, env []string, args ...string) (string, string, int) {
	t.Helper()
	cmd := exec.Command(GatewayBinary(t), args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("testenv: run gateway %v: %v", args, err)
	}
	return out.String(), errb.String(), code
}

// AuditRows reads the JSON-lines audit file at path (relative to Dir).
func (g *Gateway) AuditRows(path string) []audit.Row {
	g.t.Helper()
	f, err := os.Open(filepath.Join(g.Dir, path))
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		g.t.Fatalf("testenv: %v", err)
	}
	defer f.Close()
	var rows []audit.Row
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var r audit.Row
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			g.t.Fatalf("testenv: audit line is not a row: %v: %s", err, sc.Bytes())
		}
		rows = append(rows, r)
	}
	return rows
}

// WaitAudit polls the audit file until match finds a row (the file sink
// flushes a few times a second) and returns it.
func (g *Gateway) WaitAudit(path string, what string, match func(audit.Row) bool) audit.Row {
	g.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		for _, r := range g.AuditRows(path) {
			if match(r) {
				return r
			}
		}
		if time.Now().After(deadline) {
			rows, _ := json.MarshalIndent(g.AuditRows(path), "", "  ")
			g.t.Fatalf("testenv: no audit row %s within 10s; rows:\n%s", what, rows)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

type lockedWriter struct {
	mu *sync.Mutex
	w  *bytes.Buffer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// Signal sends s to the gateway process (SIGHUP to reload, say).
func (g *Gateway) Signal(s os.Signal) {
	g.t.Helper()
	if err := g.cmd.Process.Signal(s); err != nil {
		g.t.Fatalf("testenv: signal gateway: %v", err)
	}
}

// WaitOutput waits until the gateway has printed want, n times in all.
func (g *Gateway) WaitOutput(want string, n int) {
	g.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for strings.Count(g.Output(), want) < n {
		if time.Now().After(deadline) {
			g.t.Fatalf("testenv: gateway did not print %q (%d times) within 30s:\n%s", want, n, g.Output())
		}
		time.Sleep(20 * time.Millisecond)
	}
}
