package http_test

import (
	"bufio"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tollgate-dev/tollgate/host/audit"
	"github.com/tollgate-dev/tollgate/host/audit/clickhouse"
	"github.com/tollgate-dev/tollgate/host/config"
	"github.com/tollgate-dev/tollgate/host/identity"
	"github.com/tollgate-dev/tollgate/internal/testenv"
)

const auditPath = "data/audit.jsonl"

// upstreamSecret is the credential the gateway holds for the test targets.
const upstreamSecret = "upstream-secret-7f3a9"

// env is one gateway in front of one upstream, with the dev issuer.
type env struct {
	gw       *testenv.Gateway
	up       *testenv.Upstream
	addr     string // the gateway's HTTP listener
	issuer   string
	upstream string
}

type envOptions struct {
	upstream    http.HandlerFunc
	upstreamURL string // instead of starting an upstream
	extra       string // appended to the config
	listener    string // extra keys for the [[listeners]] table
	gatewayID   string // [gateway] id; default the host name
}

func start(t *testing.T, o envOptions) *env {
	t.Helper()
	e := &env{addr: testenv.FreeAddr(t), issuer: testenv.FreeAddr(t), upstream: o.upstreamURL}
	if e.upstream == "" {
		e.up = testenv.StartUpstream(t, o.upstream)
		e.upstream = e.up.URL
	}
	cfg := fmt.Sprintf(`
[gateway]
data_dir = "data"
shutdown_grace = "5s"
`+gatewayID(o.gatewayID)+`

[dev]
issuer_listen = %q

[[targets]]
name = "orders"
protocol = "http"
upstream = "%s/base"
[targets.credential]
type = "bearer"
token = "env:TEST_UPSTREAM_TOKEN"

[[listeners]]
name = "http"
protocol = "http"
listen = %q
%s
[[listeners.routes]]
target = "orders"
path_prefix = "/orders"

[[access]]
name = "ci-reads-orders"
issuers = ["dev"]
targets = ["orders"]
methods = ["GET", "POST"]
paths = ["/api"]
[access.claims]
repository = "acme/*"
%s`, e.issuer, e.upstream, e.addr, o.listener, o.extra)
	e.gw = testenv.StartGateway(t, testenv.GatewayOptions{
		Config: cfg, Dev: true, Env: []string{"TEST_UPSTREAM_TOKEN=" + upstreamSecret},
		Wait: []string{e.addr, e.issuer},
	})
	return e
}

func gatewayID(id string) string {
	if id == "" {
		return ""
	}
	return fmt.Sprintf("id = %q", id)
}

func (e *env) token(t *testing.T, args ...string) string {
	t.Helper()
	out, errOut, code := e.gw.Run(append([]string{"token", "-c", e.gw.Config}, args...)...)
	if code != 0 {
		t.Fatalf("gateway token: exit %d: %s", code, errOut)
	}
	return strings.TrimSpace(out)
}

func (e *env) ciToken(t *testing.T) string {
	return e.token(t, "--sub", "repo:acme/app:ref:refs/heads/main", "--claim", "repository=acme/app",
		"--claim", "run_id=991", "--group", "ci")
}

// do sends one request through the gateway.
func (e *env) do(t *testing.T, method, path, token string) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, "http://"+e.addr+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp, body
}

type errorBody struct {
	Status    int    `json:"status"`
	Error     string `json:"error"`
	Reason    string `json:"reason"`
	SessionID string `json:"session_id"`
}

// wantError checks a JSON error answer and returns its audit row.
func (e *env) wantError(t *testing.T, resp *http.Response, body []byte, status int, code, reasonPart string) audit.Row {
	t.Helper()
	if resp.StatusCode != status {
		t.Fatalf("status = %d, want %d; body %s", resp.StatusCode, status, body)
	}
	if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
		t.Fatalf("Content-Type = %q", ct)
	}
	var eb errorBody
	if err := json.Unmarshal(body, &eb); err != nil {
		t.Fatalf("error body is not JSON: %s", body)
	}
	if eb.Status != status || eb.Error != code || !strings.Contains(eb.Reason, reasonPart) {
		t.Fatalf("error body = %+v, want %d %s containing %q", eb, status, code, reasonPart)
	}
	for _, leak := range []string{"dial tcp", "connection refused", "oidc:", "go-jose", upstreamSecret} {
		if strings.Contains(string(body), leak) {
			t.Fatalf("error body leaks internals (%q): %s", leak, body)
		}
	}
	return e.gw.WaitAudit(auditPath, "for session "+eb.SessionID, func(r audit.Row) bool {
		return r.SessionID == eb.SessionID && r.Kind == "http.request" && r.Status == fmt.Sprint(status)
	})
}

