package queries_test

import (
	"context"
	"testing"
	"time"

	"github.com/tollgate-dev/tollgate/host/approval"
	"github.com/tollgate-dev/tollgate/host/audit"
	"github.com/tollgate-dev/tollgate/host/event"
)

// The principals of the seeded trail: a CI job of acme/app (GitHub
// Actions' subject and kept claims), and one of another repository.
var (
	acme = &event.Principal{Issuer: "github", Subject: "repo:acme/app:ref:refs/heads/main",
		Kept: map[string]string{"repository": "acme/app", "ref": "refs/heads/main", "run_id": "42", "workflow": "deploy"}}
	fork = &event.Principal{Issuer: "github", Subject: "repo:evil/fork:ref:refs/heads/main",
		Kept: map[string]string{"repository": "evil/fork", "ref": "refs/heads/main", "run_id": "7"}}
	// A GitLab CI job: its run is pipeline_id, its repository project_path.
	gitlab = &event.Principal{Issuer: "gitlab", Subject: "project_path:acme/app:ref_type:branch:ref:main",
		Kept: map[string]string{"project_path": "acme/app", "ref": "main", "ref_protected": "true", "pipeline_id": "1172"}}
	alice = &event.Principal{Issuer: "corp", Subject: "alice", Email: "alice@example.com", Groups: []string{"dba"}}
	bob   = &event.Principal{Issuer: "corp", Subject: "bob", Email: "bob@example.com", Groups: []string{"dba"}}
)

// session writes one session's rows as the protocols do: sequence
// numbers, event IDs and the hash chain, each row to the recorder as it
// happens.
type session struct {
	t      *testing.T
	rec    audit.Recorder
	open   audit.Row
	chain  audit.SessionChain
	seq    uint64
	closed bool
}

func openSession(t *testing.T, rec audit.Recorder, at time.Time, protocol, listener, target string, p *event.Principal, req map[string]string) *session {
	s := &session{t: t, rec: rec}
	s.open = audit.Row{Time: at, GatewayID: "gw-test", SessionID: audit.NewID(), Protocol: protocol, Listener: listener,
		Target: target, Kind: audit.KindSessionOpen, RemoteAddr: "10.0.0.7:51234", Request: req}
	s.open.SetPrincipal(p)
	s.write(s.open)
	return s
}

// step writes a row of the session; r carries what differs from the
// open row.
func (s *session) step(r audit.Row) {
	o := s.open
	r.GatewayID, r.SessionID, r.Protocol, r.Listener, r.RemoteAddr = o.GatewayID, o.SessionID, o.Protocol, o.Listener, o.RemoteAddr
	r.Issuer, r.Subject, r.Email, r.Groups, r.Claims = o.Issuer, o.Subject, o.Email, o.Groups, o.Claims
	if r.Target == "" {
		r.Target = o.Target
	}
	s.write(r)
}

func (s *session) close(at time.Time, status string) { s.write(audit.CloseRow(s.open, at, status)) }

func (s *session) write(r audit.Row) {
	s.seq++
	r.Seq, r.EventID = s.seq, audit.NewID()
	r.Time = r.Time.Truncate(time.Microsecond)
	s.chain.Seal(&r)
	if err := s.rec.Record(r); err != nil {
		s.t.Fatalf("record: %v", err)
	}
}

