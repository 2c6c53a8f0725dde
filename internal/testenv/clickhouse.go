package testenv

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// ClickHouseServer is where Debian's clickhouse-server package puts the
// server. Tests run it directly, never through a service manager.
const ClickHouseServer = "/usr/sbin/clickhouse-server"

// ClickHouse is a clickhouse-server process in the foreground, with its
// config, data and logs in a temp directory, listening on loopback only.
type ClickHouse struct {
	Dir string // config.xml, users.xml and the data directory

	tcp, web string
	extra    string // more server config (a cluster's), inside <yandex>
	profiles string // more settings profiles, inside <profiles>
	defaults string // more settings of the default profile
	mu       sync.Mutex
	out      bytes.Buffer // what the server printed (warnings and errors)
	cmd      *exec.Cmd
	exited   chan struct{}
}

// StartClickHouse starts a server that lives until the test ends. A
// missing server fails the test: the audit tests need the real thing.
func StartClickHouse(t testing.TB) *ClickHouse {
	t.Helper()
	c := NewClickHouse(t)
	c.Start(t)
	return c
}

// NewClickHouse prepares a server (config, directory, ports) without
// starting it: its Addr has nothing listening until Start, which is what
// an outage test needs (a client configured with the address first, the
// server appearing there later). It is stopped when the test ends.
func NewClickHouse(t testing.TB) *ClickHouse {
	t.Helper()
	c := newClickHouse(t)
	if err := c.writeConfig(); err != nil {
		t.Fatalf("testenv: clickhouse config: %v", err)
	}
	return c
}

// newClickHouse is a server's directory and ports, its config not yet
// written (a cluster's nodes need each other's ports first).
func newClickHouse(t testing.TB) *ClickHouse {
	t.Helper()
	if _, err := os.Stat(ClickHouseServer); err != nil {
		t.Fatalf("testenv: clickhouse-server is not installed; run `make deps` (it installs the test peers): %v", err)
	}
	c := &ClickHouse{Dir: t.TempDir(), tcp: FreeAddr(t), web: FreeAddr(t)}
	t.Cleanup(func() { c.stop() })
	return c
}

// Start starts a server made by NewClickHouse and waits until it answers.
func (c *ClickHouse) Start(t testing.TB) {
	t.Helper()
	c.start(t)
}

// Addr is the native protocol address (host:port), what clickhouse-go
// dials.
func (c *ClickHouse) Addr() string { return c.tcp }

// HTTPAddr is the HTTP interface's address (host:port).
func (c *ClickHouse) HTTPAddr() string { return c.web }

// Output is what the server printed so far (its console log, warning level).
func (c *ClickHouse) Output() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.out.String()
}

// Kill ends the server with SIGKILL, as a crash or an OOM kill would, and
// waits for the process to be gone.
func (c *ClickHouse) Kill() {
	c.mu.Lock()
	cmd, exited := c.cmd, c.exited
	c.mu.Unlock()
	if cmd == nil {
		return
	}
	cmd.Process.Kill()
	<-exited
}

// Restart starts the server again on the same directory and ports (after
// Kill, or stopping it gracefully first if it still runs).
func (c *ClickHouse) Restart(t testing.TB) {
	t.Helper()
	c.stop()
	c.start(t)
}

func (c *ClickHouse) start(t testing.TB) {
	t.Helper()
	cmd := exec.Command(ClickHouseServer, "--config-file="+filepath.Join(c.Dir, "config.xml"))
	cmd.Dir = c.Dir
	cmd.Stdout = lockedWriterFor(&c.mu, &c.out)
	cmd.Stderr = cmd.Stdout
	if err := cmd.Start(); err != nil {
		t.Fatalf("testenv: start clickhouse-server: %v", err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	c.mu.Lock()
	c.cmd, c.exited = cmd, exited
	c.mu.Unlock()

	// Ready means the HTTP interface answers /ping; the native port opens
	// at the same moment. A restart after SIGKILL replays its parts first,
	// so allow more than the 0.4 s a fresh start takes.
	deadline := time.Now().Add(60 * time.Second)
	for {
		select {
		case <-exited:
			t.Fatalf("testenv: clickhouse-server exited at startup:\n%s", c.Output())
		default:
		}
		if pingOK("http://" + c.web + "/ping") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("testenv: clickhouse-server not ready in 60s:\n%s", c.Output())
		}
		time.Sleep(50 * time.Millisecond)
	}
	waitListening(t, c.tcp, deadline)
}

func pingOK(url string) bool {
	// No keep-alive: the server waits for open connections at shutdown.
	cl := http.Client{Timeout: time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	resp, err := cl.Get(url)
	if err != nil {
		return false
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode == 200 && strings.TrimSpace(string(b)) == "Ok."
}

// stop sends SIGTERM and waits; SIGKILL after 10 s.
func (c *ClickHouse) stop() {
	c.mu.Lock()
	cmd, exited := c.cmd, c.exited
	c.mu.Unlock()
	stopProcess(cmd, exited, syscall.SIGTERM)
}

func (c *ClickHouse) writeConfig() error {
	host, tcpPort, _ := net.SplitHostPort(c.tcp)
	_, httpPort, _ := net.SplitHostPort(c.web)
	d := c.Dir
	config := fmt.Sprintf(`<?xml version="1.0"?>
<yandex>
    <logger>
        <level>warning</level>
        <console>1</console>
    </logger>
    <listen_host>%s</listen_host>
    <tcp_port>%s</tcp_port>
    <http_port>%s</http_port>
    <path>%s/data/</path>
    <tmp_path>%s/tmp/</tmp_path>
    <user_files_path>%s/user_files/</user_files_path>
    <format_schema_path>%s/format_schemas/</format_schema_path>
    <users_config>%s/users.xml</users_config>
    <default_profile>default</default_profile>
    <default_database>default</default_database>
    <mark_cache_size>268435456</mark_cache_size>
    <max_concurrent_queries>100</max_concurrent_queries>
%s</yandex>
`, host, tcpPort, httpPort, d, d, d, d, d, c.extra)
	users := `<?xml version="1.0"?>
<yandex>
    <profiles>
        <default>
            <max_memory_usage>4000000000</max_memory_usage>
` + c.defaults + `        </default>
` + c.profiles + `    </profiles>
    <users>
        <default>
            <password></password>
            <networks>
                <ip>127.0.0.1</ip>
            </networks>
            <profile>default</profile>
            <quota>default</quota>
        </default>
    </users>
    <quotas>
        <default>
            <interval>
                <duration>3600</duration>
                <queries>0</queries>
                <errors>0</errors>
                <result_rows>0</result_rows>
                <read_rows>0</read_rows>
                <execution_time>0</execution_time>
            </interval>
        </default>
    </quotas>
</yandex>
`
	if err := os.WriteFile(filepath.Join(d, "config.xml"), []byte(config), 0o600); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(d, "users.xml"), []byte(users), 0o600)
}

// lockedWriterFor serialises the server's stdout and stderr into buf.
func lockedWriterFor(mu *sync.Mutex, buf *bytes.Buffer) io.Writer {
	return writerFunc(func(p []byte) (int, error) {
		mu.Lock()
		defer mu.Unlock()
		return buf.Write(p)
	})
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }
