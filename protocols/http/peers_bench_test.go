package http_test

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/tollgate-dev/tollgate/internal/testenv"
)

// The peers BenchmarkWrk measures beside nginx: Caddy from Debian and a
// bare httputil.ReverseProxy (the Go floor), each a process of its own so
// that its CPU time can be read from /proc like nginx's and the gateway's.

// benchPeer is a proxy process the benchmark started.
type benchPeer struct {
	addr string
	pid  int
}

// cpu is the CPU time (user and system) the peer's process and its
// children (nginx's workers) have used so far.
func (p benchPeer) cpu(b *testing.B) time.Duration { return procTreeCPU(b, p.pid) }

// bareProxySource is the Go floor: httputil.ReverseProxy with nothing
// around it but the credential the upstream wants, and an idle pool large
// enough to keep one upstream connection per client connection (the
// default, 2 per host, would dial for most requests at 32 connections).
const bareProxySource = `package main

import (
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
)

func main() {
	listen, upstream, token := os.Args[1], os.Args[2], os.Args[3]
	u := &url.URL{Scheme: "http", Host: upstream}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConns, tr.MaxIdleConnsPerHost = 256, 256
	rp := &httputil.ReverseProxy{Transport: tr, Rewrite: func(r *httputil.ProxyRequest) {
		r.SetURL(u)
		r.Out.Header.Set("Authorization", "Bearer "+token)
	}}
	if err := http.ListenAndServe(listen, rp); err != nil {
		os.Stderr.WriteString(err.Error() + "\n")
		os.Exit(1)
	}
}
`

// startBareProxy builds bareProxySource with the go tool that runs the
// tests, starts it in front of upstream, and returns it once it listens.
func startBareProxy(b *testing.B, upstream, token string) benchPeer {
	b.Helper()
	dir := b.TempDir()
	os.WriteFile(filepath.Join(dir, "go.mod"), []byte("module bareproxy\n\ngo 1.22\n"), 0o644)
	os.WriteFile(filepath.Join(dir, "main.go"), []byte(bareProxySource), 0o644)
	bin := filepath.Join(dir, "bareproxy")
	build := exec.Command("go", "build", "-o", bin, ".")
	build.Dir = dir
	// Standard library only: no module lookups, no workspace.
	build.Env = append(os.Environ(), "GOWORK=off", "GOFLAGS=", "GOPROXY=off")
	if out, err := build.CombinedOutput(); err != nil {
		b.Fatalf("bare reverse proxy: go build: %v\n%s", err, out)
	}
	addr := testenv.FreeAddr(b)
	var out bytes.Buffer
	cmd := exec.Command(bin, addr, upstream, token)
	cmd.Stdout, cmd.Stderr = &out, &out
	return startPeer(b, "bare reverse proxy", cmd, addr, &out, nil)
}

// startBenchCaddy runs Debian's caddy (2.6) in the foreground with a
// reverse_proxy Caddyfile in front of upstream, and returns it once it
// listens. The packaged service is not used: its config, state and admin
// port would be shared with whatever else runs on the machine.
func startBenchCaddy(b *testing.B, bin, upstream, token string) benchPeer {
	b.Helper()
	dir := b.TempDir()
	addr := testenv.FreeAddr(b)
	_, port, _ := net.SplitHostPort(addr)
	// No admin endpoint (it would take port 2019), no automatic HTTPS,
	// no access log (nginx runs with access_log off too).
	caddyfile := fmt.Sprintf(`{
	admin off
	auto_https off
}

:%s {
	bind 127.0.0.1
	reverse_proxy %s {
		header_up Authorization "Bearer %s"
	}
}
`, port, upstream, token)
	path := filepath.Join(dir, "Caddyfile")
	if err := os.WriteFile(path, []byte(caddyfile), 0o644); err != nil {
		b.Fatalf("caddy: %v", err)
	}
	var out bytes.Buffer
	cmd := exec.Command(bin, "run", "--config", path, "--adapter", "caddyfile")
	cmd.Dir = dir
	// Caddy keeps its state under $HOME and the XDG directories: a temp
	// dir of its own.
	cmd.Env = append(os.Environ(), "HOME="+dir, "XDG_CONFIG_HOME="+filepath.Join(dir, "config"), "XDG_DATA_HOME="+filepath.Join(dir, "data"))
	cmd.Stdout, cmd.Stderr = &out, &out
	return startPeer(b, "caddy", cmd, addr, &out, func() string { return caddyfile })
}

