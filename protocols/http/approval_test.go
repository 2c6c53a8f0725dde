package http_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tollgate-dev/tollgate/host/admin"
	"github.com/tollgate-dev/tollgate/host/approval"
	"github.com/tollgate-dev/tollgate/host/audit"
	"github.com/tollgate-dev/tollgate/internal/testenv"
)

// approvalEnv is a gateway whose approve plugin (the real one, built for
// wasip1) holds every request under /orders/api/danger for the dba group.
type approvalEnv struct {
	*env
	admin string // the admin listener's address
}

func startApprovals(t *testing.T, approvals string) *approvalEnv {
	return startApprovalsWith(t, approvals, envOptions{})
}

// startApprovalsWith adds o.extra (other tables) and o.gatewayID.
func startApprovalsWith(t *testing.T, approvals string, o envOptions) *approvalEnv {
	t.Helper()
	wasm := testenv.BuildWasm(t, "plugins/approve")
	adminAddr := testenv.FreeAddr(t)
	e := start(t, envOptions{gatewayID: o.gatewayID, extra: o.extra + fmt.Sprintf(`
[admin]
listen = %q

[approvals]
%s

[[plugins]]
name = "approve"
path = %q
[plugins.config]
[[plugins.config.rules]]
name = "danger-needs-a-dba"
kinds = ["http.request"]
paths = ["/api/danger"]
approvers = ["dba"]
reason = "dangerous endpoints need a DBA"
`, adminAddr, approvals, wasm)})
	return &approvalEnv{env: e, admin: adminAddr}
}

func (e *approvalEnv) dba(t *testing.T, who string) *admin.Client {
	return &admin.Client{URL: "http://" + e.admin, Token: e.token(t, "--sub", who, "--claim", "email="+who, "--group", "dba")}
}

