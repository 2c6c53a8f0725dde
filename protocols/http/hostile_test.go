package http_test

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"encoding/base64"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/andybalholm/brotli"

	"github.com/tollgate-dev/tollgate/host/audit"
	"github.com/tollgate-dev/tollgate/internal/testenv"
)

// The attacks of issue 12 against the gateway binary, each with a real
// upstream: what the client gets, what the upstream saw, and the audit row.

const leakJSON = `{"customer":"dana@example.com","aws":"AKIAZ7XQ4WRT2LMN5KPB","total":42}`

func gzipped(t testing.TB, s string) []byte {
	var b bytes.Buffer
	zw := gzip.NewWriter(&b)
	io.WriteString(zw, s)
	zw.Close()
	return b.Bytes()
}

// rowFor waits for the http.request row of the request the upstream saw
// last, or of session sid.
func (e *env) rowFor(t *testing.T, sid, status string) audit.Row {
	t.Helper()
	return e.gw.WaitAudit(auditPath, "for session "+sid+" status "+status, func(r audit.Row) bool {
		return r.SessionID == sid && r.Kind == "http.request" && r.Status == status
	})
}

func lastSession(t *testing.T, e *env) string {
	t.Helper()
	seen := e.up.Seen()
	if len(seen) == 0 {
		t.Fatal("the upstream saw nothing")
	}
	return seen[len(seen)-1].Header.Get("X-Tollgate-Session-Id")
}

func maskConfig(t *testing.T) string {
	mask := testenv.BuildWasm(t, "plugins/mask")
	return fmt.Sprintf(`
[[plugins]]
name = "mask"
path = %q
timeout = "2s"
[plugins.config]
kinds = ["http.response"]
`, mask)
}