// startPeer starts cmd, stops it (SIGTERM, then SIGKILL) when the
// benchmark ends, and waits until addr accepts connections.
func startPeer(b *testing.B, name string, cmd *exec.Cmd, addr string, out *bytes.Buffer, config func() string) benchPeer {
	b.Helper()
	if err := cmd.Start(); err != nil {
		b.Fatalf("%s: start: %v", name, err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	b.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(5 * time.Second):
			cmd.Process.Kill()
			<-exited
		}
	})
	// out is written by the process's copy goroutines until it exits:
	// read it only once it has.
	fail := func(format string, args ...any) {
		cmd.Process.Kill()
		<-exited
		extra := ""
		if config != nil {
			extra = "\nconfig:\n" + config()
		}
		b.Fatalf("%s: %s\n%s%s", name, fmt.Sprintf(format, args...), out.String(), extra)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
			return benchPeer{addr: addr, pid: cmd.Process.Pid}
		}
		select {
		case <-exited:
			fail("exited during start")
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			fail("not listening on %s after 10s: %v", addr, err)
		}
	}
}

// procTreeCPU is the CPU time of a process and of its direct children
// (nginx's master and workers), from /proc/PID/stat: for a thread group
// leader the kernel sums every thread.
func procTreeCPU(b *testing.B, pid int) time.Duration {
	b.Helper()
	total, _, ok := procStat(pid)
	if !ok {
		b.Fatalf("cpu time of pid %d: no such process", pid)
	}
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		child, err := strconv.Atoi(e.Name())
		if err != nil || child == pid {
			continue
		}
		if t, ppid, ok := procStat(child); ok && ppid == pid {
			total += t
		}
	}
	return total
}

// procStat reads utime+stime and the parent pid of one process.
func procStat(pid int) (cpu time.Duration, ppid int, ok bool) {
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, 0, false
	}
	// Fields after the parenthesized command: state is the first, ppid
	// the second, utime and stime the 12th and 13th, in clock ticks
	// (USER_HZ, 100 on Linux).
	s := string(stat)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	if len(f) < 13 {
		return 0, 0, false
	}
	ppid, _ = strconv.Atoi(f[1])
	ut, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(ut+st) * 10 * time.Millisecond, ppid, true
}

// cpuSettle is how long the benchmark waits after a load before it reads
// a proxy's CPU time: a gateway's audit pipeline sends what it holds at
// least every second.
const cpuSettle = 1500 * time.Millisecond

// wrkGateway is a `gateway serve` the benchmark started.
type wrkGateway struct {
	addr string
	g    *testenv.Gateway
	// admin and adminAuth reach its /debug/pprof/ when WRK_CPUPROFILE is
	// set; empty otherwise.
	admin, adminAuth string
}

// profile takes a CPU profile and an allocation profile of the gateway
// process for d, in the background, into $WRK_CPUPROFILE/name.pprof and
// name.allocs.pprof; the channel closes when both are written. Without
// WRK_CPUPROFILE it does nothing.
func (g wrkGateway) profile(b *testing.B, name string, d time.Duration) <-chan struct{} {
	done := make(chan struct{})
	dir := os.Getenv("WRK_CPUPROFILE")
	if dir == "" || g.admin == "" {
		close(done)
		return done
	}
	var wg sync.WaitGroup
	for path, file := range map[string]string{"profile": name + ".pprof", "allocs": name + ".allocs.pprof"} {
		wg.Go(func() {
			req, _ := http.NewRequest("GET", fmt.Sprintf("http://%s/debug/pprof/%s?seconds=%d", g.admin, path, int(d.Seconds())), nil)
			req.Header.Set("Authorization", g.adminAuth)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				b.Errorf("profile %s: %v", file, err)
				return
			}
			defer resp.Body.Close()
			data, err := io.ReadAll(resp.Body)
			if err != nil || resp.StatusCode != http.StatusOK {
				b.Errorf("profile %s: status %d, %v", file, resp.StatusCode, err)
				return
			}
			if err := os.WriteFile(filepath.Join(dir, file), data, 0o644); err != nil {
				b.Errorf("profile %s: %v", file, err)
			}
		})
	}
	go func() { wg.Wait(); close(done) }()
	return done
}