// seed writes the incident trail the queries are checked against, around
// t0, to rec: the rows the HTTP and PostgreSQL listeners write for each
// outcome, and approval rows from the real approval manager.
func seed(t *testing.T, rec audit.Recorder, t0 time.Time) {
	at := func(s float64) time.Time { return t0.Add(time.Duration(s * float64(time.Second))) }
	clock := t0
	m, err := approval.New(approval.Options{Recorder: rec, GatewayID: "gw-test", Now: func() time.Time { return clock }})
	if err != nil {
		t.Fatal(err)
	}
	hold := func(when float64, sid, protocol, kind, target string, fields map[string]string, reason string) string {
		clock = at(when)
		p, err := m.Hold(context.Background(), approval.Request{SessionID: sid, Protocol: protocol, Kind: kind, Target: target,
			Principal: acme, Fields: fields, Plugin: "approve", Reason: reason, ApproverGroups: []string{"dba"}})
		if err != nil {
			t.Fatal(err)
		}
		return p.ID
	}

	// S1, HTTP: a plain request, one whose response body was masked, and
	// a deploy held for approval that bob denied after 2 s.
	s1 := openSession(t, rec, at(0), "http", "http", "demo", acme, nil)
	s1.step(audit.Row{Time: at(1), Kind: "http.request", AccessRule: "ci-read", Request: map[string]string{"method": "GET", "path": "/hello"},
		Verdict: "allow", Status: "200", ResponseBytes: 12})
	s1.step(audit.Row{Time: at(2), Kind: "http.request", AccessRule: "ci-read", Request: map[string]string{"method": "GET", "path": "/users"},
		Verdict: "rewrite", Plugin: "mask", Status: "200", ResponseBytes: 300,
		Annotations: map[string]string{"detect.body": "email=2", "mask.values": "2", "redact.values": "1"}})
	deploy := map[string]string{"method": "POST", "path": "/deploy"}
	id1 := hold(2.6, s1.open.SessionID, "http", "http.request", "demo", deploy, "deploys need a person")
	clock = at(4.6)
	if _, err := m.Deny(id1, bob, "not during the freeze"); err != nil {
		t.Fatal(err)
	}
	s1.step(audit.Row{Time: at(2.5), Kind: "http.request", AccessRule: "ci-read", Request: deploy,
		Verdict: "hold", Plugin: "approve", Reason: "deploys need a person", Status: "403",
		Error: "denied: not during the freeze", ApprovalID: id1, Approver: "bob@example.com"})
	s1.close(at(5), "3 requests")

	// S2, PostgreSQL, left open: a masked SELECT (one column by name,
	// one by detector), a DROP the guard denied, a DELETE alice approved
	// after 30 s.
	s2 := openSession(t, rec, at(6), "postgres", "pg", "orders-db", acme, map[string]string{"user": "app", "database": "orders", "tls": "true"})
	s2.step(audit.Row{Time: at(7), Kind: "pg.query", AccessRule: "ci-db", Request: map[string]string{"sql": "SELECT name, api_key, ssn FROM customers"},
		Verdict: "rewrite", Plugin: "mask", Status: "SELECT 3",
		Annotations: map[string]string{"mask.columns": "ssn", "detect.column.api_key": "github-pat=1", "mask.values": "3", "pg.rows": "3"}})
	s2.step(audit.Row{Time: at(8), Kind: "pg.query", AccessRule: "ci-db", Request: map[string]string{"sql": "DROP TABLE customers"},
		Verdict: "deny", Plugin: "guard", Reason: "DDL is not allowed", Error: "denied"})
	del := map[string]string{"sql": "DELETE FROM customers WHERE id = 7"}
	id2 := hold(9.1, s2.open.SessionID, "postgres", "pg.query", "orders-db", del, "DELETE needs a person")
	clock = at(39.1)
	if _, err := m.Approve(id2, alice, approval.DecideOptions{}); err != nil {
		t.Fatal(err)
	}
	s2.step(audit.Row{Time: at(9), Kind: "pg.query", AccessRule: "ci-db", Request: del,
		Verdict: "hold", Plugin: "approve", Reason: "DELETE needs a person", Status: "DELETE 1", ApprovalID: id2, Approver: "alice@example.com"})

	// S3: no token (401), in a session of its own, as the HTTP listener
	// records it.
	s3 := openSession(t, rec, at(10), "http", "http", "", nil, nil)
	s3.step(audit.Row{Time: at(10), Kind: "http.request", Target: "demo", Request: map[string]string{"method": "GET", "path": "/hello"},
		Status: "401", Error: "unauthenticated: an OIDC token is required: Authorization: Bearer <token>"})
	s3.close(at(10.5), "1 requests")

	// S4: another repository's token, which no rule grants (403).
	s4 := openSession(t, rec, at(11), "http", "http", "demo", fork, nil)
	s4.step(audit.Row{Time: at(11.2), Kind: "http.request", Request: map[string]string{"method": "GET", "path": "/hello"},
		Status: "403", Error: "access_denied: no access rule grants target demo to repo:evil/fork:ref:refs/heads/main"})
	s4.close(at(11.5), "1 requests")

	// S6: a GitLab pipeline's request.
	s6 := openSession(t, rec, at(12), "http", "http", "demo", gitlab, nil)
	s6.step(audit.Row{Time: at(12.1), Kind: "http.request", AccessRule: "acme-app-protected-main", Request: map[string]string{"method": "GET", "path": "/status"},
		Verdict: "allow", Status: "200"})
	s6.close(at(12.2), "1 requests")

	// S5: three hours earlier, outside every window the test asks for, and
	// never closed.
	s5 := openSession(t, rec, at(-3*3600), "http", "http", "demo", acme, nil)
	s5.step(audit.Row{Time: at(-3*3600 + 1), Kind: "http.request", AccessRule: "ci-read", Request: map[string]string{"method": "GET", "path": "/old"},
		Verdict: "allow", Status: "200"})
}
