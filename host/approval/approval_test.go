package approval_test

import (
	"context"
	"errors"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/tollgate-dev/tollgate/host/approval"
	"github.com/tollgate-dev/tollgate/host/audit"
	"github.com/tollgate-dev/tollgate/host/event"
)

var (
	agent = &event.Principal{Issuer: "gha", Subject: "repo:acme/app:ref:refs/heads/main", Groups: []string{"ci", "dba"},
		Kept: map[string]string{"repository": "acme/app", "actor": "octocat"}}
	alice    = &event.Principal{Issuer: "corp", Subject: "alice", Email: "alice@acme.test", Groups: []string{"dba"}}
	bob      = &event.Principal{Issuer: "corp", Subject: "bob", Email: "bob@acme.test", Groups: []string{"sre"}}
	mallory  = &event.Principal{Issuer: "corp", Subject: "mallory", Groups: []string{"dev"}}
	agentAlt = &event.Principal{Issuer: "gha", Subject: agent.Subject, Groups: []string{"dba"}} // the same identity, another token
)

// rows is the audit recorder the tests read back.
type rows struct {
	mu sync.Mutex
	rs []audit.Row
}

func (r *rows) Record(row audit.Row) error {
	r.mu.Lock()
	r.rs = append(r.rs, row)
	r.mu.Unlock()
	return nil
}
func (r *rows) Close() error { return nil }
func (r *rows) all() []audit.Row {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]audit.Row(nil), r.rs...)
}

func request(session, sql string) approval.Request {
	return approval.Request{
		SessionID: session, Protocol: "postgres", Kind: "pg.query", Target: "prod-db", Principal: agent,
		Fields: map[string]string{"sql": sql}, Plugin: "approve", Reason: "writes need a DBA",
		ApproverGroups: []string{"dba", "sre"},
	}
}

func newManager(t *testing.T, o approval.Options) (*approval.Manager, *rows) {
	t.Helper()
	rec := &rows{}
	if o.Recorder == nil {
		o.Recorder = rec
	}
	m, err := approval.New(o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Shutdown(context.Background()) })
	return m, rec
}

