package approval_test

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/tollgate-dev/tollgate/host/approval"
)

// BenchmarkApprovalResume measures the time from a decision (the call to
// Approve) to the held request's goroutine running again, on the replica
// that holds it: in memory, and with the file store
// (the decision is fsynced before the request resumes). The baseline is a
// bare channel handoff between two goroutines in the same run. Medians
// over 300 holds each. It prints:
//
//	BENCH approval_resume_same_replica <us> us ratio=<r> vs channel_handoff
//	BENCH approval_resume_file_store <us> us ratio=<r> vs channel_handoff
//
// There is no shared store in this build, so no cross-replica figure.
func BenchmarkApprovalResume(b *testing.B) {
	if b.N > 1 {
		return
	}
	const n = 300
	base := median(handoff(n))
	mem, _ := approval.New(approval.Options{})
	defer mem.Shutdown(context.Background())
	st, err := approval.OpenFileStore(filepath.Join(b.TempDir(), "approvals.jsonl"))
	if err != nil {
		b.Fatal(err)
	}
	file, _ := approval.New(approval.Options{Store: st})
	defer file.Shutdown(context.Background())
	for _, c := range []struct {
		name string
		m    *approval.Manager
	}{{"approval_resume_same_replica", mem}, {"approval_resume_file_store", file}} {
		d := median(resume(b, c.m, n))
		fmt.Printf("BENCH %s %.1f us ratio=%.1f vs channel_handoff (%.1f us)\n", c.name, us(d), float64(d)/float64(base), us(base))
	}
}

func us(d time.Duration) float64 { return float64(d) / float64(time.Microsecond) }

func median(ds []time.Duration) time.Duration {
	slices.Sort(ds)
	return ds[len(ds)/2]
}

// handoff: one goroutine waits on a channel, another closes it.
func handoff(n int) []time.Duration {
	out := make([]time.Duration, 0, n)
	for range n {
		ch := make(chan struct{})
		woke := make(chan time.Time)
		go func() { <-ch; woke <- time.Now() }()
		time.Sleep(50 * time.Microsecond) // let it park
		t0 := time.Now()
		close(ch)
		out = append(out, (<-woke).Sub(t0))
	}
	return out
}

// resume: a held request waits in Pending.Wait; the decider approves.
func resume(b *testing.B, m *approval.Manager, n int) []time.Duration {
	out := make([]time.Duration, 0, n)
	for i := range n {
		p, err := m.Hold(context.Background(), request(fmt.Sprint("s", i), "DELETE FROM orders"))
		if err != nil {
			b.Fatal(err)
		}
		woke := make(chan time.Time)
		go func() {
			d, err := p.Wait(context.Background())
			if err != nil || !d.Approved() {
				panic(fmt.Sprint("not approved: ", d, err))
			}
			woke <- time.Now()
		}()
		time.Sleep(50 * time.Microsecond)
		t0 := time.Now()
		if _, err := m.Approve(p.ID, alice, approval.DecideOptions{}); err != nil {
			b.Fatal(err)
		}
		out = append(out, (<-woke).Sub(t0))
	}
	return out
}
