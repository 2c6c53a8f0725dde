package ssh_test

import (
	"fmt"
	"os/exec"
	"sort"
	"syscall"
	"testing"
	"time"

	tssh "github.com/tollgate-dev/tollgate/protocols/ssh"
)

// BenchmarkSSHExecCertificate compares, in one run, an exec round trip
// (`ssh ... true`, a new connection each time, medians of 15) with a
// certificate against the same with the token as keyboard-interactive
// answer, through the same listener, and the gateway's CPU per login of
// each (this process's rusage: the clients are other processes); and
// the CPU of one certificate issue through the API against one token
// verification's worth of login. It prints `BENCH <name> <value> <unit>
// ratio=<r> vs <baseline>` lines (make bench runs it with SSHExec).
func BenchmarkSSHExecCertificate(b *testing.B) {
	ce := startCertEnv(b)
	tok := ce.token(b, "agents")
	_, cr, body := ce.issue(b, tok, tssh.CertRequest{Targets: []string{"box"}})
	if cr.Certificate == "" {
		b.Fatalf("issue: %s", body)
	}
	user := ce.sshd.User + "@box"
	cpu := func() time.Duration {
		var ru syscall.Rusage
		syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
		return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	}
	// run returns the median wall time of 15 runs and the CPU per run.
	run := func(mk func() *exec.Cmd) (time.Duration, time.Duration) {
		var ds []time.Duration
		c0 := cpu()
		for range 15 {
			cmd := mk()
			t0 := time.Now()
			if out, err := cmd.CombinedOutput(); err != nil {
				b.Fatalf("%v: %v\n%s", cmd.Args, err, out)
			}
			ds = append(ds, time.Since(t0))
		}
		c := (cpu() - c0) / 15
		sort.Slice(ds, func(i, j int) bool { return ds[i] < ds[j] })
		return ds[len(ds)/2], c
	}
	for range b.N {
		tw, tc := run(func() *exec.Cmd { return ce.sshCmd(tok, user, "true") })
		args := ce.sshCertCmd(b, cr.Certificate, user, "true").Args // key and cert written once
		cw, cc := run(func() *exec.Cmd { return exec.Command(args[0], args[1:]...) })
		fmt.Printf("BENCH ssh-cert-exec-roundtrip %.1f ms ratio=%.2f vs token login (%.1f ms)\n",
			float64(cw)/1e6, float64(cw)/float64(tw), float64(tw)/1e6)
		fmt.Printf("BENCH ssh-cert-login-cpu %.2f ms/login ratio=%.2f vs token login (%.2f ms/login)\n",
			float64(cc)/1e6, float64(cc)/float64(tc), float64(tc)/1e6)
		c0 := cpu()
		const n = 50
		for range n {
			if code, _, body := ce.issue(b, tok, tssh.CertRequest{Targets: []string{"box"}}); code != 200 {
				b.Fatalf("issue: %d %s", code, body)
			}
		}
		ic := (cpu() - c0) / n
		fmt.Printf("BENCH ssh-cert-issue-cpu %.2f ms/certificate ratio=%.2f vs token login (%.2f ms/login)\n",
			float64(ic)/1e6, float64(ic)/float64(tc), float64(tc)/1e6)
	}
}
