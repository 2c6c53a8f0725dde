package approval_test

import (
	"errors"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/tollgate-dev/tollgate/host/approval"
	"github.com/tollgate-dev/tollgate/host/event"
)

func httpRequest(method, path, query string, h http.Header, body string) approval.Request {
	if h == nil {
		h = http.Header{"Content-Type": {"application/json"}}
	}
	return approval.Request{
		SessionID: "s1", Protocol: "http", Kind: "http.request", Target: "payments", Principal: agent,
		Fields: map[string]string{"method": method, "path": path, "query": query}, ApproverGroups: []string{"dba"},
		Covered: approval.HTTPCovered(method, path, query, h, []byte(body)), Body: []byte(body),
	}
}

// Every difference an upstream can tell apart is a different canonical
// form; nothing is normalized.
func TestCanonicalHTTP(t *testing.T) {
	base := httpRequest("POST", "/refunds", "amount=1&order=42", nil, `{"a":1}`)
	want := approval.CanonicalHash(base)
	if approval.CanonicalHash(httpRequest("POST", "/refunds", "amount=1&order=42", nil, `{"a":1}`)) != want {
		t.Fatal("the same request hashes differently")
	}
	other := *agent
	other.Subject = "repo:acme/evil:ref:refs/heads/main"
	otherIssuer := *agent
	otherIssuer.Issuer = "evil"
	cases := map[string]approval.Request{
		"path":         httpRequest("POST", "/refunds/all-customers", "amount=1&order=42", nil, `{"a":1}`),
		"query":        httpRequest("POST", "/refunds", "amount=99999999&order=42", nil, `{"a":1}`),
		"reordered":    httpRequest("POST", "/refunds", "order=42&amount=1", nil, `{"a":1}`),
		"duplicate":    httpRequest("POST", "/refunds", "amount=1&order=42&amount=2", nil, `{"a":1}`),
		"escaped":      httpRequest("POST", "/refunds", "amount=%31&order=42", nil, `{"a":1}`),
		"method":       httpRequest("PUT", "/refunds", "amount=1&order=42", nil, `{"a":1}`),
		"body":         httpRequest("POST", "/refunds", "amount=1&order=42", nil, `{"a":2}`),
		"trailing":     httpRequest("POST", "/refunds", "amount=1&order=42", nil, `{"a":1} `),
		"content-type": httpRequest("POST", "/refunds", "amount=1&order=42", http.Header{"Content-Type": {"text/plain"}}, `{"a":1}`),
		"encoding":     httpRequest("POST", "/refunds", "amount=1&order=42", http.Header{"Content-Type": {"application/json"}, "Content-Encoding": {"gzip"}}, `{"a":1}`),
		"override":     httpRequest("POST", "/refunds", "amount=1&order=42", http.Header{"Content-Type": {"application/json"}, "X-Http-Method-Override": {"DELETE"}}, `{"a":1}`),
	}
	r := base
	r.Target = "ledger"
	cases["target"] = r
	r = base
	r.Principal = &other
	cases["subject"] = r
	r = base
	r.Principal = &otherIssuer
	cases["issuer"] = r
	r = base
	r.Kind = "http.other"
	cases["kind"] = r
	for name, c := range cases {
		if approval.CanonicalHash(c) == want {
			t.Errorf("%s: same canonical form as the approved request", name)
		}
	}
	// Headers outside the canonical form differ between attempts.
	h := http.Header{"Content-Type": {"application/json"}, "X-Request-Id": {"r2"}, "Idempotency-Key": {"k"}}
	if approval.CanonicalHash(httpRequest("POST", "/refunds", "amount=1&order=42", h, `{"a":1}`)) != want {
		t.Error("X-Request-Id changed the canonical form")
	}
}

// A statement's canonical form is its SQL as sent and its parameters.
func TestCanonicalStatement(t *testing.T) {
	stmt := func(f map[string]string) approval.Request {
		return approval.Request{Protocol: "postgres", Kind: "pg.query", Target: "db", Principal: agent,
			Fields: f, Covered: approval.StatementCovered(f)}
	}
	base := map[string]string{"sql": "UPDATE t SET note = $1 WHERE id = $2", "params": "2", "param.1": "a  b", "param.2": "7", "portal": "p1"}
	want := approval.CanonicalHash(stmt(base))
	for name, f := range map[string]map[string]string{
		"param":   {"sql": base["sql"], "params": "2", "param.1": "a  b", "param.2": "8"},
		"null":    {"sql": base["sql"], "params": "2", "param.1": "a  b"},
		"count":   {"sql": base["sql"], "params": "3", "param.1": "a  b", "param.2": "7"},
		"literal": {"sql": "UPDATE t SET note = 'a  b'"},
	} {
		if approval.CanonicalHash(stmt(f)) == want {
			t.Errorf("%s: same canonical form", name)
		}
	}
	// Whitespace inside a literal is data: it is not folded.
	a := stmt(map[string]string{"sql": "UPDATE t SET note = 'a  b'"})
	b := stmt(map[string]string{"sql": "UPDATE t SET note = 'a b'"})
	if approval.CanonicalHash(a) == approval.CanonicalHash(b) {
		t.Error("whitespace inside a literal was folded")
	}
	// Portal and statement names are not what runs.
	same := map[string]string{"sql": base["sql"], "params": "2", "param.1": "a  b", "param.2": "7", "portal": "p9"}
	if approval.CanonicalHash(stmt(same)) != want {
		t.Error("the portal name changed the canonical form")
	}
}

