package http_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/tollgate-dev/tollgate/host/admin"
	"github.com/tollgate-dev/tollgate/host/audit"
	"github.com/tollgate-dev/tollgate/internal/testenv"
)

// attempt is one agent request with its own method, body and headers.
type attempt struct {
	method, path, token, key, body string
	header                         map[string]string
}

func (e *approvalEnv) try(t *testing.T, a attempt) answer {
	t.Helper()
	req, _ := http.NewRequest(a.method, "http://"+e.addr+a.path, strings.NewReader(a.body))
	req.Header.Set("Authorization", "Bearer "+a.token)
	req.Header.Set("Content-Type", "application/json")
	if a.key != "" {
		req.Header.Set("Idempotency-Key", a.key)
	}
	for k, v := range a.header {
		req.Header.Set(k, v)
	}
	resp, err := (&http.Client{Timeout: time.Minute}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return answer{status: resp.StatusCode, header: resp.Header, body: string(b)}
}

func approvalIDOf(t *testing.T, a answer) string {
	t.Helper()
	var b struct {
		ApprovalID string `json:"approval_id"`
	}
	json.Unmarshal([]byte(a.body), &b)
	if a.status != 202 || b.ApprovalID == "" {
		t.Fatalf("want 202 with an approval: %d %s", a.status, a.body)
	}
	return b.ApprovalID
}

// Issue 12.2: an approval given for one request ran another one sent with
// the same Idempotency-Key. Every variant of the approved request is
// refused with 409, the upstream never sees it, and the refusal has its
// row; the exact request then runs once.
func TestApprovalCoversTheExactRequest(t *testing.T) {
	e := startApprovals(t, `http_wait = "200ms"`)
	agent := e.ciToken(t)
	const path, body = "/orders/api/danger/refunds?amount=1&order=42", `{"refund":1}`
	approved := attempt{method: "POST", path: path, token: agent, key: "refund-42", body: body}
	id := approvalIDOf(t, e.try(t, approved))

	carol := e.dba(t, "carol@acme.test")
	rec, err := carol.Approval(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	out, errOut, code := testenv.RunGateway(t, e.gw.Dir, append(e.gw.Env, "TOLLGATE_TOKEN="+carol.Token), "approvals", "show", id, "-c", e.gw.Config)
	if code != 0 || !strings.Contains(out, "body (12 bytes, sha256 "+rec.Covered["body.sha256"]+"):\n"+body) || !strings.Contains(out, `query	"amount=1&order=42"`) {
		t.Fatalf("approvals show: %d %s %s", code, out, errOut)
	}
	if _, err := carol.Approve(context.Background(), id, admin.DecideRequest{Reason: "ticket 42"}); err != nil {
		t.Fatal(err)
	}

	swaps := map[string]attempt{
		"path":          {method: "POST", path: "/orders/api/danger/refunds/all-customers?amount=1&order=42", body: body},
		"query":         {method: "POST", path: "/orders/api/danger/refunds?amount=99999999&order=42", body: body},
		"reordered":     {method: "POST", path: "/orders/api/danger/refunds?order=42&amount=1", body: body},
		"duplicate":     {method: "POST", path: path + "&amount=99999999", body: body},
		"encoded":       {method: "POST", path: "/orders/api/danger/refunds?amount=%31&order=42", body: body},
		"body":          {method: "POST", path: path, body: `{"refund":99999999}`},
		"trailing":      {method: "POST", path: path, body: body + `{"refund":99999999}`},
		"space":         {method: "POST", path: path, body: body + " "},
		"no body":       {method: "POST", path: path},
		"method":        {method: "GET", path: path, body: body},
		"content-type":  {method: "POST", path: path, body: body, header: map[string]string{"Content-Type": "application/x-www-form-urlencoded"}},
		"override":      {method: "POST", path: path, body: body, header: map[string]string{"X-HTTP-Method-Override": "DELETE"}},
		"encoding":      {method: "POST", path: path, body: body, header: map[string]string{"Content-Encoding": "gzip"}},
		"encoding-none": {method: "POST", path: path, body: body, header: map[string]string{"Content-Encoding": "identity"}},
	}
	for name, s := range swaps {
		s.token, s.key = agent, "refund-42"
		a := e.try(t, s)
		var eb errorBody
		json.Unmarshal([]byte(a.body), &eb)
		want := 409
		if name == "encoding" {
			want = 415 // a compressed body cannot be reviewed
		}
		if a.status != want {
			t.Fatalf("%s: %d %s, want %d", name, a.status, a.body, want)
		}
		if want == 409 && (eb.Error != "approval_mismatch" || !strings.Contains(eb.Reason, id)) {
			t.Fatalf("%s: %s", name, a.body)
		}
		if want == 409 {
			row := e.gw.WaitAudit(auditPath, "for the refused "+name, func(r audit.Row) bool {
				return r.SessionID == eb.SessionID && r.Kind == "http.request" && r.Status == "409"
			})
			if row.ApprovalID != id || !strings.Contains(row.Error, "differs") {
				t.Fatalf("%s: row %+v", name, row)
			}
		}
	}
	// The reviewer sees the body and what the approval covers.
	if rec.Body != body || rec.Covered["body.sha256"] == "" || rec.Covered["body.length"] != "12" ||
		rec.Covered["query"] != "amount=1&order=42" || rec.Covered["path"] != "/api/danger/refunds" {
		t.Fatalf("record %+v", rec)
	}
	// Another agent's request with the same key is not the approved one:
	// it is held for its own approval.
	other := e.token(t, "--sub", "repo:acme/other:ref:refs/heads/main", "--claim", "repository=acme/other", "--group", "ci")
	if oid := approvalIDOf(t, e.try(t, attempt{method: "POST", path: path, token: other, key: "refund-42", body: body})); oid == id {
		t.Fatal("another principal's request resumed the approval")
	}
	if n := len(e.up.Seen()); n != 0 {
		t.Fatalf("the upstream saw %d requests before the approved one: %+v", n, e.up.Seen())
	}

	// The approved request runs, once.
	if a := e.try(t, approved); a.status != 200 {
		t.Fatalf("the approved request: %d %s", a.status, a.body)
	}
	again := e.try(t, approved)
	if aid := approvalIDOf(t, again); aid == id {
		t.Fatal("the approval ran a second request")
	}
	// A used approval covers nothing more: another request with its key
	// meets the newest approval of that key (the one just opened), which
	// covers the approved request, and is refused.
	late := attempt{method: "POST", path: "/orders/api/danger/refunds/all-customers?amount=99999999", token: agent, key: "refund-42", body: body}
	if a := e.try(t, late); a.status != 409 || strings.Contains(a.body, id) || !strings.Contains(a.body, approvalIDOf(t, again)) {
		t.Fatalf("a swapped request after the approval was used: %d %s", a.status, a.body)
	}
	seen := e.up.Seen()
	if len(seen) != 1 || seen[0].Path != "/base/api/danger/refunds" || seen[0].Query != "amount=1&order=42" || string(seen[0].Body) != body {
		t.Fatalf("the upstream saw %+v", seen)
	}
}

// A session grant covers the granted request only: the same path with
// another body on the same connection is held again.
func TestSessionGrantCoversTheBody(t *testing.T) {
	e := startApprovals(t, `http_wait = "30s"`)
	agent := e.ciToken(t)
	alice := e.dba(t, "alice@acme.test")
	client := &http.Client{Transport: &http.Transport{MaxConnsPerHost: 1}}
	do := func(ctx context.Context, body string) <-chan int {
		ch := make(chan int, 1)
		go func() {
			req, _ := http.NewRequestWithContext(ctx, "POST", "http://"+e.addr+"/orders/api/danger/report?day=1", strings.NewReader(body))
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
	first := do(context.Background(), `{"rows":10}`)
	rec := e.waitPending(t, alice)
	if _, err := alice.Approve(context.Background(), rec.ID, admin.DecideRequest{Scope: "session", Minutes: 5}); err != nil {
		t.Fatal(err)
	}
	if code := <-first; code != 200 {
		t.Fatalf("first: %d", code)
	}
	if code := <-do(context.Background(), `{"rows":10}`); code != 200 {
		t.Fatalf("granted repeat: %d", code)
	}
	ctx, cancel := context.WithCancel(context.Background())
	swapped := do(ctx, `{"rows":10,"drop":true}`)
	deadline := time.Now().Add(15 * time.Second)
	for {
		recs, _ := alice.Approvals(context.Background())
		if len(recs) == 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the request with another body was not held: %d approvals", len(recs))
		}
		time.Sleep(20 * time.Millisecond)
	}
	cancel()
	<-swapped
	for _, s := range e.up.Seen() {
		if strings.Contains(string(s.Body), "drop") {
			t.Fatal("the upstream saw the request the grant does not cover")
		}
	}
}

// Issue 12.2: one principal opened 300 pending approvals in 7 s. Past
// max_pending_per_principal (and per target) a hold is refused with 429.
func TestPendingApprovalsCapped(t *testing.T) {
	e := startApprovals(t, `http_wait = "50ms"
max_pending_per_principal = 3
max_pending_per_target = 4`)
	agent := e.ciToken(t)
	for i := range 3 {
		approvalIDOf(t, e.try(t, attempt{method: "POST", path: "/orders/api/danger/x?i=" + string(rune('a'+i)), token: agent}))
	}
	a := e.try(t, attempt{method: "POST", path: "/orders/api/danger/x?i=z", token: agent})
	var eb errorBody
	json.Unmarshal([]byte(a.body), &eb)
	if a.status != 429 || eb.Error != "too_many_pending" || a.header.Get("Retry-After") == "" || !strings.Contains(eb.Reason, "3 pending") {
		t.Fatalf("past the principal's cap: %d %v %s", a.status, a.header, a.body)
	}
	e.gw.WaitAudit(auditPath, "for the refused hold", func(r audit.Row) bool {
		return r.SessionID == eb.SessionID && r.Kind == "http.request" && r.Status == "429"
	})
	other := e.token(t, "--sub", "repo:acme/other:ref:refs/heads/main", "--claim", "repository=acme/other", "--group", "ci")
	approvalIDOf(t, e.try(t, attempt{method: "POST", path: "/orders/api/danger/y", token: other}))
	a = e.try(t, attempt{method: "POST", path: "/orders/api/danger/y2", token: other})
	if a.status != 429 || !strings.Contains(a.body, "target") {
		t.Fatalf("past the target's cap: %d %s", a.status, a.body)
	}
	if n := len(e.up.Seen()); n != 0 {
		t.Fatalf("the upstream saw %d requests", n)
	}
}