// Item 1: a compressed response goes through the mask chain like any other.
func TestCompressedResponsesAreMasked(t *testing.T) {
	big := `{"blob":"` + strings.Repeat("A", 3<<20) + `"}`
	e := start(t, envOptions{
		listener: "max_inspect_body_bytes = 2097152",
		upstream: func(w http.ResponseWriter, r *http.Request) {
			h := w.Header()
			h.Set("Content-Type", "application/json")
			switch r.URL.Path {
			case "/base/api/polite": // compresses only when asked
				if strings.Contains(r.Header.Get("Accept-Encoding"), "gzip") {
					h.Set("Content-Encoding", "gzip")
					w.Write(gzipped(t, leakJSON))
					return
				}
				io.WriteString(w, leakJSON)
			case "/base/api/stubborn-gzip":
				h.Set("Content-Encoding", "gzip")
				w.Write(gzipped(t, leakJSON))
			case "/base/api/stubborn-br":
				h.Set("Content-Encoding", "br")
				bw := brotli.NewWriter(w)
				io.WriteString(bw, leakJSON)
				bw.Close()
			case "/base/api/stacked":
				h.Set("Content-Encoding", "gzip, gzip")
				w.Write(gzipped(t, string(gzipped(t, leakJSON))))
			case "/base/api/unknown":
				h.Set("Content-Encoding", "x-rot13")
				io.WriteString(w, leakJSON)
			case "/base/api/bomb":
				h.Set("Content-Encoding", "gzip")
				w.Write(gzipped(t, big))
			case "/base/api/trailer":
				// Not inspected (a rewritten body would get a length and
				// lose its trailers): streamed, trailers and all.
				h.Set("Content-Type", "application/octet-stream")
				h.Set("Trailer", "Set-Cookie, X-Checksum")
				io.WriteString(w, leakJSON)
				w.(http.Flusher).Flush()
				h.Set("Set-Cookie", "upstream_session=for-the-gateway-credential")
				h.Set("X-Checksum", "abc")
			}
		},
		extra: maskConfig(t) + `
[[access]]
name = "ci-heads-orders"
issuers = ["dev"]
targets = ["orders"]
methods = ["HEAD"]
`,
	})
	tok := e.ciToken(t)

	t.Run("curl --compressed", func(t *testing.T) {
		out, err := exec.Command("curl", "-sS", "--compressed", "-H", "Authorization: Bearer "+tok,
			"http://"+e.addr+"/orders/api/polite").CombinedOutput()
		if err != nil {
			t.Fatalf("curl: %v: %s", err, out)
		}
		if bytes.Contains(out, []byte("dana@example.com")) || bytes.Contains(out, []byte("AKIAZ7XQ4WRT2LMN5KPB")) || !bytes.Contains(out, []byte(`"total":42`)) {
			t.Fatalf("curl --compressed got %s", out)
		}
		s := e.up.Seen()[len(e.up.Seen())-1]
		if ae := s.Header.Get("Accept-Encoding"); ae != "identity" {
			t.Errorf("upstream saw Accept-Encoding %q, want identity", ae)
		}
		row := e.rowFor(t, lastSession(t, e), "200")
		if row.Verdict != "rewrite" || row.Annotations["mask.values"] == "" {
			t.Errorf("row verdict %q annotations %v", row.Verdict, row.Annotations)
		}
	})
	for _, p := range []string{"stubborn-gzip", "stubborn-br"} {
		t.Run(p, func(t *testing.T) {
			req, _ := http.NewRequest("GET", "http://"+e.addr+"/orders/api/"+p, nil)
			req.Header.Set("Authorization", "Bearer "+tok)
			req.Header.Set("Accept-Encoding", "gzip, br")
			resp, err := http.DefaultTransport.RoundTrip(req)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 || resp.Header.Get("Content-Encoding") != "" {
				t.Fatalf("status %d encoding %q", resp.StatusCode, resp.Header.Get("Content-Encoding"))
			}
			if bytes.Contains(body, []byte("dana@example.com")) || !bytes.Contains(body, []byte(`"total":42`)) {
				t.Fatalf("body %q", body)
			}
			row := e.rowFor(t, lastSession(t, e), "200")
			if row.Verdict != "rewrite" || row.Annotations["http.decoded"] == "" {
				t.Errorf("row verdict %q annotations %v", row.Verdict, row.Annotations)
			}
		})
	}
	t.Run("HEAD of an encoded resource", func(t *testing.T) {
		// No body to decode: the headers pass (scrubbed), nothing is refused.
		resp, body := e.do(t, "HEAD", "/orders/api/stubborn-gzip", tok)
		if resp.StatusCode != 200 || len(body) != 0 {
			t.Fatalf("HEAD: status %d body %q", resp.StatusCode, body)
		}
	})
	for _, p := range []string{"stacked", "unknown", "bomb"} {
		t.Run(p, func(t *testing.T) {
			resp, body := e.do(t, "GET", "/orders/api/"+p, tok)
			row := e.wantError(t, resp, body, 502, "response_refused", "")
			if bytes.Contains(body, []byte("dana@example.com")) || row.Error == "" {
				t.Fatalf("body %s, row error %q", body, row.Error)
			}
		})
	}
	t.Run("trailers", func(t *testing.T) {
		c := dial(t, e.addr)
		fmt.Fprint(c, "GET /orders/api/trailer HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer "+tok+"\r\nTE: trailers\r\n\r\n")
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		if resp.Trailer.Get("Set-Cookie") != "" || resp.Header.Get("Set-Cookie") != "" {
			t.Fatalf("the upstream's cookie passed as a trailer: %v", resp.Trailer)
		}
		if resp.Trailer.Get("X-Checksum") != "abc" {
			t.Fatalf("trailers did not pass at all: %v", resp.Trailer)
		}
	})
}

