package http_test

import (
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tollgate-dev/tollgate/internal/testenv"
)

// BenchmarkGitHTTP measures Git smart HTTP through the gateway against the
// same git http-backend reached directly, in the same run:
//
//   - git clone of a 50 MiB repository: the time through the gateway
//     against direct (target: the gateway's speed at least 0.7 of
//     direct), and the gateway's CPU per clone against the CPU git
//     itself spends on it (the client and http-backend);
//   - a 20 MiB push with the secret scan on against off: time and the
//     gateway's CPU per push.
//
// Each figure is the median of gitBenchRuns runs, alternating the two
// sides so that a noisy neighbour hurts both.
func BenchmarkGitHTTP(b *testing.B) {
	e := startGit(b, gitOptions{extra: `
[[targets]]
name = "repos-scan"
protocol = "http"
upstream = "%UPSTREAM%"
git = true
git_secret_scan = true
[targets.credential]
type = "bearer"
token = "env:TEST_UPSTREAM_TOKEN"

[[listeners.routes]]
target = "repos-scan"
path_prefix = "/gitscan"
`})
	runGitBench(b, e)
}

const gitBenchRuns = 3

// childCPU is the CPU time of the test process's waited-for children
// (git clients, and http-backend started by net/http/cgi).
func childCPU() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_CHILDREN, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func median(d []time.Duration) time.Duration {
	s := slices.Clone(d)
	slices.Sort(s)
	return s[len(s)/2]
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

func runGitBench(b *testing.B, e *gitEnv) {
	// The 50 MiB repository, made straight in the upstream.
	e.srv.InitBare(b, "acme/big.git")
	work := newWork(b)
	for i := range 10 {
		commitRandom(b, work, 5, 1<<20, fmt.Sprintf("big %d", i))
	}
	testenv.Git(b, work, "push", "-q", filepath.Join(e.srv.Root, "acme/big.git"), "main")

	direct := "http://" + strings.TrimPrefix(e.srv.URL, "http://") + "/acme/big.git"
	through := e.remote[:strings.LastIndex(e.remote, "/")] + "/big.git"
	clone := func(url string, header string) time.Duration {
		dir := filepath.Join(b.TempDir(), "c")
		start := time.Now()
		out, err := testenv.GitCmd(b, "", "-c", "http.extraHeader="+header, "clone", "-q", url, dir).CombinedOutput()
		if err != nil {
			b.Fatalf("clone %s: %v\n%s", url, err, out)
		}
		return time.Since(start)
	}
	gwHeader := "Authorization: Bearer " + e.token
	upHeader := "Authorization: Bearer " + upstreamSecret
	clone(direct, upHeader) // warm the page cache and the pack bitmaps' absence alike
	clone(through, gwHeader)
	var tDirect, tGateway []time.Duration
	var gitCPU, gwCPU time.Duration
	for range gitBenchRuns {
		c0 := childCPU()
		tDirect = append(tDirect, clone(direct, upHeader))
		gitCPU += childCPU() - c0
		g0, _, _ := procStat(e.gw.PID())
		tGateway = append(tGateway, clone(through, gwHeader))
		time.Sleep(cpuSettle)
		g1, _, _ := procStat(e.gw.PID())
		gwCPU += g1 - g0
	}
	md, mg := median(tDirect), median(tGateway)
	fmt.Printf("BENCH git_clone_50mib_time %.0f ms ratio=%.2f vs direct (%.0f ms); ratio is direct/gateway time, target >= 0.7\n", ms(mg), float64(md)/float64(mg), ms(md))
	gitPer, gwPer := gitCPU/gitBenchRuns, gwCPU/gitBenchRuns
	fmt.Printf("BENCH git_clone_50mib_gateway_cpu %.0f ms/clone ratio=%.2f vs git client+http-backend (%.0f ms/clone)\n", ms(gwPer), float64(gwPer)/float64(gitPer), ms(gitPer))

	// 20 MiB pushes to fresh repositories, scan off (/git) and on (/gitscan).
	src := newWork(b)
	for i := range 4 {
		commitRandom(b, src, 5, 1<<20, fmt.Sprintf("push %d", i))
	}
	n := 0
	push := func(prefix string) (time.Duration, time.Duration) {
		n++
		name := fmt.Sprintf("acme/push-%d.git", n)
		e.srv.InitBare(b, name)
		url := "http://" + e.addr + prefix + "/" + name
		g0, _, _ := procStat(e.gw.PID())
		start := time.Now()
		out, err := testenv.GitCmd(b, src, "-c", "http.extraHeader="+gwHeader, "push", "-q", url, "main").CombinedOutput()
		d := time.Since(start)
		if err != nil {
			b.Fatalf("push %s: %v\n%s", url, err, out)
		}
		time.Sleep(cpuSettle)
		g1, _, _ := procStat(e.gw.PID())
		return d, g1 - g0
	}
	push("/git") // warm: the detectors compile on first use
	push("/gitscan")
	var tOff, tOn []time.Duration
	var cOff, cOn time.Duration
	for range gitBenchRuns {
		d, c := push("/git")
		tOff, cOff = append(tOff, d), cOff+c
		d, c = push("/gitscan")
		tOn, cOn = append(tOn, d), cOn+c
	}
	moff, mon := median(tOff), median(tOn)
	fmt.Printf("BENCH git_push_20mib_scan_time %.0f ms ratio=%.2f vs scan off (%.0f ms)\n", ms(mon), float64(mon)/float64(moff), ms(moff))
	on, off := cOn/gitBenchRuns, cOff/gitBenchRuns
	fmt.Printf("BENCH git_push_20mib_scan_cpu %.0f ms/push ratio=%.2f vs scan off (%.0f ms/push)\n", ms(on), float64(on)/float64(off), ms(off))
}