func TestRequestReachesTargetWithGatewayCredential(t *testing.T) {
	e := start(t, envOptions{})
	tok := e.ciToken(t)
	resp, body := e.do(t, "GET", "/orders/api/items?limit=5", tok)
	if resp.StatusCode != 200 {
		t.Fatalf("status %d: %s", resp.StatusCode, body)
	}
	seen := e.up.Seen()
	if len(seen) != 1 {
		t.Fatalf("upstream saw %d requests", len(seen))
	}
	s := seen[0]
	if s.Path != "/base/api/items" || s.Query != "limit=5" {
		t.Errorf("upstream saw %s?%s, want /base/api/items?limit=5", s.Path, s.Query)
	}
	if got := s.Header.Get("Authorization"); got != "Bearer "+upstreamSecret {
		t.Errorf("upstream Authorization = %q, want the gateway's credential", got)
	}
	for k, vs := range s.Header {
		for _, v := range vs {
			if strings.Contains(v, tok) || strings.Contains(v, tok[:40]) {
				t.Errorf("upstream saw the agent's token in %s", k)
			}
		}
	}
	sid := s.Header.Get("X-Tollgate-Session-Id")
	if sid == "" {
		t.Fatal("upstream got no session id to correlate with the audit trail")
	}

	row := e.gw.WaitAudit(auditPath, "for the request", func(r audit.Row) bool {
		return r.SessionID == sid && r.Kind == "http.request"
	})
	if row.Subject != "repo:acme/app:ref:refs/heads/main" || row.Issuer != "dev" ||
		row.Claims["repository"] != "acme/app" || row.Claims["run_id"] != "991" {
		t.Errorf("identity columns = %+v", row)
	}
	if row.AccessRule != "ci-reads-orders" || row.Verdict != "allow" || row.Status != "200" || row.Target != "orders" {
		t.Errorf("decision columns = rule %q verdict %q status %q target %q", row.AccessRule, row.Verdict, row.Status, row.Target)
	}
	if row.Request["method"] != "GET" || row.Request["path"] != "/api/items" || row.Request["query"] != "limit=5" {
		t.Errorf("request = %v", row.Request)
	}
	if row.ResponseBytes != int64(len(body)) {
		t.Errorf("response_bytes = %d, client got %d", row.ResponseBytes, len(body))
	}
	open := e.gw.WaitAudit(auditPath, "opening the session", func(r audit.Row) bool {
		return r.SessionID == sid && r.Kind == audit.KindSessionOpen
	})
	if open.Seq != 1 || row.Seq != 2 {
		t.Errorf("seq: open %d, request %d", open.Seq, row.Seq)
	}

	// The session's rows chain: audit.Verify finds it complete once closed.
	http.DefaultClient.CloseIdleConnections()
	closeRow := e.gw.WaitAudit(auditPath, "closing the session", func(r audit.Row) bool {
		return r.SessionID == sid && r.Kind == audit.KindSessionClose
	})
	if closeRow.EventID == "" || closeRow.PrevHash == "" {
		t.Errorf("close row without event id or chain: %+v", closeRow)
	}
	var mine []audit.Row
	for _, r := range e.gw.AuditRows(auditPath) {
		if r.SessionID == sid {
			mine = append(mine, r)
		}
	}
	if f := audit.Verify(mine); len(f) != 1 || f[0].Status != audit.StatusComplete {
		t.Errorf("verify: %+v", f)
	}

	// The agent's token and the target's credential appear nowhere in the trail.
	raw, err := os.ReadFile(e.gw.Dir + "/" + auditPath)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(raw), tok[:40]) || strings.Contains(string(raw), upstreamSecret) {
		t.Fatal("audit file holds a credential")
	}
}

func TestQuickStartWithCurl(t *testing.T) {
	curl := testenv.RequireCommand(t, "curl")
	e := start(t, envOptions{})
	tok := e.ciToken(t)
	out, err := exec.Command(curl, "-s", "-w", "\n%{http_code}", "-H", "Authorization: Bearer "+tok,
		"http://"+e.addr+"/orders/api/hello").CombinedOutput()
	if err != nil {
		t.Fatalf("curl: %v: %s", err, out)
	}
	if !strings.HasSuffix(strings.TrimSpace(string(out)), "200") {
		t.Fatalf("curl through the gateway: %s", out)
	}
	e.gw.WaitAudit(auditPath, "for curl's request", func(r audit.Row) bool {
		return r.Kind == "http.request" && r.Request["header.User-Agent"] != "" &&
			strings.HasPrefix(r.Request["header.User-Agent"], "curl/") && r.Status == "200"
	})
}

func TestSessionPerConnectionAndPrincipal(t *testing.T) {
	e := start(t, envOptions{})
	tok := e.ciToken(t)
	for range 3 {
		if resp, body := e.do(t, "GET", "/orders/api/x", tok); resp.StatusCode != 200 {
			t.Fatalf("status %d: %s", resp.StatusCode, body)
		}
	}
	seen := e.up.Seen()
	if len(seen) != 3 || seen[0].Header.Get("X-Tollgate-Session-Id") != seen[2].Header.Get("X-Tollgate-Session-Id") {
		t.Fatal("keep-alive requests by one principal must share a session")
	}
	// Another principal on the same kept-alive connection gets a new session.
	other := e.token(t, "--sub", "repo:acme/web:ref:refs/heads/main", "--claim", "repository=acme/web")
	e.do(t, "GET", "/orders/api/x", other)
	seen = e.up.Seen()
	first, second := seen[0].Header.Get("X-Tollgate-Session-Id"), seen[3].Header.Get("X-Tollgate-Session-Id")
	if first == second {
		t.Fatal("a different principal must open a new session")
	}
	e.gw.WaitAudit(auditPath, "closing the first session", func(r audit.Row) bool {
		return r.SessionID == first && r.Kind == audit.KindSessionClose && r.Status == "3 requests"
	})
}

