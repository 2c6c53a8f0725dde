package ssh_test

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"
)

// BenchmarkSSHExec compares, in one run, the real ssh client through the
// gateway (the redact and guard plugins in Wasm) with the same client
// straight to sshd: an exec round trip (`ssh ... true`, a new connection
// each time, medians of 15) and a 100 MiB `cat` of a file on the
// server (MB/s, and the gateway's CPU per MiB). It prints
// `BENCH <name> <value> <unit> ratio=<r> vs <baseline>` lines.
func BenchmarkSSHExec(b *testing.B) {
	e := startEnv(b, envOptions{chain: wasmChain(b)})
	tok := e.token(b, "agents")
	user := e.sshd.User + "@box"
	big := filepath.Join(e.sshd.Dir, "big")
	f, err := os.Create(big)
	if err != nil {
		b.Fatal(err)
	}
	// Text, as logs are: the redactor has real work on it.
	line := "2026-12-08T00:00:00Z INFO request handled path=/api/v1/items status=200 user=alice duration=12ms\n"
	for written := 0; written < 100<<20; written += len(line) {
		f.WriteString(line)
	}
	f.Close()

	timeIt := func(cmd *exec.Cmd) time.Duration {
		t0 := time.Now()
		if out, err := cmd.CombinedOutput(); err != nil {
			b.Fatalf("%v: %v\n%s", cmd.Args, err, out)
		}
		return time.Since(t0)
	}
	direct := func(command string) *exec.Cmd {
		_, port, _ := strings.Cut(e.sshd.Addr, ":")
		return exec.Command("ssh", "-F", "/dev/null", "-p", port, "-l", e.sshd.User, "-i", e.sshd.ClientKeyFile,
			"-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null", "-o", "LogLevel=ERROR", "-o", "BatchMode=yes",
			"127.0.0.1", "--", command)
	}
	median := func(f func() time.Duration) time.Duration {
		var ds []time.Duration
		for range 15 {
			ds = append(ds, f())
		}
		sort.Slice(ds, func(i, j int) bool { return ds[i] < ds[j] })
		return ds[len(ds)/2]
	}
	for range b.N {
		d := median(func() time.Duration { return timeIt(direct("true")) })
		g := median(func() time.Duration { return timeIt(e.sshCmd(tok, user, "true")) })
		fmt.Printf("BENCH ssh-exec-roundtrip-added %.1f ms ratio=%.2f vs direct (%.1f ms)\n",
			float64(g-d)/1e6, float64(g)/float64(d), float64(d)/1e6)

		cpu := func() time.Duration {
			var ru syscall.Rusage
			syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
			return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
		}
		dt := timeIt(direct("cat " + big))
		// The relay alone: the same listener with no plugin on output.
		plain := startEnv(b, envOptions{})
		c0 := cpu()
		rt := timeIt(plain.sshCmd(plain.token(b, "agents"), user, "cat "+big))
		rcpu := cpu() - c0
		fmt.Printf("BENCH ssh-cat-100MiB-relay %.1f MB/s ratio=%.2f vs direct (%.1f MB/s), %.2f ms CPU/MiB\n",
			100/rt.Seconds(), dt.Seconds()/rt.Seconds(), 100/dt.Seconds(), float64(rcpu)/1e6/100)
		c0 = cpu()
		gt := timeIt(e.sshCmd(tok, user, "cat "+big))
		gcpu := cpu() - c0
		mb := float64(100 << 20 >> 20)
		fmt.Printf("BENCH ssh-cat-100MiB-redact %.1f MB/s ratio=%.2f vs direct (%.1f MB/s)\n", mb/gt.Seconds(), dt.Seconds()/gt.Seconds(), mb/dt.Seconds())
		fmt.Printf("BENCH ssh-cat-100MiB-redact-cpu %.2f ms/MiB ratio=%.2f vs the relay without plugins\n", float64(gcpu)/1e6/mb, float64(gcpu)/float64(rcpu))
	}
}
