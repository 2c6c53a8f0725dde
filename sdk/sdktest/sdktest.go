// Package sdktest tests a plugin the way the gateway runs it: it builds
// the plugin with `gateway plugin build` and sends it events with
// `gateway plugin test`, which loads it into the real plugin host (fuel,
// memory cap, the host's detectors and SQL classifier) in the gateway
// binary. A plugin's tests are ordinary Go tests run natively:
//
//	func TestDeniesAdmin(t *testing.T) {
//		wasm := sdktest.Build(t, ".")
//		r := sdktest.Run(t, wasm, `blocked_paths = ["/admin"]`, `{"kind":"http.request","fields":{"path":"/admin"}}`)
//		if r.Action != "deny" { t.Fatalf("%+v", r) }
//	}
//
// The gateway binary is $TOLLGATE_GATEWAY when set; else, inside the
// Tollgate repository, one built from its source; else `gateway` on PATH.
// Without one the test fails, saying so.
package sdktest

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// Result is what `gateway plugin test` prints: the verdict and the event
// as the plugin left it.
type Result struct {
	Action         string            `json:"action"` // allow, rewrite, deny, hold, or error (the plugin crashed)
	Plugin         string            `json:"plugin"`
	Reason         string            `json:"reason"`
	ApproverGroups []string          `json:"approver_groups"`
	Changes        map[string]string `json:"changes"`
	Annotations    map[string]string `json:"annotations"`
	Fields         map[string]string `json:"fields"`
	Rows           *Rows             `json:"rows"`
	Failure        string            `json:"failure"` // what failed, when Action is "error"
}

// Rows is a row batch; a nil value is SQL NULL.
type Rows struct {
	Columns []string    `json:"columns"`
	Values  [][]*string `json:"values"`
}

var (
	repoOnce sync.Once
	repoBin  string
	repoErr  error
)

// Gateway returns the gateway binary the tests run.
func Gateway(t testing.TB) string {
	t.Helper()
	if p := os.Getenv("TOLLGATE_GATEWAY"); p != "" {
		return p
	}
	if root := tollgateRoot(); root != "" {
		repoOnce.Do(func() {
			dir, err := os.MkdirTemp("", "tollgate-sdktest-")
			if err != nil {
				repoErr = err
				return
			}
			repoBin = filepath.Join(dir, "gateway")
			cmd := exec.Command("go", "build", "-o", repoBin, "./cmd/gateway")
			cmd.Dir = root
			if out, err := cmd.CombinedOutput(); err != nil {
				repoErr = fmt.Errorf("go build ./cmd/gateway in %s: %v\n%s", root, err, out)
			}
		})
		if repoErr != nil {
			t.Fatalf("sdktest: %v", repoErr)
		}
		return repoBin
	}
	p, err := exec.LookPath("gateway")
	if err != nil {
		t.Fatal("sdktest: no gateway binary: set TOLLGATE_GATEWAY to its path or put `gateway` on PATH")
	}
	return p
}

// tollgateRoot is the Tollgate repository around the working directory,
// or "" outside one.
func tollgateRoot() string {
	dir, err := os.Getwd()
	if err != nil {
		return ""
	}
	for {
		if f, err := os.Open(filepath.Join(dir, "go.mod")); err == nil {
			sc := bufio.NewScanner(f)
			for sc.Scan() {
				if strings.TrimSpace(sc.Text()) == "module github.com/tollgate-dev/tollgate" {
					f.Close()
					return dir
				}
			}
			f.Close()
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return ""
		}
		dir = parent
	}
}

// Build builds the plugin in dir with `gateway plugin build` into the
// test's temporary directory and returns the .wasm file's path.
func Build(t testing.TB, dir string) string {
	t.Helper()
	out := filepath.Join(t.TempDir(), "plugin.wasm")
	cmd := exec.Command(Gateway(t), "plugin", "build", dir, "-o", out)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("sdktest: gateway plugin build %s: %v\n%s", dir, err, stderr.String())
	}
	return out
}

// Run loads wasm with config (the plugin's [plugins.config] table, as
// TOML; may be empty) and sends it the event (JSON, as `gateway plugin
// test --event` reads it). A crash is not a test failure here: it comes
// back as Action "error" with the Failure, for the test to judge.
func Run(t testing.TB, wasm, config, event string) Result {
	t.Helper()
	dir := t.TempDir()
	cfgPath, evPath := filepath.Join(dir, "config.toml"), filepath.Join(dir, "event.json")
	if err := os.WriteFile(cfgPath, []byte(config), 0o600); err != nil {
		t.Fatalf("sdktest: %v", err)
	}
	if err := os.WriteFile(evPath, []byte(event), 0o600); err != nil {
		t.Fatalf("sdktest: %v", err)
	}
	cmd := exec.Command(Gateway(t), "plugin", "test", wasm, "--event", evPath, "--config", cfgPath)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	var exit *exec.ExitError
	if err != nil && !(errors.As(err, &exit) && exit.ExitCode() == 1 && stdout.Len() > 0) {
		t.Fatalf("sdktest: gateway plugin test: %v\n%s", err, stderr.String())
	}
	var r Result
	if err := json.Unmarshal(stdout.Bytes(), &r); err != nil {
		t.Fatalf("sdktest: gateway plugin test printed %q: %v (stderr: %s)", stdout.String(), err, stderr.String())
	}
	return r
}
