package chstore_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/tollgate-dev/tollgate/host/approval"
	"github.com/tollgate-dev/tollgate/host/approval/chstore"
	"github.com/tollgate-dev/tollgate/host/event"
	"github.com/tollgate-dev/tollgate/internal/testenv"
)

var (
	agent = &event.Principal{Issuer: "gha", Subject: "repo:acme/app", Groups: []string{"ci"}}
	alice = &event.Principal{Issuer: "corp", Subject: "alice", Email: "alice@acme.test", Groups: []string{"dba"}}
	bob   = &event.Principal{Issuer: "corp", Subject: "bob", Groups: []string{"dev"}}
)

const poll = 50 * time.Millisecond

// replica is one gateway's Manager on the shared server.
func replica(t testing.TB, addr, gatewayID string) *approval.Manager {
	t.Helper()
	st, err := chstore.Open(context.Background(), chstore.Options{Addrs: []string{addr}, Database: "tollgate"})
	if err != nil {
		t.Fatal(err)
	}
	m, err := approval.New(approval.Options{Store: st, GatewayID: gatewayID, PollInterval: poll})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Shutdown(context.Background()) })
	return m
}

func hold(t testing.TB, m *approval.Manager, session string) *approval.Pending {
	t.Helper()
	p, err := m.Hold(context.Background(), approval.Request{
		SessionID: session, Protocol: "postgres", Kind: "pg.query", Target: "prod-db", Principal: agent,
		Fields: map[string]string{"sql": "DELETE FROM orders"}, Plugin: "approve", Reason: "writes", ApproverGroups: []string{"dba"},
	})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestDecisionThroughAnotherReplica(t *testing.T) {
	srv := testenv.StartClickHouse(t)
	a := replica(t, srv.Addr(), "gw-a")
	b := replica(t, srv.Addr(), "gw-b")

	p := hold(t, a, "s1")
	// Replica b lists and shows what a holds.
	if r, ok := b.Get(p.ID); !ok || r.State != approval.StatePending || r.Fields["sql"] != "DELETE FROM orders" {
		t.Fatalf("b.Get: %+v %v", r, ok)
	}
	if !slices.ContainsFunc(b.List(), func(r approval.Record) bool { return r.ID == p.ID }) {
		t.Fatal("b does not list a's approval")
	}
	// b applies the same rules before submitting.
	if _, err := b.Approve(p.ID, agent, approval.DecideOptions{}); !errors.Is(err, approval.ErrSelfApproval) {
		t.Fatalf("self-approval through b: %v", err)
	}
	if _, err := b.Approve(p.ID, bob, approval.DecideOptions{}); !errors.Is(err, approval.ErrNotApprover) {
		t.Fatalf("outsider through b: %v", err)
	}
	waited := make(chan approval.Decision, 1)
	go func() {
		d, _ := p.Wait(context.Background())
		waited <- d
	}()
	start := time.Now()
	r, err := b.Approve(p.ID, alice, approval.DecideOptions{Reason: "via b"})
	if err != nil {
		t.Fatal(err)
	}
	if r.State != approval.StateApproved || r.DecidedBy != "alice@acme.test" {
		t.Fatalf("b.Approve returned %s by %q", r.State, r.DecidedBy)
	}
	select {
	case d := <-waited:
		if !d.Approved() || d.Reason != "via b" {
			t.Fatalf("a's waiter got %+v", d)
		}
		t.Logf("decision on b to resume on a: %v (poll %v)", time.Since(start), poll)
	case <-time.After(10 * time.Second):
		t.Fatal("a's held request never resumed")
	}

	// A deny through b.
	p2 := hold(t, a, "s2")
	if _, err := b.Deny(p2.ID, alice, "no"); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if d, err := p2.Wait(ctx); err != nil || d.State != approval.StateDenied {
		t.Fatalf("deny through b: %+v %v", d, err)
	}
}

func TestRestartCancelsOnlyItsOwn(t *testing.T) {
	srv := testenv.StartClickHouse(t)
	st, err := chstore.Open(context.Background(), chstore.Options{Addrs: []string{srv.Addr()}})
	if err != nil {
		t.Fatal(err)
	}
	a1, err := approval.New(approval.Options{Store: st, GatewayID: "gw-a", PollInterval: poll})
	if err != nil {
		t.Fatal(err)
	}
	b := replica(t, srv.Addr(), "gw-b")
	pa := hold(t, a1, "s1")
	pb := hold(t, b, "s2")
	st.Close() // gw-a dies

	a2 := replica(t, srv.Addr(), "gw-a")
	if r, _ := a2.Get(pa.ID); r.State != approval.StateCancelled {
		t.Fatalf("a's approval after its restart: %s", r.State)
	}
	if r, _ := a2.Get(pb.ID); r.State != approval.StatePending {
		t.Fatalf("b's approval after a's restart: %s", r.State)
	}
	if r, _ := b.Get(pa.ID); r.State != approval.StateCancelled {
		t.Fatalf("b sees a's approval as %s", r.State)
	}
}

// BenchmarkApprovalResumeShared is the time from a decision made on one
// replica to the request held on another resuming, through ClickHouse,
// with the default poll interval (250 ms), against the same replica's
// in-memory resume. It prints:
//
//	BENCH approval_resume_shared_store <ms> ms ratio=<r> vs approval_resume_same_replica
func BenchmarkApprovalResumeShared(b *testing.B) {
	if b.N > 1 {
		return
	}
	srv := testenv.StartClickHouse(b)
	mk := func(id string) *approval.Manager {
		st, err := chstore.Open(context.Background(), chstore.Options{Addrs: []string{srv.Addr()}})
		if err != nil {
			b.Fatal(err)
		}
		m, err := approval.New(approval.Options{Store: st, GatewayID: id})
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { m.Shutdown(context.Background()) })
		return m
	}
	ra, rb := mk("gw-a"), mk("gw-b")
	mem, _ := approval.New(approval.Options{})
	measure := func(holder, decider *approval.Manager, n int) time.Duration {
		var ds []time.Duration
		for i := range n {
			p := hold(b, holder, fmt.Sprint("s", i))
			woke := make(chan time.Time, 1)
			go func() { p.Wait(context.Background()); woke <- time.Now() }()
			time.Sleep(time.Millisecond)
			t0 := time.Now()
			if _, err := decider.Approve(p.ID, alice, approval.DecideOptions{}); err != nil {
				b.Fatal(err)
			}
			ds = append(ds, (<-woke).Sub(t0))
		}
		slices.Sort(ds)
		return ds[len(ds)/2]
	}
	local := measure(mem, mem, 200)
	shared := measure(ra, rb, 20)
	fmt.Printf("BENCH approval_resume_shared_store %.1f ms ratio=%.0f vs approval_resume_same_replica (%.1f us; poll 250 ms)\n",
		float64(shared)/float64(time.Millisecond), float64(shared)/float64(local), float64(local)/float64(time.Microsecond))
}