// waitPending waits until an approval of subject is pending and returns it.
func (e *approvalEnv) waitPending(t *testing.T, c *admin.Client) approval.Record {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		recs, err := c.Approvals(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range recs {
			if r.State == approval.StatePending {
				return r
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no pending approval within 15s: %+v", recs)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

type answer struct {
	status int
	header http.Header
	body   string
	err    error
}

// send sends one agent request in the background.
func (e *approvalEnv) send(ctx context.Context, method, path, token, key string) <-chan answer {
	ch := make(chan answer, 1)
	go func() {
		req, _ := http.NewRequestWithContext(ctx, method, "http://"+e.addr+path, strings.NewReader(`{"refund":true}`))
		req.Header.Set("Authorization", "Bearer "+token)
		req.Header.Set("Content-Type", "application/json")
		if key != "" {
			req.Header.Set("Idempotency-Key", key)
		}
		resp, err := (&http.Client{Timeout: time.Minute}).Do(req)
		if err != nil {
			ch <- answer{err: err}
			return
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		ch <- answer{status: resp.StatusCode, header: resp.Header, body: string(b)}
	}()
	return ch
}

func wait(t *testing.T, ch <-chan answer) answer {
	t.Helper()
	select {
	case a := <-ch:
		if a.err != nil {
			t.Fatal(a.err)
		}
		return a
	case <-time.After(30 * time.Second):
		t.Fatal("the held request never answered")
	}
	return answer{}
}

func (e *approvalEnv) hits(path string) int {
	n := 0
	for _, s := range e.up.Seen() {
		if s.Path == "/base"+path {
			n++
		}
	}
	return n
}

func TestHeldRequestApprovedRunsOnce(t *testing.T) {
	e := startApprovals(t, `http_wait = "30s"`)
	agent := e.ciToken(t)
	alice := e.dba(t, "alice@acme.test")

	ch := e.send(context.Background(), "POST", "/orders/api/danger/refund?order=7", agent, "")
	rec := e.waitPending(t, alice)
	if rec.Subject != "repo:acme/app:ref:refs/heads/main" || rec.Claims["repository"] != "acme/app" ||
		rec.Fields["path"] != "/api/danger/refund" || rec.Fields["query"] != "order=7" || rec.Reason != "dangerous endpoints need a DBA" {
		t.Fatalf("record %+v", rec)
	}
	if e.hits("/api/danger/refund") != 0 {
		t.Fatal("the held request reached the upstream before approval")
	}
	// The agent cannot approve its own request.
	self := &admin.Client{URL: alice.URL, Token: agent}
	if _, err := self.Approve(context.Background(), rec.ID, admin.DecideRequest{}); err == nil || !strings.Contains(err.Error(), "self_approval") {
		t.Fatalf("agent approving: %v", err)
	}
	if _, err := alice.Approve(context.Background(), rec.ID, admin.DecideRequest{Reason: "refund ticket 7"}); err != nil {
		t.Fatal(err)
	}
	a := wait(t, ch)
	if a.status != 200 {
		t.Fatalf("approved request: %d %s", a.status, a.body)
	}
	if n := e.hits("/api/danger/refund"); n != 1 {
		t.Fatalf("upstream hits %d, want exactly 1", n)
	}
	if got := e.up.Seen()[0].Body; string(got) != `{"refund":true}` {
		t.Fatalf("upstream got body %q", got)
	}
	// The request's own row and the approval's decision row.
	row := e.gw.WaitAudit(auditPath, "for the approved request", func(r audit.Row) bool {
		return r.Kind == "http.request" && r.ApprovalID == rec.ID
	})
	if row.Approver != "alice@acme.test" || row.Status != "200" || row.Verdict != "hold" {
		t.Fatalf("request row %+v", row)
	}
	dec := e.gw.WaitAudit(auditPath, "for the decision", func(r audit.Row) bool {
		return r.Kind == audit.KindApprovalDecision && r.ApprovalID == rec.ID
	})
	if dec.Approver != "alice@acme.test" || dec.Status != "approved" || dec.Reason != "refund ticket 7" || dec.SessionID != rec.ID {
		t.Fatalf("decision row %+v", dec)
	}
}

func TestHeldRequestDenied(t *testing.T) {
	e := startApprovals(t, `http_wait = "30s"`)
	ch := e.send(context.Background(), "POST", "/orders/api/danger/drop", e.ciToken(t), "")
	bob := e.dba(t, "bob@acme.test")
	rec := e.waitPending(t, bob)
	// bob denies with the CLI.
	out, errOut, code := testenv.RunGateway(t, e.gw.Dir, append(e.gw.Env, "TOLLGATE_TOKEN="+bob.Token),
		"approvals", "deny", rec.ID, "--reason", "not during the freeze", "-c", e.gw.Config)
	if code != 0 || !strings.Contains(out, "denied by bob@acme.test") {
		t.Fatalf("approvals deny: %d %s %s", code, out, errOut)
	}
	a := wait(t, ch)
	var eb errorBody
	json.Unmarshal([]byte(a.body), &eb)
	if a.status != 403 || eb.Error != "approval_denied" || !strings.Contains(eb.Reason, "not during the freeze") || !strings.Contains(eb.Reason, "bob@acme.test") {
		t.Fatalf("denied: %d %s", a.status, a.body)
	}
	if e.hits("/api/danger/drop") != 0 {
		t.Fatal("a denied request reached the upstream")
	}
	row := e.gw.WaitAudit(auditPath, "for the denied request", func(r audit.Row) bool {
		return r.Kind == "http.request" && r.ApprovalID == rec.ID
	})
	if row.Status != "403" || row.Approver != "bob@acme.test" {
		t.Fatalf("row %+v", row)
	}
}

func TestHeldRequestClientGoesAway(t *testing.T) {
	e := startApprovals(t, `http_wait = "30s"`)
	ctx, cancel := context.WithCancel(context.Background())
	ch := e.send(ctx, "POST", "/orders/api/danger/x", e.ciToken(t), "")
	alice := e.dba(t, "alice@acme.test")
	rec := e.waitPending(t, alice)
	cancel()
	<-ch
	deadline := time.Now().Add(10 * time.Second)
	for {
		r, err := alice.Approval(context.Background(), rec.ID)
		if err != nil {
			t.Fatal(err)
		}
		if r.State == approval.StateCancelled {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("state %s after the client left", r.State)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if _, err := alice.Approve(context.Background(), rec.ID, admin.DecideRequest{}); err == nil || !strings.Contains(err.Error(), "not_pending") {
		t.Fatalf("approving a cancelled request: %v", err)
	}
	if e.hits("/api/danger/x") != 0 {
		t.Fatal("a cancelled request reached the upstream")
	}
	e.gw.WaitAudit(auditPath, "for the cancellation", func(r audit.Row) bool {
		return r.Kind == audit.KindApprovalDecision && r.ApprovalID == rec.ID && r.Status == "cancelled"
	})
}

func TestHeldRequest202ThenRetry(t *testing.T) {
	e := startApprovals(t, `http_wait = "200ms"`)
	agent := e.ciToken(t)
	first := wait(t, e.send(context.Background(), "POST", "/orders/api/danger/refund", agent, "key-1"))
	var pb struct {
		Error, ApprovalID, URL string `json:"-"`
	}
	var raw map[string]any
	json.Unmarshal([]byte(first.body), &raw)
	pb.Error, _ = raw["error"].(string)
	pb.ApprovalID, _ = raw["approval_id"].(string)
	pb.URL, _ = raw["url"].(string)
	if first.status != 202 || pb.Error != "approval_pending" || pb.ApprovalID == "" ||
		pb.URL != "http://"+e.admin+"/ui/approvals/"+pb.ApprovalID || first.header.Get("Retry-After") == "" {
		t.Fatalf("first attempt: %d %v %s", first.status, first.header, first.body)
	}
	// Still pending: a retry waits again and gets the same approval.
	again := wait(t, e.send(context.Background(), "POST", "/orders/api/danger/refund", agent, "key-1"))
	if again.status != 202 || !strings.Contains(again.body, pb.ApprovalID) {
		t.Fatalf("retry while pending: %d %s", again.status, again.body)
	}
	// A reviewer approves with the CLI.
	tok := e.token(t, "--sub", "carol@acme.test", "--claim", "email=carol@acme.test", "--group", "dba")
	out, errOut, code := testenv.RunGateway(t, e.gw.Dir, append(e.gw.Env, "TOLLGATE_TOKEN="+tok), "approvals", "list", "-c", e.gw.Config)
	if code != 0 || !strings.Contains(out, pb.ApprovalID) || !strings.Contains(out, "/api/danger/refund") {
		t.Fatalf("approvals list: %d %s %s", code, out, errOut)
	}
	out, errOut, code = testenv.RunGateway(t, e.gw.Dir, append(e.gw.Env, "TOLLGATE_TOKEN="+tok), "approvals", "show", pb.ApprovalID, "-c", e.gw.Config)
	if code != 0 || !strings.Contains(out, "claim repository") || !strings.Contains(out, "POST /api/danger/refund") {
		t.Fatalf("approvals show: %d %s %s", code, out, errOut)
	}
	out, errOut, code = testenv.RunGateway(t, e.gw.Dir, append(e.gw.Env, "TOLLGATE_TOKEN="+tok), "approvals", "approve", pb.ApprovalID, "--reason", "ok", "-c", e.gw.Config)
	if code != 0 || !strings.Contains(out, "approved by carol@acme.test") {
		t.Fatalf("approvals approve: %d %s %s", code, out, errOut)
	}
	if e.hits("/api/danger/refund") != 0 {
		t.Fatal("the approval ran the request without the agent's retry")
	}
	// The retry with the same key goes through, once.
	ok := wait(t, e.send(context.Background(), "POST", "/orders/api/danger/refund", agent, "key-1"))
	if ok.status != 200 {
		t.Fatalf("retry after approval: %d %s", ok.status, ok.body)
	}
	// Another retry is a new request: held again, not run twice.
	more := wait(t, e.send(context.Background(), "POST", "/orders/api/danger/refund", agent, "key-1"))
	if more.status != 202 || strings.Contains(more.body, pb.ApprovalID) {
		t.Fatalf("second retry: %d %s", more.status, more.body)
	}
	if n := e.hits("/api/danger/refund"); n != 1 {
		t.Fatalf("upstream hits %d, want 1", n)
	}
	row := e.gw.WaitAudit(auditPath, "for the resumed request", func(r audit.Row) bool {
		return r.Kind == "http.request" && r.ApprovalID == pb.ApprovalID && r.Status == "200"
	})
	if row.Approver != "carol@acme.test" {
		t.Fatalf("row %+v", row)
	}
}

func TestHeldRequestExpires(t *testing.T) {
	e := startApprovals(t, `timeout = "1s"
http_wait = "100ms"`)
	agent := e.ciToken(t)
	first := wait(t, e.send(context.Background(), "POST", "/orders/api/danger/late", agent, "k"))
	if first.status != 202 {
		t.Fatalf("first: %d %s", first.status, first.body)
	}
	time.Sleep(1500 * time.Millisecond)
	late := wait(t, e.send(context.Background(), "POST", "/orders/api/danger/late", agent, "k"))
	var eb errorBody
	json.Unmarshal([]byte(late.body), &eb)
	if late.status != 403 || eb.Error != "approval_expired" || !strings.Contains(eb.Reason, "no decision within 1s") {
		t.Fatalf("after expiry: %d %s", late.status, late.body)
	}
	if e.hits("/api/danger/late") != 0 {
		t.Fatal("an expired request reached the upstream")
	}
}

func TestHeldRequestGatewayRestarts(t *testing.T) {
	e := startApprovals(t, `http_wait = "30s"`)
	held := e.send(context.Background(), "POST", "/orders/api/danger/restart", e.ciToken(t), "")
	rec := e.waitPending(t, e.dba(t, "alice@acme.test"))
	// The file recorder flushes a few times a second: let the hold's row
	// reach the disk before the kill, as a spool would have it.
	e.gw.WaitAudit(auditPath, "for the hold", func(r audit.Row) bool {
		return r.SessionID == rec.ID && r.Kind == audit.KindApprovalRequest
	})
	e.gw.Signal(syscall.SIGKILL)
	<-e.gw.Exited()
	if a := <-held; a.err == nil {
		t.Fatalf("the held request answered %d from a killed gateway", a.status)
	}
	cfg, err := os.ReadFile(e.gw.Config)
	if err != nil {
		t.Fatal(err)
	}
	e.gw = testenv.StartGateway(t, testenv.GatewayOptions{Config: string(cfg), Dir: e.gw.Dir, Dev: true, Env: e.gw.Env, Wait: []string{e.addr, e.admin}})
	alice := e.dba(t, "alice@acme.test")
	r, err := alice.Approval(context.Background(), rec.ID)
	if err != nil {
		t.Fatal(err)
	}
	if r.State != approval.StateCancelled || !strings.Contains(r.DecisionReason, "gateway restarted") {
		t.Fatalf("after the restart: %s %q", r.State, r.DecisionReason)
	}
	if _, err := alice.Approve(context.Background(), rec.ID, admin.DecideRequest{}); err == nil || !strings.Contains(err.Error(), "not_pending") {
		t.Fatalf("approving after the restart: %v", err)
	}
	if e.hits("/api/danger/restart") != 0 {
		t.Fatal("the request ran")
	}
	// The approval's chain continues across the restart and verifies.
	e.gw.WaitAudit(auditPath, "for the cancellation", func(r audit.Row) bool {
		return r.SessionID == rec.ID && r.Kind == audit.KindApprovalDecision
	})
	var chain []audit.Row
	for _, row := range e.gw.AuditRows(auditPath) {
		if row.SessionID == rec.ID {
			chain = append(chain, row)
		}
	}
	if f := audit.Verify(chain); len(chain) != 2 || f[0].Status != audit.StatusComplete {
		t.Fatalf("approval chain %d rows: %+v", len(chain), f)
	}
}

func TestSessionGrantOverKeepAlive(t *testing.T) {
	e := startApprovals(t, `http_wait = "30s"`)
	agent := e.ciToken(t)
	alice := e.dba(t, "alice@acme.test")
	client := &http.Client{Transport: &http.Transport{MaxConnsPerHost: 1}} // one connection: one session
	do := func() <-chan int {
		ch := make(chan int, 1)
		go func() {
			req, _ := http.NewRequest("GET", "http://"+e.addr+"/orders/api/danger/report?day=1", nil)
			req.Header.Set("Authorization", "Bearer "+agent)
			resp, err := client.Do(req)
			if err != nil {
				ch <- 0
				return
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			ch <- resp.StatusCode
		}()
		return ch
	}
	first := do()
	rec := e.waitPending(t, alice)
	if _, err := alice.Approve(context.Background(), rec.ID, admin.DecideRequest{Scope: "session", Minutes: 5}); err != nil {
		t.Fatal(err)
	}
	if code := <-first; code != 200 {
		t.Fatalf("first: %d", code)
	}
	// The same request on the same connection runs without a new hold.
	if code := <-do(); code != 200 {
		t.Fatalf("granted repeat: %d", code)
	}
	if recs, _ := alice.Approvals(context.Background()); len(recs) != 1 {
		t.Fatalf("a granted request was held again: %d approvals", len(recs))
	}
	row := e.gw.WaitAudit(auditPath, "for the granted repeat", func(r audit.Row) bool {
		return r.Kind == "http.request" && r.ApprovalID == rec.ID && r.Seq > 2
	})
	if row.Approver != "alice@acme.test" || row.Status != "200" {
		t.Fatalf("row %+v", row)
	}
	if e.hits("/api/danger/report") != 2 {
		t.Fatalf("hits %d", e.hits("/api/danger/report"))
	}
}

// TestApprovalAcrossReplicas: two gateways share the ClickHouse audit
// server and so the approvals on it; a request held by one is approved
// through the other's admin API, and completes on the first.
func TestApprovalAcrossReplicas(t *testing.T) {
	ch := testenv.StartClickHouse(t)
	audit := fmt.Sprintf(`
[audit]
store = "clickhouse"
batch_age = "100ms"
[audit.clickhouse]
addrs = [%q]
database = "gw_replicas"
`, ch.Addr())
	a := startApprovalsWith(t, `http_wait = "30s"
poll_interval = "50ms"`, envOptions{gatewayID: "gw-a", extra: audit})
	b := startApprovalsWith(t, `poll_interval = "50ms"`, envOptions{gatewayID: "gw-b", extra: audit})

	held := a.send(context.Background(), "POST", "/orders/api/danger/refund", a.ciToken(t), "")
	viaB := b.dba(t, "erin@acme.test") // a token of b's issuer, used on b
	rec := b.waitPending(t, viaB)
	if !strings.HasPrefix(rec.Holder, "gw-a/") {
		t.Fatalf("holder %q", rec.Holder)
	}
	r, err := viaB.Approve(context.Background(), rec.ID, admin.DecideRequest{Reason: "from b"})
	if err != nil || r.State != approval.StateApproved {
		t.Fatalf("approve through b: %v %+v", err, r)
	}
	if ans := wait(t, held); ans.status != 200 {
		t.Fatalf("the request held on a: %d %s", ans.status, ans.body)
	}
	if n := a.hits("/api/danger/refund"); n != 1 {
		t.Fatalf("upstream hits %d", n)
	}
	// a's console shows the decision too.
	got, err := a.dba(t, "erin@acme.test").Approval(context.Background(), rec.ID)
	if err != nil || got.DecidedBy != "erin@acme.test" || got.DecisionReason != "from b" {
		t.Fatalf("on a: %+v %v", got, err)
	}
}