// startWrkGateway runs a gateway (dev issuer) in front of upstream with
// extra appended to its config ([[plugins]], [audit]), and returns it with
// the Authorization header of a token from its issuer.
func startWrkGateway(b *testing.B, upstream, upstreamToken, extra string) (wrkGateway, string) {
	b.Helper()
	issuerAddr := testenv.FreeAddr(b)
	gwAddr := testenv.FreeAddr(b)
	adminAddr := ""
	wait := []string{gwAddr, issuerAddr}
	if os.Getenv("WRK_CPUPROFILE") != "" {
		adminAddr = testenv.FreeAddr(b)
		wait = append(wait, adminAddr)
		extra += fmt.Sprintf("\n[admin]\nlisten = %q\ngroups = [\"bench-admin\"]\npprof = true\n", adminAddr)
	}
	// log_level is "info", not "warn": testenv.StartGateway waits for the
	// "gateway ready" line, which serve logs at info. Nothing on the
	// request path logs at info, so the figures are the same.
	cfg := fmt.Sprintf(`[gateway]
id = "bench-gateway"
data_dir = "data"
log_level = "info"

[dev]
issuer_listen = %q
audience = "tollgate"

[[targets]]
name = "bench"
protocol = "http"
upstream = "http://%s"
[targets.credential]
type = "bearer"
token = "env:BENCH_UPSTREAM_TOKEN"

[[listeners]]
name = "http"
protocol = "http"
listen = %q
[[listeners.routes]]
target = "bench"

[[access]]
name = "dev-reaches-bench"
issuers = ["dev"]
targets = ["bench"]

%s`, issuerAddr, upstream, gwAddr, extra)
	// BENCH_GATEWAY_ENV passes extra environment to the gateways alone, to
	// try runtime settings without touching the baselines:
	// BENCH_GATEWAY_ENV="GOGC=800 GOMAXPROCS=1" make bench
	g := testenv.StartGateway(b, testenv.GatewayOptions{
		Config: cfg,
		Dev:    true,
		Env:    append([]string{"BENCH_UPSTREAM_TOKEN=" + upstreamToken}, strings.Fields(os.Getenv("BENCH_GATEWAY_ENV"))...),
		Wait:   wait,
		// Compiling three plugins from cold on two busy cores takes
		// longer than the default 15 s.
		ReadyTimeout: 2 * time.Minute,
	})
	out, errOut, code := g.Run("token", "-c", g.Config, "--sub", "bench", "--ttl", "1h")
	if code != 0 {
		b.Fatalf("gateway token: exit %d\nstdout: %s\nstderr: %s", code, out, errOut)
	}
	jwt := strings.TrimSpace(out)
	if jwt == "" {
		b.Fatalf("gateway token printed nothing; stderr: %s", errOut)
	}
	gw := wrkGateway{addr: gwAddr, g: g}
	if adminAddr != "" {
		out, errOut, code := g.Run("token", "-c", g.Config, "--sub", "bench-admin", "--group", "bench-admin", "--ttl", "1h")
		if code != 0 {
			b.Fatalf("gateway token (admin): exit %d\nstdout: %s\nstderr: %s", code, out, errOut)
		}
		gw.admin, gw.adminAuth = adminAddr, "Bearer "+strings.TrimSpace(out)
	}
	return gw, "Authorization: Bearer " + jwt
}

// requireBenchPeer fails the benchmark when a program `make bench-deps`
// installs (nginx, Caddy, wrk) is missing, naming the target and package.
func requireBenchPeer(b *testing.B, name, pkg string) string {
	b.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		b.Fatalf("%s is not installed: `make bench-deps` installs it (Debian package %s)", name, pkg)
	}
	return p
}
