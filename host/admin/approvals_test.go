package admin

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/tollgate-dev/tollgate/host/approval"
)

var people = tokens{
	"agent":   {Issuer: "gha", Subject: "repo:acme/app", Groups: []string{"ci"}, Kept: map[string]string{"repository": "acme/app", "workflow": "deploy", "actor": "octocat"}},
	"alice":   {Issuer: "corp", Subject: "alice", Email: "alice@acme.test", Groups: []string{"dba"}},
	"auditor": {Issuer: "corp", Subject: "carol", Groups: []string{"auditors"}},
	"mallory": {Issuer: "corp", Subject: "mallory", Groups: []string{"dev"}},
}

const xss = `DELETE FROM orders WHERE note = '<script>alert(1)</script>' -- </pre><img src=x onerror=alert(2)>`

func approvalsServer(t *testing.T) (*approval.Manager, *httptest.Server, *approval.Pending) {
	t.Helper()
	m, err := approval.New(approval.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Shutdown(context.Background()) })
	srv := httptest.NewServer(New(Options{Auth: people, Groups: []string{"auditors"}, Approvals: m}))
	t.Cleanup(srv.Close)
	p, err := m.Hold(context.Background(), approval.Request{
		SessionID: "s1", Protocol: "postgres", Kind: "pg.query", Target: "prod-db", Principal: people["agent"],
		Fields: map[string]string{"sql": xss, "card": "****1234"}, Changed: []string{"card"}, Plugin: "approve", Reason: "writes to <b>prod</b> need a DBA",
		ApproverGroups: []string{"dba"},
	})
	if err != nil {
		t.Fatal(err)
	}
	return m, srv, p
}