func TestRejections(t *testing.T) {
	deadIssuer := testenv.FreeAddr(t) // nothing listens here
	e := start(t, envOptions{extra: fmt.Sprintf(`
[[identity.issuers]]
name = "down"
issuer = "http://%s"
audience = ["tollgate"]
algorithms = ["ES256"]
`, deadIssuer)})
	good := e.ciToken(t)

	t.Run("no token", func(t *testing.T) {
		resp, body := e.do(t, "GET", "/orders/api/x", "")
		row := e.wantError(t, resp, body, 401, "unauthenticated", "Authorization: Bearer")
		if resp.Header.Get("WWW-Authenticate") != `Bearer realm="tollgate"` {
			t.Errorf("WWW-Authenticate = %q", resp.Header.Get("WWW-Authenticate"))
		}
		if row.Subject != "" || row.Target != "orders" {
			t.Errorf("row = %+v", row)
		}
	})
	dev := e.devIssuer(t)
	invalid := map[string]struct{ token, reason string }{
		"expired": {mintWith(t, dev, identity.MintOptions{Subject: "x", TTL: time.Minute,
			Now: time.Now().Add(-time.Hour)}), "expired"},
		"not yet valid":  {mintWith(t, dev, identity.MintOptions{Subject: "x", Now: time.Now().Add(time.Hour)}), "not valid yet"},
		"wrong audience": {e.token(t, "--sub", "x", "--aud", "someone-else"), "audience"},
		"wrong issuer":   {mintWith(t, newIssuer(t, testenv.FreeAddr(t), t.TempDir()), identity.MintOptions{Subject: "x"}), "not trusted"},
		"unknown kid":    {mintWith(t, newIssuer(t, e.issuer, t.TempDir()), identity.MintOptions{Subject: "x"}), "unknown signing key"},
		"garbage":        {"not.a.jwt", "payload is not base64url"},
		"alg none":       {unsignedJWT(map[string]any{"alg": "none"}, "http://"+e.issuer), "none"},
	}
	for name, tc := range invalid {
		t.Run(name, func(t *testing.T) {
			resp, body := e.do(t, "GET", "/orders/api/x", tc.token)
			e.wantError(t, resp, body, 401, "invalid_token", tc.reason)
			if !strings.Contains(resp.Header.Get("WWW-Authenticate"), `error="invalid_token"`) {
				t.Errorf("WWW-Authenticate = %q", resp.Header.Get("WWW-Authenticate"))
			}
		})
	}
	t.Run("issuer keys unavailable", func(t *testing.T) {
		down := newIssuer(t, deadIssuer, t.TempDir())
		resp, body := e.do(t, "GET", "/orders/api/x", mintWith(t, down, identity.MintOptions{Subject: "x"}))
		e.wantError(t, resp, body, 503, "identity_unavailable", "issuer")
	})
	t.Run("claims do not match", func(t *testing.T) {
		tok := e.token(t, "--sub", "fork", "--claim", "repository=evil/app")
		resp, body := e.do(t, "GET", "/orders/api/x", tok)
		row := e.wantError(t, resp, body, 403, "access_denied", "no access rule grants target orders")
		if row.Subject != "fork" || row.AccessRule != "" {
			t.Errorf("row = %+v", row)
		}
	})
	t.Run("method not granted", func(t *testing.T) {
		resp, body := e.do(t, "DELETE", "/orders/api/x", good)
		e.wantError(t, resp, body, 403, "access_denied", "DELETE /api/x")
	})
	t.Run("path not granted", func(t *testing.T) {
		resp, body := e.do(t, "GET", "/orders/admin", good)
		e.wantError(t, resp, body, 403, "access_denied", "/admin")
	})
	t.Run("no route", func(t *testing.T) {
		resp, body := e.do(t, "GET", "/elsewhere", good)
		e.wantError(t, resp, body, 404, "no_route", "no target")
	})
	t.Run("dot segments", func(t *testing.T) {
		resp, body := rawRequest(t, e.addr, "GET /orders/api/../admin HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer "+good+"\r\n\r\n")
		e.wantError(t, resp, body, 400, "bad_request", "canonical")
	})
	if n := len(e.up.Seen()); n != 0 {
		t.Fatalf("the upstream saw %d rejected requests", n)
	}
}

func TestUpstreamDown(t *testing.T) {
	e := start(t, envOptions{upstreamURL: "http://" + testenv.FreeAddr(t)}) // nothing listens there
	resp, body := e.do(t, "GET", "/orders/api/x", e.ciToken(t))
	row := e.wantError(t, resp, body, 502, "upstream_unavailable", "did not answer")
	if !strings.Contains(row.Error, "upstream:") {
		t.Errorf("the audit row keeps the upstream error for operators: %q", row.Error)
	}
}