// Item 2: the credential the gateway injects never comes back, in any form.
func TestInjectedCredentialNeverReturns(t *testing.T) {
	b64 := base64.StdEncoding.EncodeToString([]byte(upstreamSecret))
	e := start(t, envOptions{upstream: func(w http.ResponseWriter, r *http.Request) {
		auth := r.Header.Get("Authorization")
		h := w.Header()
		h.Set("X-Echo-Auth", auth)
		h.Set("X-Echo-B64", b64)
		switch r.URL.Path {
		case "/base/api/json":
			h.Set("Content-Type", "application/json")
			h.Set("Trailer", "X-Debug")
			fmt.Fprintf(w, `{"you_sent":%q,"b64":%q}`, auth, b64)
			h.Set("X-Debug", auth)
		case "/base/api/stream":
			// Large and of unknown length: streamed, never buffered; the
			// secret straddles a write (and so a chunk) boundary.
			h.Set("Content-Type", "application/octet-stream")
			fl := w.(http.Flusher)
			for i := 0; i < 64; i++ {
				w.Write(bytes.Repeat([]byte("z"), 32<<10))
				w.Write([]byte(auth[:12]))
				fl.Flush()
				time.Sleep(time.Millisecond)
				w.Write([]byte(auth[12:]))
			}
		}
	}})
	tok := e.ciToken(t)
	for _, p := range []string{"json", "stream"} {
		t.Run(p, func(t *testing.T) {
			c := dial(t, e.addr)
			fmt.Fprint(c, "GET /orders/api/"+p+" HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer "+tok+"\r\nTE: trailers\r\n\r\n")
			resp, err := http.ReadResponse(bufio.NewReader(c), nil)
			if err != nil {
				t.Fatal(err)
			}
			body, err := io.ReadAll(resp.Body)
			if err != nil || resp.StatusCode != 200 {
				t.Fatalf("status %d, %v", resp.StatusCode, err)
			}
			var all bytes.Buffer
			resp.Header.Write(&all)
			resp.Trailer.Write(&all)
			all.Write(body)
			for _, leak := range []string{upstreamSecret, b64} {
				if n := bytes.Count(all.Bytes(), []byte(leak)); n > 0 {
					t.Fatalf("the injected credential came back %d times (%s)", n, leak)
				}
			}
			if p == "stream" && len(body) != 64*(32<<10+len("Bearer ")+len(upstreamSecret)) {
				t.Fatalf("streamed body is %d bytes", len(body))
			}
			row := e.rowFor(t, lastSession(t, e), "200")
			if row.Annotations["http.credential_scrubbed"] == "" {
				t.Errorf("row annotations %v: nothing says the credential was scrubbed", row.Annotations)
			}
		})
	}
}

// Item 3: only the protocols a target allows may be upgraded to.
func TestUpgradeToUnlistedProtocolRefused(t *testing.T) {
	e := start(t, envOptions{})
	tok := e.ciToken(t)
	resp, body := rawRequest(t, e.addr, "GET /orders/api/x HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer "+tok+
		"\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQAAP__\r\n\r\n")
	row := e.wantError(t, resp, body, 400, "upgrade_refused", "h2c")
	if len(e.up.Seen()) != 0 {
		t.Fatal("the h2c upgrade reached the upstream")
	}
	if row.Request["header.Upgrade"] != "h2c" {
		t.Errorf("row request %v", row.Request)
	}
}