func call(t *testing.T, srv *httptest.Server, method, path, token, body string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(method, srv.URL+path, strings.NewReader(body))
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func TestApprovalsAPI(t *testing.T) {
	_, srv, p := approvalsServer(t)
	count := func(token string) int {
		code, body := call(t, srv, "GET", "/v1/approvals", token, "")
		var l ApprovalList
		if code != 200 || json.Unmarshal([]byte(body), &l) != nil {
			t.Fatalf("list as %s: %d %s", token, code, body)
		}
		return len(l.Approvals)
	}
	// Approvers, the admin groups and the requester see it; others do not.
	for tok, want := range map[string]int{"alice": 1, "auditor": 1, "agent": 1, "mallory": 0} {
		if got := count(tok); got != want {
			t.Errorf("%s sees %d approvals, want %d", tok, got, want)
		}
	}
	for _, tc := range []struct {
		name, method, path, token, body string
		status                          int
		contains                        string
	}{
		{"no token", "GET", "/v1/approvals", "", "", 401, "unauthenticated"},
		{"webhook counters: admin groups", "GET", "/v1/approvals/webhooks", "auditor", "", 200, `"dropped":0`},
		{"webhook counters: not for approvers", "GET", "/v1/approvals/webhooks", "alice", "", 403, "forbidden"},
		{"outsider cannot see it", "GET", "/v1/approvals/" + p.ID, "mallory", "", 404, "not_found"},
		{"requester polls its own", "GET", "/v1/approvals/" + p.ID, "agent", "", 200, `"state":"pending"`},
		{"self-approval", "POST", "/v1/approvals/" + p.ID + "/approve", "agent", `{}`, 403, "self_approval"},
		{"outsider", "POST", "/v1/approvals/" + p.ID + "/approve", "mallory", `{}`, 403, "not_an_approver"},
		{"an auditor is not an approver", "POST", "/v1/approvals/" + p.ID + "/approve", "auditor", `{}`, 403, "not_an_approver"},
		{"deny needs a reason", "POST", "/v1/approvals/" + p.ID + "/deny", "alice", `{}`, 400, "reason"},
		{"bad scope", "POST", "/v1/approvals/" + p.ID + "/approve", "alice", `{"scope":"session"}`, 400, "scope"},
		{"approve", "POST", "/v1/approvals/" + p.ID + "/approve", "alice", `{"reason":"ticket 7","scope":"session","minutes":5}`, 200, `"state":"approved"`},
		{"twice", "POST", "/v1/approvals/" + p.ID + "/deny", "alice", `{"reason":"oops"}`, 409, "not_pending"},
	} {
		code, body := call(t, srv, tc.method, tc.path, tc.token, tc.body)
		if code != tc.status || !strings.Contains(body, tc.contains) {
			t.Errorf("%s: %d %s", tc.name, code, body)
		}
	}
	if d := p.Decision(); !d.Approved() || d.Approver != "alice@acme.test" || d.Scope != approval.Session {
		t.Fatalf("decision %+v", d)
	}
}

// browser is a cookie-keeping client that does not follow redirects.
func browser(t *testing.T) *http.Client {
	jar, _ := cookiejar.New(nil)
	return &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}

func get(t *testing.T, c *http.Client, u string) (int, string) {
	t.Helper()
	resp, err := c.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func post(t *testing.T, c *http.Client, u string, form url.Values) (int, string) {
	t.Helper()
	resp, err := c.PostForm(u, form)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

var csrfField = regexp.MustCompile(`name="csrf" value="([0-9a-f]+)"`)

func login(t *testing.T, base, token string) (*http.Client, string) {
	t.Helper()
	c := browser(t)
	_, page := get(t, c, base+"/ui/login")
	m := csrfField.FindStringSubmatch(page)
	if m == nil {
		t.Fatalf("login page without a CSRF field:\n%s", page)
	}
	if code, body := post(t, c, base+"/ui/login", url.Values{"token": {token}}); code != 403 {
		t.Fatalf("login without the CSRF token: %d %s", code, body)
	}
	_, page = get(t, c, base+"/ui/login")
	m = csrfField.FindStringSubmatch(page)
	if code, body := post(t, c, base+"/ui/login", url.Values{"token": {token}, "csrf": {m[1]}}); code != 303 {
		t.Fatalf("login: %d %s", code, body)
	}
	code, queue := get(t, c, base+"/ui/")
	m = csrfField.FindStringSubmatch(queue)
	if code != 200 || m == nil {
		t.Fatalf("queue: %d %s", code, queue)
	}
	return c, m[1]
}

func TestConsoleEscapesTheRequest(t *testing.T) {
	_, srv, p := approvalsServer(t)
	c, _ := login(t, srv.URL, "alice")
	for _, page := range []string{"/ui/", "/ui/approvals/" + p.ID} {
		code, body := get(t, c, srv.URL+page)
		if code != 200 {
			t.Fatalf("%s: %d", page, code)
		}
		for _, raw := range []string{"<script>alert(1)", "<img src=x", "<b>prod</b>", "</pre><img"} {
			if strings.Contains(body, raw) {
				t.Fatalf("%s renders %q unescaped:\n%s", page, raw, body)
			}
		}
		if !strings.Contains(body, "&lt;script&gt;alert(1)&lt;/script&gt;") {
			t.Fatalf("%s does not show the query as text:\n%s", page, body)
		}
	}
	// The detail page highlights the statement and shows who asked.
	_, body := get(t, c, srv.URL+"/ui/approvals/"+p.ID)
	for _, want := range []string{`<span class="kw">DELETE</span>`, "acme/app", "octocat", "deploy", "prod-db", `id="approve"`,
		`<tr class="changed"><th>card <span class="badge">rewritten by a plugin</span>`, `id="changed"`} {
		if !strings.Contains(body, want) {
			t.Errorf("detail lacks %q", want)
		}
	}
}

func TestConsoleCSRF(t *testing.T) {
	m, srv, p := approvalsServer(t)
	c, csrf := login(t, srv.URL, "alice")
	for name, form := range map[string]url.Values{
		"no token":    {"reason": {"looks fine"}},
		"wrong token": {"reason": {"looks fine"}, "csrf": {strings.Repeat("0", 64)}},
	} {
		code, body := post(t, c, srv.URL+"/ui/approvals/"+p.ID+"/approve", form)
		if code != 403 || !strings.Contains(body, "CSRF") {
			t.Fatalf("%s: %d %s", name, code, body)
		}
	}
	if r, _ := m.Get(p.ID); r.State != approval.StatePending {
		t.Fatalf("a forged form decided: %s", r.State)
	}
	// Another reviewer's CSRF token does not work with alice's session.
	_, otherCSRF := login(t, srv.URL, "auditor")
	if code, _ := post(t, c, srv.URL+"/ui/approvals/"+p.ID+"/approve", url.Values{"csrf": {otherCSRF}}); code != 403 {
		t.Fatalf("another session's CSRF token: %d", code)
	}
	code, _ := post(t, c, srv.URL+"/ui/approvals/"+p.ID+"/approve", url.Values{"csrf": {csrf}, "reason": {"ok"}, "scope": {"once"}})
	if code != 303 {
		t.Fatalf("approve with the token: %d", code)
	}
	if r, _ := m.Get(p.ID); r.State != approval.StateApproved || r.DecidedBy != "alice@acme.test" {
		t.Fatalf("state %s by %s", r.State, r.DecidedBy)
	}
	// Without a session the console sends the browser to sign in.
	if code, _ := get(t, browser(t), srv.URL+"/ui/"); code != 303 {
		t.Fatalf("anonymous queue: %d", code)
	}
}

// The detail page shows a held body (escaped), or its first KiB, with its
// hash and length, and what the approval covers.
func TestConsoleShowsTheBody(t *testing.T) {
	m, srv, _ := approvalsServer(t)
	body := []byte(`{"note":"</pre><script>alert(1)</script>"}` + strings.Repeat("x", 2000))
	p, err := m.Hold(context.Background(), approval.Request{
		SessionID: "s2", Protocol: "http", Kind: "http.request", Target: "payments", Principal: people["agent"],
		Fields:         map[string]string{"method": "POST", "path": "/refunds", "query": "amount=1"},
		Covered:        approval.HTTPCovered("POST", "/refunds", "amount=1", http.Header{}, body),
		Body:           body,
		ApproverGroups: []string{"dba"},
	})
	if err != nil {
		t.Fatal(err)
	}
	c, _ := login(t, srv.URL, "alice")
	_, page := get(t, c, srv.URL+"/ui/approvals/"+p.ID)
	rec, _ := m.Get(p.ID)
	for _, want := range []string{`id="body"`, strconv.Itoa(len(body)) + " bytes", rec.Covered["body.sha256"], "the first KiB is shown",
		"&lt;script&gt;alert(1)", `id="covered"`, "amount=1"} {
		if !strings.Contains(page, want) {
			t.Errorf("detail lacks %q", want)
		}
	}
	if strings.Contains(page, "<script>alert(1)") || strings.Contains(page, strings.Repeat("x", 1100)) {
		t.Fatal("the body is unescaped or not cut at 1 KiB")
	}
}