// A retry whose Idempotency-Key names an approval of another request is a
// MismatchError naming what differs, whatever the approval's state.
func TestResumeRefusesAnotherRequestWithTheKey(t *testing.T) {
	m, _ := newManager(t, approval.Options{})
	req := httpRequest("POST", "/refunds", "amount=1&order=42", nil, `{"a":1}`)
	req.IdempotencyKey = "k1"
	p := hold(t, m, req)
	swap := httpRequest("POST", "/refunds/all-customers", "amount=99999999", nil, `{"a":1}`)
	swap.IdempotencyKey = "k1"
	check := func(when string) {
		t.Helper()
		_, ok, err := m.Resume(swap)
		var mm *approval.MismatchError
		if ok || !errors.As(err, &mm) || !errors.Is(err, approval.ErrMismatch) || mm.ID != p.ID || !slices.Equal(mm.Fields, []string{"path", "query"}) {
			t.Fatalf("%s: %v %v", when, ok, err)
		}
		if !strings.Contains(err.Error(), "differs in path, query") {
			t.Fatalf("%s: %v", when, err)
		}
	}
	check("pending")
	if _, err := m.Approve(p.ID, alice, approval.DecideOptions{}); err != nil {
		t.Fatal(err)
	}
	check("approved")
	// The approved request itself resumes, once.
	q, ok, err := m.Resume(req)
	if !ok || err != nil || q.ID != p.ID {
		t.Fatalf("the approved request: %v %v", ok, err)
	}
	if d, ok := q.Take(); !ok || !d.Approved() {
		t.Fatal("not taken")
	}
	if _, ok, err := m.Resume(req); ok || err != nil {
		t.Fatalf("a used approval resumed again: %v %v", ok, err)
	}
	// Used, it names nothing: another request with its key holds anew.
	if _, ok, err := m.Resume(swap); ok || err != nil {
		t.Fatalf("a swapped request after use: %v %v", ok, err)
	}
}

// A session grant covers its canonical form only.
func TestSessionGrantCoversTheCanonicalForm(t *testing.T) {
	m, _ := newManager(t, approval.Options{})
	req := httpRequest("POST", "/refunds", "amount=1", nil, `{"a":1}`)
	p := hold(t, m, req)
	if _, err := m.Approve(p.ID, alice, approval.DecideOptions{Scope: approval.Session, Minutes: 5}); err != nil {
		t.Fatal(err)
	}
	waitDecision(t, p)
	if _, ok := m.Granted(req); !ok {
		t.Fatal("the granted request is not granted")
	}
	if _, ok := m.Granted(httpRequest("POST", "/refunds", "amount=1", nil, `{"a":1}x`)); ok {
		t.Fatal("a grant covered another body")
	}
	other := req
	other.Principal = &event.Principal{Issuer: agent.Issuer, Subject: "someone else"}
	if _, ok := m.Granted(other); ok {
		t.Fatal("a grant covered another principal in the same session")
	}
}

func TestPendingCaps(t *testing.T) {
	m, _ := newManager(t, approval.Options{MaxPendingPerPrincipal: 2, MaxPendingPerTarget: 3})
	hold(t, m, request("s1", "DELETE FROM a"))
	p := hold(t, m, request("s1", "DELETE FROM b"))
	if _, err := m.Hold(t.Context(), request("s1", "DELETE FROM c")); !errors.Is(err, approval.ErrTooManyPending) || !strings.Contains(err.Error(), "max_pending_per_principal") {
		t.Fatalf("third of one principal: %v", err)
	}
	other := request("s2", "DELETE FROM c")
	other.Principal = bob
	hold(t, m, other)
	other.Principal = mallory
	if _, err := m.Hold(t.Context(), other); !errors.Is(err, approval.ErrTooManyPending) || !strings.Contains(err.Error(), "max_pending_per_target") {
		t.Fatalf("fourth on the target: %v", err)
	}
	// A decision frees a place.
	if _, err := m.Deny(p.ID, alice, "no"); err != nil {
		t.Fatal(err)
	}
	if _, err := m.Hold(t.Context(), request("s1", "DELETE FROM c")); err != nil {
		t.Fatalf("after a decision: %v", err)
	}
}

func TestBodyPreview(t *testing.T) {
	if s, q := approval.BodyPreview([]byte(`{"a":1}`)); s != `{"a":1}` || q {
		t.Fatal(s)
	}
	long := strings.Repeat("é", 600) // 1200 bytes: cut inside a character
	if s, q := approval.BodyPreview([]byte(long)); q || len(s) != 1024 || !strings.HasPrefix(long, s) {
		t.Fatalf("%d %v", len(s), q)
	}
	if s, q := approval.BodyPreview([]byte{0xff, 'a'}); !q || s != `"\xffa"` {
		t.Fatalf("%q %v", s, q)
	}
}