func hold(t *testing.T, m *approval.Manager, req approval.Request) *approval.Pending {
	t.Helper()
	p, err := m.Hold(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func waitDecision(t *testing.T, p *approval.Pending) approval.Decision {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	d, err := p.Wait(ctx)
	if err != nil {
		t.Fatalf("wait: %v", err)
	}
	return d
}

func TestApproveOnce(t *testing.T) {
	m, rec := newManager(t, approval.Options{URL: func(id string) string { return "https://gw.test/ui/approvals/" + id }})
	p := hold(t, m, request("s1", "DELETE FROM orders WHERE id = 1"))
	if p.URL != "https://gw.test/ui/approvals/"+p.ID {
		t.Fatalf("url %q", p.URL)
	}
	if _, err := m.Approve(p.ID, alice, approval.DecideOptions{Reason: "ticket 42"}); err != nil {
		t.Fatal(err)
	}
	d := waitDecision(t, p)
	if !d.Approved() || d.Approver != "alice@acme.test" || d.Reason != "ticket 42" {
		t.Fatalf("decision %+v", d)
	}
	// The decision goes to one request only.
	if _, ok := p.Take(); ok {
		t.Fatal("taken twice")
	}
	if _, err := m.Deny(p.ID, bob, "too late"); !errors.Is(err, approval.ErrNotPending) {
		t.Fatalf("deny after approve: %v", err)
	}
	// The approval's own chain: request, decision; it verifies as complete.
	rs := rec.all()
	if len(rs) != 2 || rs[0].Kind != audit.KindApprovalRequest || rs[1].Kind != audit.KindApprovalDecision ||
		rs[1].Approver != "alice@acme.test" || rs[1].ApprovalID != p.ID || rs[1].Status != "approved" || rs[1].Verdict != "allow" {
		t.Fatalf("rows %+v", rs)
	}
	if f := audit.Verify(rs); len(f) != 1 || f[0].Status != audit.StatusComplete {
		t.Fatalf("verify %+v", f)
	}
	if rs[0].Subject != agent.Subject || rs[0].Claims["repository"] != "acme/app" || rs[0].Request["sql"] == "" {
		t.Fatalf("request row %+v", rs[0])
	}
}

func TestWhoMayDecide(t *testing.T) {
	m, _ := newManager(t, approval.Options{})
	p := hold(t, m, request("s1", "DROP TABLE orders"))
	// The agent is in dba too, but cannot approve itself, with any token.
	for _, who := range []*event.Principal{agent, agentAlt} {
		if _, err := m.Approve(p.ID, who, approval.DecideOptions{}); !errors.Is(err, approval.ErrSelfApproval) {
			t.Fatalf("self-approval: %v", err)
		}
		if _, err := m.Deny(p.ID, who, "no"); !errors.Is(err, approval.ErrSelfApproval) {
			t.Fatalf("self-deny: %v", err)
		}
	}
	if _, err := m.Approve(p.ID, mallory, approval.DecideOptions{}); !errors.Is(err, approval.ErrNotApprover) {
		t.Fatalf("outsider: %v", err)
	}
	if _, err := m.Approve("nope", alice, approval.DecideOptions{}); !errors.Is(err, approval.ErrNotFound) {
		t.Fatalf("unknown id: %v", err)
	}
	if _, err := m.Approve(p.ID, alice, approval.DecideOptions{Scope: "forever"}); !errors.Is(err, approval.ErrBadScope) {
		t.Fatalf("bad scope: %v", err)
	}
	if r, _ := m.Get(p.ID); r.State != approval.StatePending {
		t.Fatalf("refused decisions changed the state: %s", r.State)
	}
	if _, err := m.Deny(p.ID, bob, "not during the freeze"); err != nil {
		t.Fatal(err)
	}
	d := waitDecision(t, p)
	if d.State != approval.StateDenied || d.Approver != "bob@acme.test" || d.Message() == "" {
		t.Fatalf("decision %+v", d)
	}
}

func TestQuorum(t *testing.T) {
	m, rec := newManager(t, approval.Options{ApprovalsRequired: 2})
	p := hold(t, m, request("s1", "UPDATE orders SET paid = true"))
	if _, err := m.Approve(p.ID, alice, approval.DecideOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := m.Approve(p.ID, alice, approval.DecideOptions{}); !errors.Is(err, approval.ErrAlreadyVoted) {
		t.Fatalf("same person twice: %v", err)
	}
	select {
	case <-p.Done():
		t.Fatal("one approval of two let the request through")
	default:
	}
	r, err := m.Approve(p.ID, bob, approval.DecideOptions{})
	if err != nil || r.State != approval.StateApproved {
		t.Fatalf("second approval: %v %s", err, r.State)
	}
	if d := waitDecision(t, p); d.Approver != "alice@acme.test,bob@acme.test" {
		t.Fatalf("approvers %q", d.Approver)
	}
	kinds := []string{}
	for _, r := range rec.all() {
		kinds = append(kinds, r.Kind)
	}
	if len(kinds) != 3 || kinds[1] != audit.KindApprovalVote {
		t.Fatalf("rows %v", kinds)
	}
}

func TestExpiry(t *testing.T) {
	m, rec := newManager(t, approval.Options{Timeout: 50 * time.Millisecond})
	p := hold(t, m, request("s1", "DELETE FROM orders"))
	d := waitDecision(t, p)
	if d.State != approval.StateExpired {
		t.Fatalf("decision %+v", d)
	}
	if _, err := m.Approve(p.ID, alice, approval.DecideOptions{}); !errors.Is(err, approval.ErrNotPending) {
		t.Fatalf("approve after expiry: %v", err)
	}
	if rs := rec.all(); rs[len(rs)-1].Status != "expired" {
		t.Fatalf("rows %+v", rs)
	}
}

func TestCancelOnContext(t *testing.T) {
	m, _ := newManager(t, approval.Options{})
	p := hold(t, m, request("s1", "DELETE FROM orders"))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Millisecond)
	defer cancel()
	d, err := p.Wait(ctx)
	if !errors.Is(err, context.DeadlineExceeded) || d.State != approval.StateCancelled {
		t.Fatalf("wait: %+v %v", d, err)
	}
	if r, _ := m.Get(p.ID); r.State != approval.StateCancelled {
		t.Fatalf("state %s", r.State)
	}
	if _, err := m.Approve(p.ID, alice, approval.DecideOptions{}); !errors.Is(err, approval.ErrNotPending) {
		t.Fatalf("approve after cancel: %v", err)
	}
}

func TestSessionGrant(t *testing.T) {
	var mu sync.Mutex
	now := time.Now()
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	advance := func(d time.Duration) { mu.Lock(); now = now.Add(d); mu.Unlock() }
	m, _ := newManager(t, approval.Options{Now: clock})

	req := request("s1", "DELETE FROM orders WHERE id = $1")
	if _, ok := m.Granted(req); ok {
		t.Fatal("granted before any approval")
	}
	p := hold(t, m, req)
	if _, err := m.Approve(p.ID, alice, approval.DecideOptions{Scope: approval.Session, Minutes: 15}); err != nil {
		t.Fatal(err)
	}
	waitDecision(t, p)
	d, ok := m.Granted(req)
	if !ok || d.ID != p.ID || d.Approver != "alice@acme.test" {
		t.Fatalf("same request, same session: %+v %v", d, ok)
	}
	for name, other := range map[string]approval.Request{
		"other session": request("s2", "DELETE FROM orders WHERE id = $1"),
		"other query":   request("s1", "DROP TABLE orders"),
	} {
		if _, ok := m.Granted(other); ok {
			t.Errorf("%s: granted", name)
		}
	}
	advance(16 * time.Minute)
	if _, ok := m.Granted(req); ok {
		t.Fatal("grant outlived its minutes")
	}
}

func TestResumeByKeyOrHash(t *testing.T) {
	m, _ := newManager(t, approval.Options{})
	req := request("s1", "DELETE FROM orders")
	req.IdempotencyKey = "k1"
	p := hold(t, m, req)
	retry := request("s9", "DELETE FROM orders") // another connection, another session
	retry.IdempotencyKey = "k1"
	if q, ok, _ := m.Resume(retry); !ok || q.ID != p.ID {
		t.Fatal("retry with the same key not found")
	}
	retry.IdempotencyKey = "k2"
	if _, ok, _ := m.Resume(retry); ok {
		t.Fatal("another key matched")
	}
	retry.IdempotencyKey = ""
	if q, ok, _ := m.Resume(retry); !ok || q.ID != p.ID {
		t.Fatal("retry with the same request hash not found")
	}
	other := retry
	other.Principal = bob
	if _, ok, _ := m.Resume(other); ok {
		t.Fatal("another principal's retry matched")
	}
	m.Approve(p.ID, alice, approval.DecideOptions{})
	q, _, _ := m.Resume(retry)
	if d, ok := q.Take(); !ok || !d.Approved() {
		t.Fatal("retry did not get the approval")
	}
	if _, ok, _ := m.Resume(retry); ok {
		t.Fatal("a used approval matched again")
	}
	// A cancelled attempt (the client went away) is not resumed: the next
	// attempt holds anew.
	gone := hold(t, m, retry)
	gone.Cancel("the client went away")
	if _, ok, _ := m.Resume(retry); ok {
		t.Fatal("a cancelled approval matched")
	}
}

func TestRestart(t *testing.T) {
	path := filepath.Join(t.TempDir(), "approvals.jsonl")
	st, err := approval.OpenFileStore(path)
	if err != nil {
		t.Fatal(err)
	}
	m1, err := approval.New(approval.Options{Store: st, GatewayID: "gw1"})
	if err != nil {
		t.Fatal(err)
	}
	held := hold(t, m1, request("s1", "DELETE FROM orders"))
	done := hold(t, m1, request("s1", "DELETE FROM users"))
	m1.Deny(done.ID, alice, "no")
	st.Close() // the process dies: no Shutdown

	st2, err := approval.OpenFileStore(path)
	if err != nil {
		t.Fatal(err)
	}
	m2, rec := newManager(t, approval.Options{Store: st2, GatewayID: "gw1"})
	r, ok := m2.Get(held.ID)
	if !ok || r.State != approval.StateCancelled || r.DecisionReason == "" {
		t.Fatalf("held on the dead process: %+v", r)
	}
	if r, _ := m2.Get(done.ID); r.State != approval.StateDenied || r.DecidedBy != "alice@acme.test" {
		t.Fatalf("decided before the restart: %+v", r)
	}
	if len(m2.List()) != 2 {
		t.Fatalf("list %+v", m2.List())
	}
	// The restart's cancellation continues the approval's chain.
	rs := rec.all()
	if len(rs) != 1 || rs[0].Seq != 2 || rs[0].PrevHash == "" || rs[0].Status != "cancelled" {
		t.Fatalf("rows %+v", rs)
	}
}
