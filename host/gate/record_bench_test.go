package gate_test

import (
	"encoding/json"
	"fmt"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tollgate-dev/tollgate/host/audit"
	"github.com/tollgate-dev/tollgate/host/gate"
)

// discard counts rows and keeps none.
type discard struct{ n int }

func (d *discard) Record(audit.Row) error { d.n++; return nil }
func (d *discard) Close() error           { return nil }

func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkRecordingOutput: what recording costs per MiB of terminal
// output (log lines in the pump's 32 KiB reads, hashed into the chain as
// rows), against the floor of encoding the same bytes as JSON strings
// with encoding/json, in the same run. It prints BENCH lines.
func BenchmarkRecordingOutput(b *testing.B) {
	const total = 64 << 20
	line := "2026-12-08T00:00:00Z INFO request handled path=/api/v1/items status=200 user=alice duration=12ms\n"
	chunk := []byte(strings.Repeat(line, (32<<10)/len(line)))
	n := total / len(chunk)

	measure := func(f func()) (time.Duration, time.Duration) {
		c0, t0 := cpuTime(), time.Now()
		f()
		return time.Since(t0), cpuTime() - c0
	}
	baseWall, baseCPU := measure(func() {
		for range n {
			if _, err := json.Marshal(string(chunk)); err != nil {
				b.Fatal(err)
			}
		}
	})
	rec := &discard{}
	recWall, recCPU := measure(func() {
		s := (&gate.Deps{GatewayID: "gw", Recorder: rec}).NewSession(gate.SessionInfo{Protocol: "ssh"})
		s.Open(s.Row(""))
		r := s.Recording()
		for range n {
			r.Output(chunk)
		}
		s.Close("ok", "")
	})
	mib := float64(n*len(chunk)) / (1 << 20)
	fmt.Printf("BENCH recording-output %.1f MB/s ratio=%.2f vs json-marshal (%.1f MB/s)\n",
		mib/recWall.Seconds(), baseWall.Seconds()/recWall.Seconds(), mib/baseWall.Seconds())
	fmt.Printf("BENCH recording-output-cpu %.2f ms/MiB ratio=%.2f vs json-marshal (%.2f ms/MiB)\n",
		float64(recCPU)/1e6/mib, float64(recCPU)/float64(baseCPU), float64(baseCPU)/1e6/mib)
	if rec.n < n/2 {
		b.Fatalf("%d rows for %d chunks of output: the recording did not record", rec.n, n)
	}
}
