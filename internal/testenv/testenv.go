// Package testenv starts the real peers that tests talk to, on loopback
// ports chosen at run time, and stops them when the test ends: the gateway
// binary built from the current tree, an upstream HTTP service, and (in
// later issues) PostgreSQL, ClickHouse and sshd.
//
// A peer that cannot be started fails the test with a message that says
// what is missing and how to install it (`make deps`); it never skips.
package testenv

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

// FreeAddr returns a loopback address with a port that was free a moment
// ago. The small race with other processes is acceptable in tests; within
// this process a port is never handed out twice (the kernel may offer a
// just-closed port again, and one config then claims it for two listeners).
func FreeAddr(t testing.TB) string {
	t.Helper()
	for range 100 {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatalf("testenv: no free port: %v", err)
		}
		addr := ln.Addr().String()
		ln.Close()
		if _, dup := handedOut.LoadOrStore(addr, true); !dup {
			return addr
		}
	}
	t.Fatalf("testenv: no port that was not handed out already")
	return ""
}

var handedOut sync.Map // address → true

// ModuleRoot is the directory holding go.mod.
func ModuleRoot(t testing.TB) string {
	t.Helper()
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil || len(bytes.TrimSpace(out)) == 0 {
		t.Fatalf("testenv: cannot find the module root (is the go tool on PATH?): %v", err)
	}
	return filepath.Dir(string(bytes.TrimSpace(out)))
}

var (
	buildOnce sync.Once
	binPath   string
	buildErr  error
)

// GatewayBinary builds cmd/gateway from the current tree once per test
// process and returns its path.
func GatewayBinary(t testing.TB) string {
	t.Helper()
	root := ModuleRoot(t)
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "tollgate-bin-")
		if err != nil {
			buildErr = err
			return
		}
		binPath = filepath.Join(dir, "gateway")
		cmd := exec.Command("go", "build", "-o", binPath, "./cmd/gateway")
		cmd.Dir = root
		if out, err := cmd.CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("go build ./cmd/gateway: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatalf("testenv: %v", buildErr)
	}
	return binPath
}

// RequireCommand fails the test when a program it needs is not installed.
func RequireCommand(t testing.TB, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		t.Fatalf("testenv: %s is not installed; run `make deps` (it installs the test peers)", name)
	}
	return p
}

// ChDBLib is the path of libchdb.so that `make deps` installs for the
// embedded audit store.
func ChDBLib(t testing.TB) string {
	t.Helper()
	p := filepath.Join(ModuleRoot(t), ".deps", "chdb", "libchdb.so")
	if _, err := os.Stat(p); err != nil {
		t.Fatalf("testenv: %s is missing; run `make deps` (it runs .ci/install-chdb)", p)
	}
	return p
}

// stopProcess sends sig to a peer started in the foreground and waits for
// it to exit (exited closes then); SIGKILL after 10 s. A process that has
// already exited, or never started (cmd nil), is left alone.
func stopProcess(cmd *exec.Cmd, exited <-chan struct{}, sig os.Signal) {
	if cmd == nil {
		return
	}
	select {
	case <-exited:
		return
	default:
	}
	cmd.Process.Signal(sig)
	select {
	case <-exited:
	case <-time.After(10 * time.Second):
		cmd.Process.Kill()
		<-exited
	}
}