func TestCredentialKinds(t *testing.T) {
	up := testenv.StartUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		http.SetCookie(w, &http.Cookie{Name: "upstream_session", Value: "for-the-gateway-credential"})
		io.WriteString(w, "ok")
	})
	addr, issuer := testenv.FreeAddr(t), testenv.FreeAddr(t)
	dir := t.TempDir()
	if err := os.WriteFile(dir+"/pw", []byte("basic-pw\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := fmt.Sprintf(`
[gateway]
data_dir = "data"
[dev]
issuer_listen = %q
[[targets]]
name = "basic"
protocol = "http"
upstream = %q
[targets.credential]
type = "basic"
username = "svc"
password = "file:%s/pw"
[[targets]]
name = "keyed"
protocol = "http"
upstream = %q
[targets.credential]
type = "header"
header = "X-Api-Key"
value = "env:TEST_API_KEY"
[[listeners]]
name = "http"
protocol = "http"
listen = %q
[[listeners.routes]]
target = "basic"
host = "basic.test"
[[listeners.routes]]
target = "keyed"
host = "keyed.test"
[[access]]
name = "all"
issuers = ["dev"]
targets = ["*"]
`, issuer, up.URL, dir, up.URL, addr)
	gw := testenv.StartGateway(t, testenv.GatewayOptions{Config: cfg, Dev: true, Env: []string{"TEST_API_KEY=key-123"}, Wait: []string{addr, issuer}})
	e := &env{gw: gw, addr: addr, issuer: issuer}
	tok := e.token(t, "--sub", "alice")
	for _, host := range []string{"basic.test", "keyed.test"} {
		req, _ := http.NewRequest("GET", "http://"+addr+"/x", nil)
		req.Host = host
		req.Header.Set("Authorization", "Bearer "+tok)
		req.Header.Set("X-Api-Key", "agent-supplied-guess")
		req.Header.Set("Cookie", "session=agent")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("%s: status %d", host, resp.StatusCode)
		}
		if resp.Header.Get("Set-Cookie") != "" {
			t.Errorf("%s: the upstream's session cookie reached the agent", host)
		}
	}
	seen := up.Seen()
	if u, p, ok := (&http.Request{Header: seen[0].Header}).BasicAuth(); !ok || u != "svc" || p != "basic-pw" {
		t.Errorf("basic credential = %q %q %v", u, p, ok)
	}
	if seen[0].Header.Get("Cookie") != "" {
		t.Error("the agent's cookie reached the target")
	}
	if got := seen[1].Header.Get("X-Api-Key"); got != "key-123" {
		t.Errorf("header credential = %q, want the gateway's, not the agent's", got)
	}
	if seen[1].Header.Get("Authorization") != "" {
		t.Error("the agent's token reached a header-credential target")
	}
}

func TestSmugglingAndHeaderLimits(t *testing.T) {
	e := start(t, envOptions{listener: "read_header_timeout = \"1s\"\nmax_header_bytes = 4096"})
	tok := e.ciToken(t)

	t.Run("Content-Length with Transfer-Encoding", func(t *testing.T) {
		// A front proxy that trusts Content-Length would see one request
		// with a 37-byte body; one that trusts chunking would see the body
		// end at "0\r\n\r\n" and a second request smuggled after it.
		smuggled := "GET /orders/api/smuggled HTTP/1.1\r\nHost: x\r\n\r\n"
		body := "0\r\n\r\n" + smuggled
		req := "POST /orders/api/x HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + tok +
			"\r\nContent-Length: " + fmt.Sprint(len(body)) + "\r\nTransfer-Encoding: chunked\r\n\r\n" + body
		c := dial(t, e.addr)
		fmt.Fprint(c, req)
		br := bufio.NewReader(c)
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		if !resp.Close {
			t.Error("the gateway must close a connection after a chunked request")
		}
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		if n, _ := br.Read(make([]byte, 1)); n != 0 {
			t.Error("the gateway answered a second, smuggled request")
		}
		for _, s := range e.up.Seen() {
			if strings.HasSuffix(s.Path, "/smuggled") {
				t.Fatal("the smuggled request reached the upstream")
			}
		}
	})
	t.Run("Transfer-Encoding on HTTP/1.0", func(t *testing.T) {
		before := len(e.up.Seen())
		resp, _ := rawRequest(t, e.addr, "POST /orders/api/one HTTP/1.0\r\nHost: x\r\nAuthorization: Bearer "+tok+
			"\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /orders/api/two HTTP/1.1\r\nHost: x\r\n\r\n")
		if !resp.Close {
			t.Error("an HTTP/1.0 connection must close after the answer")
		}
		seen := e.up.Seen()[before:]
		if len(seen) != 1 || seen[0].Path != "/base/api/one" || len(seen[0].Body) != 0 {
			t.Fatalf("upstream saw %+v, want only /one with no body", seen)
		}
	})
	t.Run("oversized header", func(t *testing.T) {
		resp, _ := rawRequest(t, e.addr, "GET /orders/api/x HTTP/1.1\r\nHost: x\r\nX-Big: "+strings.Repeat("a", 16<<10)+"\r\n\r\n")
		if resp.StatusCode != http.StatusRequestHeaderFieldsTooLarge {
			t.Fatalf("status %d, want 431", resp.StatusCode)
		}
	})
	t.Run("slowloris", func(t *testing.T) {
		c := dial(t, e.addr)
		fmt.Fprint(c, "GET /orders/api/x HTTP/1.1\r\nHost: x\r\n") // and never finish the header
		c.SetReadDeadline(time.Now().Add(30 * time.Second))
		_, err := io.ReadAll(c)
		if ne, ok := err.(net.Error); ok && ne.Timeout() {
			t.Fatal("the gateway kept a connection whose header never finished")
		}
	})
}

func TestWebSocketUpgradePassesThrough(t *testing.T) {
	e := start(t, envOptions{upstream: func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Upgrade") != "websocket" {
			w.WriteHeader(400)
			return
		}
		c, brw, err := http.NewResponseController(w).Hijack()
		if err != nil {
			return
		}
		defer c.Close()
		fmt.Fprint(brw, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n")
		brw.Flush()
		line, _ := brw.ReadString('\n')
		fmt.Fprint(brw, "echo:"+line)
		brw.Flush()
	}})
	tok := e.ciToken(t)
	c := dial(t, e.addr)
	fmt.Fprint(c, "GET /orders/api/ws HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer "+tok+
		"\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n")
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, nil)
	if err != nil || resp.StatusCode != 101 {
		t.Fatalf("upgrade: %v %v", resp, err)
	}
	fmt.Fprint(c, "hello\n")
	line, err := br.ReadString('\n')
	if err != nil || line != "echo:hello\n" {
		t.Fatalf("tunnel read %q, %v", line, err)
	}
	c.Close()
	sid := e.up.Seen()[0].Header.Get("X-Tollgate-Session-Id")
	e.gw.WaitAudit(auditPath, "for the upgraded request", func(r audit.Row) bool {
		return r.SessionID == sid && r.Kind == "http.request" && r.Status == "101"
	})
	e.gw.WaitAudit(auditPath, "closing the upgraded session", func(r audit.Row) bool {
		return r.SessionID == sid && r.Kind == audit.KindSessionClose
	})
}

func TestGracefulShutdownFinishesInFlight(t *testing.T) {
	release := make(chan struct{})
	e := start(t, envOptions{upstream: func(w http.ResponseWriter, r *http.Request) {
		<-release
		io.WriteString(w, "done")
	}})
	tok := e.ciToken(t)
	type result struct {
		status int
		body   string
		err    error
	}
	got := make(chan result, 1)
	go func() {
		req, _ := http.NewRequest("GET", "http://"+e.addr+"/orders/api/slow", nil)
		req.Header.Set("Authorization", "Bearer "+tok)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			got <- result{err: err}
			return
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		got <- result{status: resp.StatusCode, body: string(b)}
	}()
	// Wait until the request is at the upstream, then ask the gateway to stop.
	deadline := time.Now().Add(10 * time.Second)
	for len(e.up.Seen()) == 0 {
		if time.Now().After(deadline) {
			t.Fatal("request never reached the upstream")
		}
		time.Sleep(10 * time.Millisecond)
	}
	stopped := make(chan error, 1)
	go func() { stopped <- e.gw.Stop() }()
	// New connections are refused once shutdown has begun.
	deadline = time.Now().Add(10 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", e.addr, time.Second)
		if err != nil {
			break
		}
		c.Close()
		if time.Now().After(deadline) {
			t.Fatal("the gateway kept accepting connections after SIGTERM")
		}
		time.Sleep(20 * time.Millisecond)
	}
	close(release)
	r := <-got
	if r.err != nil || r.status != 200 || r.body != "done" {
		t.Fatalf("in-flight request: %+v", r)
	}
	if err := <-stopped; err != nil {
		t.Fatalf("graceful stop: %v", err)
	}
	rows := e.gw.AuditRows(auditPath)
	var req, closed bool
	for _, row := range rows {
		req = req || (row.Kind == "http.request" && row.Status == "200")
		closed = closed || row.Kind == audit.KindSessionClose
	}
	if !req || !closed {
		t.Fatalf("after shutdown the audit file lacks the request or the session close: %d rows", len(rows))
	}
}

func TestDevTokenSurvivesRestart(t *testing.T) {
	e := start(t, envOptions{})
	tok := e.ciToken(t)
	if err := e.gw.Stop(); err != nil {
		t.Fatal(err)
	}
	gw := testenv.StartGateway(t, testenv.GatewayOptions{Config: readFile(t, e.gw.Config), Dir: e.gw.Dir,
		Dev: true, Env: e.gw.Env, Wait: []string{e.addr, e.issuer}})
	e.gw = gw
	if resp, body := e.do(t, "GET", "/orders/api/x", tok); resp.StatusCode != 200 {
		t.Fatalf("a token minted before the restart: %d %s", resp.StatusCode, body)
	}
}

// devIssuer is the gateway's own dev issuer, loaded from its data dir, to
// mint tokens the CLI cannot (already expired, not yet valid).
func (e *env) devIssuer(t *testing.T) *identity.DevIssuer {
	return newIssuer(t, e.issuer, e.gw.Dir+"/data")
}

func newIssuer(t *testing.T, addr, dataDir string) *identity.DevIssuer {
	t.Helper()
	iss, err := identity.NewDevIssuer(&config.Dev{IssuerListen: addr, Audience: "tollgate"}, dataDir)
	if err != nil {
		t.Fatal(err)
	}
	return iss
}

func mintWith(t *testing.T, iss *identity.DevIssuer, o identity.MintOptions) string {
	t.Helper()
	tok, err := iss.Mint(o)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func unsignedJWT(header map[string]any, iss string) string {
	h, _ := json.Marshal(header)
	c, _ := json.Marshal(map[string]any{"iss": iss, "sub": "x", "aud": "tollgate", "exp": time.Now().Add(time.Hour).Unix()})
	return base64.RawURLEncoding.EncodeToString(h) + "." + base64.RawURLEncoding.EncodeToString(c) + "."
}

// hmacWithPublicKey forges the classic confusion attack: an HS256 token
// whose HMAC secret is the issuer's public key, fetched from its JWKS.
func hmacWithPublicKey(t *testing.T, e *env) string {
	t.Helper()
	resp, err := http.Get("http://" + e.issuer + "/jwks")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	jwks, _ := io.ReadAll(resp.Body)
	h, _ := json.Marshal(map[string]any{"alg": "HS256", "typ": "JWT", "kid": e.devIssuer(t).KeyID()})
	c, _ := json.Marshal(map[string]any{"iss": "http://" + e.issuer, "sub": "mallory", "aud": "tollgate",
		"exp": time.Now().Add(time.Hour).Unix(), "repository": "acme/app"})
	signing := base64.RawURLEncoding.EncodeToString(h) + "." + base64.RawURLEncoding.EncodeToString(c)
	m := hmac.New(sha256.New, jwks)
	m.Write([]byte(signing))
	return signing + "." + base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

func dial(t *testing.T, addr string) net.Conn {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func rawRequest(t *testing.T, addr, req string) (*http.Response, []byte) {
	t.Helper()
	c := dial(t, addr)
	c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(c, req); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatalf("read response: %v", err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp, body
}

func readFile(t *testing.T, p string) string {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// The built-in plugins on the real gateway: a guard deny is a 403 with the
// rule's reason, mask rewrites a JSON response body, and the plugins'
// annotations land in the audit row.
func TestBuiltinPluginsEndToEnd(t *testing.T) {
	guard := testenv.BuildWasm(t, "plugins/guard")
	mask := testenv.BuildWasm(t, "plugins/mask")
	e := start(t, envOptions{
		upstream: func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			io.WriteString(w, `{"customer":"dana@example.com","aws":"AKIAZ7XQ4WRT2LMN5KPB","total":42}`)
		},
		extra: fmt.Sprintf(`
[[plugins]]
name = "guard"
path = %q
[plugins.config]
rules = [ { name = "read-only", kinds = ["http.request"], methods = ["POST"], reason = "this target is read-only for agents" } ]

[[plugins]]
name = "mask"
path = %q
timeout = "2s"
[plugins.config]
kinds = ["http.response"]
`, guard, mask)})
	tok := e.ciToken(t)

	resp, body := e.do(t, "POST", "/orders/api/items", tok)
	row := e.wantError(t, resp, body, 403, "denied", "this target is read-only for agents")
	if row.Plugin != "guard" || row.Verdict != "deny" {
		t.Errorf("deny row: plugin %q verdict %q", row.Plugin, row.Verdict)
	}
	if len(e.up.Seen()) != 0 {
		t.Fatal("a denied request reached the upstream")
	}

	resp, body = e.do(t, "GET", "/orders/api/items", tok)
	if resp.StatusCode != 200 {
		t.Fatalf("status %d: %s", resp.StatusCode, body)
	}
	var doc map[string]any
	if err := json.Unmarshal(body, &doc); err != nil {
		t.Fatalf("masked body is not JSON: %s", body)
	}
	if strings.Contains(string(body), "dana@example.com") || strings.Contains(string(body), "AKIAZ7XQ4WRT2LMN5KPB") || doc["total"] != float64(42) {
		t.Fatalf("body after mask: %s", body)
	}
	if resp.ContentLength != int64(len(body)) {
		t.Errorf("Content-Length %d for a %d-byte body", resp.ContentLength, len(body))
	}
	sid := e.up.Seen()[0].Header.Get("X-Tollgate-Session-Id")
	row = e.gw.WaitAudit(auditPath, "for the masked response", func(r audit.Row) bool {
		return r.SessionID == sid && r.Kind == "http.request" && r.Status == "200"
	})
	if row.Verdict != "rewrite" || row.Annotations["mask.values"] == "" {
		t.Errorf("row verdict %q annotations %v", row.Verdict, row.Annotations)
	}
}

// SIGHUP reloads the plugins from the config file; a broken reload keeps
// the chain that works.
func TestPluginReloadOnSIGHUP(t *testing.T) {
	guard := testenv.BuildWasm(t, "plugins/guard")
	rule := func(method string) string {
		return fmt.Sprintf(`
[[plugins]]
name = "guard"
path = %q
[plugins.config]
rules = [ { name = "no-%s", kinds = ["http.request"], methods = [%q] } ]
`, guard, method, method)
	}
	e := start(t, envOptions{extra: rule("POST")})
	tok := e.ciToken(t)
	status := func(method string) int {
		resp, _ := e.do(t, method, "/orders/api/x", tok)
		return resp.StatusCode
	}
	if status("POST") != 403 || status("GET") != 200 {
		t.Fatal("the first chain is not in force")
	}
	cfg := readFile(t, e.gw.Config)
	write := func(s string) {
		if err := os.WriteFile(e.gw.Config, []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write(strings.Replace(cfg, rule("POST"), rule("GET"), 1))
	e.gw.Signal(syscall.SIGHUP)
	e.gw.WaitOutput("reload: plugins replaced", 1)
	if status("POST") != 200 || status("GET") != 403 {
		t.Fatal("the reloaded chain is not in force")
	}

	write(strings.Replace(cfg, guard, guard+".missing", 1))
	e.gw.Signal(syscall.SIGHUP)
	e.gw.WaitOutput("keeping the current plugins", 1)
	if status("GET") != 403 {
		t.Fatal("a failed reload must keep the working chain")
	}
}

// With the clickhouse store, each request's row reaches a real ClickHouse
// server through the spool, with the identity and the decision.
func TestAuditReachesClickHouse(t *testing.T) {
	ch := testenv.StartClickHouse(t)
	e := start(t, envOptions{extra: fmt.Sprintf(`
[audit]
store = "clickhouse"
batch_age = "100ms"
[audit.clickhouse]
addrs = [%q]
database = "gw_e2e"
`, ch.Addr())})
	tok := e.ciToken(t)
	if resp, body := e.do(t, "GET", "/orders/api/items?limit=2", tok); resp.StatusCode != 200 {
		t.Fatalf("status %d: %s", resp.StatusCode, body)
	}
	resp, _ := e.do(t, "DELETE", "/orders/api/items/1", tok)
	if resp.StatusCode != 403 {
		t.Fatalf("DELETE: %d", resp.StatusCode)
	}
	sid := e.up.Seen()[0].Header.Get("X-Tollgate-Session-Id")
	store, err := clickhouse.Open(context.Background(), clickhouse.Options{Addrs: []string{ch.Addr()}, Database: "gw_e2e"})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	q := "SELECT request_values[indexOf(request_keys, 'method')], status, access_rule, subject, " +
		"claim_values[indexOf(claim_keys, 'run_id')] FROM gw_e2e.events FINAL " +
		"WHERE session_id = toUUID('" + sid + "') AND kind = 'http.request' ORDER BY seq"
	deadline := time.Now().Add(30 * time.Second)
	for {
		_, rows, err := store.Query(context.Background(), q)
		if err != nil {
			t.Fatal(err)
		}
		if len(rows) == 2 {
			if strings.Join(rows[0], "|") != "GET|200|ci-reads-orders|repo:acme/app:ref:refs/heads/main|991" ||
				rows[1][0] != "DELETE" || rows[1][1] != "403" {
				t.Fatalf("rows in ClickHouse: %v", rows)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("rows in ClickHouse after 30s: %v", rows)
		}
		time.Sleep(100 * time.Millisecond)
	}

	// The analyst's CLI reads the same store.
	out, errOut, code := e.gw.Run("audit", "sql", "-c", e.gw.Config, "--format", "tsv",
		"SELECT count() AS n FROM gw_e2e.events FINAL WHERE session_id = toUUID('"+sid+"') AND kind = 'http.request'")
	if code != 0 || out != "n\n2\n" {
		t.Fatalf("audit sql: exit %d, %q %s", code, out, errOut)
	}
	if _, errOut, code := e.gw.Run("audit", "sql", "-c", e.gw.Config, "DROP TABLE gw_e2e.events"); code == 0 {
		t.Fatalf("audit sql ran a write: %s", errOut)
	}
	out, errOut, code = e.gw.Run("audit", "sessions", "-c", e.gw.Config, "--format", "tsv")
	if code != 0 || !strings.Contains(out, sid) || !strings.Contains(out, "acme/app") {
		t.Fatalf("audit sessions: exit %d\n%s%s", code, out, errOut)
	}

	// audit tail follows the rows (it polls; give it a few rounds).
	tctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	tail := exec.CommandContext(tctx, testenv.GatewayBinary(t), "audit", "tail", "-c", e.gw.Config, "--every", "200ms", "--target", "orders")
	tail.Dir = e.gw.Dir
	var terr strings.Builder
	tail.Stderr = &terr
	tout, _ := tail.Output()
	if !strings.Contains(string(tout), "GET /api/items") || !strings.Contains(string(tout), "DELETE /api/items/1") {
		t.Fatalf("audit tail printed:\n%s\nstderr:\n%s", tout, terr.String())
	}

	// After a graceful stop the session is closed in ClickHouse, and its
	// hash chain verifies there.
	http.DefaultClient.CloseIdleConnections()
	if err := e.gw.Stop(); err != nil {
		t.Fatal(err)
	}
	out, errOut, code = e.gw.Run("audit", "verify", "-c", e.gw.Config, "--session", sid)
	if code != 0 || !strings.Contains(out, sid+"\tcomplete\t") {
		t.Fatalf("audit verify against ClickHouse: exit %d\n%s%s", code, out, errOut)
	}
}

// When the audit spool is full (ClickHouse away for long), new requests are
// refused in HTTP, before they reach the target: an unaudited action is
// worse than a failed one.
func TestFullSpoolRefusesRequests(t *testing.T) {
	ch := testenv.StartClickHouse(t)
	e := start(t, envOptions{extra: fmt.Sprintf(`
[audit]
store = "clickhouse"
[audit.clickhouse]
addrs = [%q]
database = "gw_full"
[audit.spool]
max_bytes = 65536
`, ch.Addr())})
	ch.Kill()
	tok := e.ciToken(t)
	for i := 0; i < 2000; i++ {
		before := len(e.up.Seen())
		resp, body := e.do(t, "GET", "/orders/api/items", tok)
		if resp.StatusCode == 503 {
			var eb errorBody
			json.Unmarshal(body, &eb)
			if eb.Error != "audit_unavailable" || resp.Header.Get("Retry-After") == "" {
				t.Fatalf("refusal: %s", body)
			}
			if len(e.up.Seen()) != before {
				t.Fatal("a refused request reached the target")
			}
			return
		}
		if resp.StatusCode != 200 {
			t.Fatalf("request %d: %d %s", i, resp.StatusCode, body)
		}
		time.Sleep(2 * time.Millisecond)
	}
	t.Fatal("2000 requests and the spool never filled")
}

// The embedded store (ClickHouse in the gateway's process): rows land, and
// once the gateway has stopped the CLI reads and verifies them.
func TestAuditEmbedded(t *testing.T) {
	adminAddr := testenv.FreeAddr(t)
	e := start(t, envOptions{extra: fmt.Sprintf(`
[audit]
store = "embedded"
batch_age = "100ms"
[audit.embedded]
lib_path = %q

[admin]
listen = %q
groups = ["auditors"]
`, testenv.ChDBLib(t), adminAddr)})
	tok := e.ciToken(t)
	if resp, body := e.do(t, "GET", "/orders/api/items", tok); resp.StatusCode != 200 {
		t.Fatalf("status %d: %s", resp.StatusCode, body)
	}
	sid := e.up.Seen()[0].Header.Get("X-Tollgate-Session-Id")

	// While the gateway runs it owns the store: the CLI goes through the
	// admin API, with a token of an auditor.
	q := "SELECT count() AS n FROM tollgate.events FINAL WHERE session_id = toUUID('" + sid + "') AND kind = 'http.request'"
	auditor := e.token(t, "--sub", "alice", "--group", "auditors")
	deadline := time.Now().Add(20 * time.Second)
	for {
		out, errOut, code := testenv.RunGateway(t, e.gw.Dir, append(e.gw.Env, "TOLLGATE_TOKEN="+auditor), "audit", "sql", "-c", e.gw.Config, "--format", "tsv", q)
		if code == 0 && out == "n\n1\n" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("audit sql through the admin API: exit %d %q %s", code, out, errOut)
		}
		time.Sleep(200 * time.Millisecond)
	}
	_, errOut, code := testenv.RunGateway(t, e.gw.Dir, append(e.gw.Env, "TOLLGATE_TOKEN="+tok), "audit", "sql", "-c", e.gw.Config, q)
	if code == 0 || !strings.Contains(errOut, "auditors") {
		t.Fatalf("an agent's token must not read the audit trail: exit %d %s", code, errOut)
	}
	http.DefaultClient.CloseIdleConnections()
	time.Sleep(300 * time.Millisecond) // the session closes and its rows ship
	if err := e.gw.Stop(); err != nil {
		t.Fatalf("stop: %v\n%s", err, e.gw.Output())
	}
	out, errOut, code := e.gw.Run("audit", "sql", "-c", e.gw.Config, "--format", "tsv",
		"SELECT kind, status FROM tollgate.events FINAL WHERE session_id = toUUID('"+sid+"') ORDER BY seq")
	if code != 0 || out != "kind\tstatus\nsession.open\t\nhttp.request\t200\nsession.close\t1 requests\n" {
		t.Fatalf("audit sql on the embedded store: exit %d\n%q\n%s", code, out, errOut)
	}
	out, errOut, code = e.gw.Run("audit", "verify", "-c", e.gw.Config, "--session", sid)
	if code != 0 || !strings.Contains(out, sid+"\tcomplete\t") {
		t.Fatalf("audit verify on the embedded store: exit %d\n%s%s", code, out, errOut)
	}
}