// Item 4: the edges of a request.
func TestRequestEdges(t *testing.T) {
	e := start(t, envOptions{listener: "max_header_bytes = 4096\nread_body_timeout = \"1s\""})
	tok := e.ciToken(t)

	t.Run("431 is recorded", func(t *testing.T) {
		resp, _ := rawRequest(t, e.addr, "GET /orders/api/big HTTP/1.1\r\nHost: x\r\nX-Big: "+strings.Repeat("a", 16<<10)+"\r\n\r\n")
		if resp.StatusCode != http.StatusRequestHeaderFieldsTooLarge {
			t.Fatalf("status %d, want 431", resp.StatusCode)
		}
		row := e.gw.WaitAudit(auditPath, "for the 431", func(r audit.Row) bool {
			return r.Kind == "http.request" && r.Status == "431"
		})
		if row.Request["path"] != "/orders/api/big" || row.Error == "" {
			t.Errorf("431 row: request %v error %q", row.Request, row.Error)
		}
	})
	t.Run("malformed request is recorded", func(t *testing.T) {
		resp, _ := rawRequest(t, e.addr, "GET /orders/api/odd?access_token=x HTTP/1.1\r\nHost: x\r\nNo colon here\r\n\r\n")
		if resp.StatusCode != http.StatusBadRequest {
			t.Fatalf("status %d, want 400", resp.StatusCode)
		}
		row := e.gw.WaitAudit(auditPath, "for the malformed request", func(r audit.Row) bool {
			return r.Kind == "http.request" && r.Status == "400" && r.Request["path"] == "/orders/api/odd"
		})
		if !strings.Contains(row.Error, "refused by the HTTP server") || strings.Contains(fmt.Sprint(row.Request), "access_token") {
			t.Errorf("400 row: request %v error %q", row.Request, row.Error)
		}
	})
	t.Run("slow body", func(t *testing.T) {
		c := dial(t, e.addr)
		fmt.Fprint(c, "POST /orders/api/slow HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer "+tok+"\r\nContent-Length: 100\r\n\r\nabc")
		c.SetReadDeadline(time.Now().Add(10 * time.Second))
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			t.Fatalf("no answer to a body that never finished: %v", err)
		}
		body, _ := io.ReadAll(resp.Body)
		row := e.wantError(t, resp, body, http.StatusRequestTimeout, "request_timeout", "body")
		if row.Request["path"] != "/api/slow" {
			t.Errorf("row request %v", row.Request)
		}
	})
	t.Run("token in the query", func(t *testing.T) {
		before := len(e.up.Seen())
		resp, body := e.do(t, "GET", "/orders/api/q?x=1&access_token="+tok+"&y="+tok, tok)
		if resp.StatusCode != 200 {
			t.Fatalf("status %d: %s", resp.StatusCode, body)
		}
		s := e.up.Seen()[before]
		if strings.Contains(s.Query, tok) || strings.Contains(s.Query, "access_token") || s.Query != "x=1" {
			t.Errorf("upstream saw query %q", s.Query)
		}
		row := e.rowFor(t, s.Header.Get("X-Tollgate-Session-Id"), "200")
		if strings.Contains(fmt.Sprint(row.Request), tok[:40]) || row.Request["query"] != "x=1" {
			t.Errorf("row request %v", row.Request)
		}
		if row.Annotations["http.query_token_removed"] == "" {
			t.Errorf("row annotations %v", row.Annotations)
		}
	})
}

// Item 2 for basic auth: the password, and user:password in base64 as it
// travels in the header, never come back.
func TestInjectedBasicCredentialNeverReturns(t *testing.T) {
	up := testenv.StartUpstream(t, func(w http.ResponseWriter, r *http.Request) {
		u, p, _ := r.BasicAuth()
		w.Header().Set("Content-Type", "text/plain")
		w.Header().Set("X-Echo", r.Header.Get("Authorization"))
		fmt.Fprintf(w, "header=%s user=%s password=%s\n", r.Header.Get("Authorization"), u, p)
	})
	addr, issuer := testenv.FreeAddr(t), testenv.FreeAddr(t)
	dir := t.TempDir()
	if err := os.WriteFile(dir+"/pw", []byte("basic-pw-9x7\n"), 0o600); err != nil {
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
[[listeners]]
name = "http"
protocol = "http"
listen = %q
[[listeners.routes]]
target = "basic"
[[access]]
name = "all"
issuers = ["dev"]
targets = ["*"]
`, issuer, up.URL, dir, addr)
	gw := testenv.StartGateway(t, testenv.GatewayOptions{Config: cfg, Dev: true, Wait: []string{addr, issuer}})
	e := &env{gw: gw, up: up, addr: addr, issuer: issuer}
	resp, body := e.do(t, "GET", "/x", e.token(t, "--sub", "alice"))
	userPass := base64.StdEncoding.EncodeToString([]byte("svc:basic-pw-9x7"))
	if u, p, ok := (&http.Request{Header: up.Seen()[0].Header}).BasicAuth(); !ok || u != "svc" || p != "basic-pw-9x7" {
		t.Fatalf("upstream saw %q %q %v", u, p, ok)
	}
	var all bytes.Buffer
	resp.Header.Write(&all)
	all.Write(body)
	for _, leak := range []string{"basic-pw-9x7", strings.TrimRight(userPass, "=")} {
		if bytes.Contains(all.Bytes(), []byte(leak)) {
			t.Fatalf("the credential came back (%s):\n%s", leak, all.Bytes())
		}
	}
	if !bytes.Contains(body, []byte("user=svc")) {
		t.Fatalf("body %q: the user name is not a secret and must pass", body)
	}
	row := e.rowFor(t, lastSession(t, e), "200")
	if row.Annotations["http.credential_scrubbed"] != "header=1 body=2 trailer=0" {
		t.Errorf("row annotations %v", row.Annotations)
	}
}
