package http_test

import (
	"bufio"
	"bytes"
	"compress/flate"
	"compress/gzip"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/andybalholm/brotli"
	"github.com/klauspost/compress/zlib"
	"github.com/klauspost/compress/zstd"

	"github.com/tollgate-dev/tollgate/host/admin"
	"github.com/tollgate-dev/tollgate/host/audit"
	"github.com/tollgate-dev/tollgate/host/config"
	"github.com/tollgate-dev/tollgate/host/event"
	"github.com/tollgate-dev/tollgate/host/plugin"
	"github.com/tollgate-dev/tollgate/internal/testenv"
	httpproto "github.com/tollgate-dev/tollgate/protocols/http"
)

// The secrets a hostile agent sends in request bodies; the markers are
// the parts that must appear in no row and no log line, however encoded.
const (
	bodyToken = "ghp_" + "0123456789abcdefghijABCDEFGHIJ012345" // a GitHub token's shape
	bodyAWS   = "AKIA" + "Q3EGWK7ZTD5HJ2XR"                     // an AWS access key id's shape
)

var bodyMarkers = []string{bodyToken[4:20], bodyAWS[4:]}

// syncBuffer is a log sink shared by the gateway's goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// loadRedact loads the real redact plugin with cfg, logging to log.
func loadRedact(t *testing.T, log *slog.Logger, cfg map[string]any) *plugin.Chain {
	t.Helper()
	ctx := context.Background()
	h, err := plugin.NewHost(plugin.Options{MaskKey: []byte("k"), Log: log})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close(ctx) })
	wasm, err := os.ReadFile(testenv.BuildWasm(t, "plugins/redact"))
	if err != nil {
		t.Fatal(err)
	}
	p, err := h.Load(ctx, config.Plugin{Name: "redact", Config: cfg}, wasm, plugin.Limits{MemoryPages: 512, Timeout: 5 * time.Second, Instances: 2})
	if err != nil {
		t.Fatal(err)
	}
	c := plugin.NewChain(p)
	t.Cleanup(func() { c.Close(ctx) })
	return c
}

// captureLogs sends the gateway's default log to a buffer for the test.
func captureLogs(t *testing.T) (*syncBuffer, *slog.Logger) {
	buf := &syncBuffer{}
	log := slog.New(slog.NewTextHandler(buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
	old := slog.Default()
	slog.SetDefault(log)
	t.Cleanup(func() { slog.SetDefault(old) })
	return buf, log
}

var (
	pctEscape  = regexp.MustCompile(`%[0-9a-fA-F]{2}`)
	jsonEscape = regexp.MustCompile(`\\u[0-9a-fA-F]{4}`)
)

// decodedAll undoes percent and JSON escapes, several layers, so that a
// leak check sees through them.
func decodedAll(s string) string {
	for range 4 {
		s = pctEscape.ReplaceAllStringFunc(s, func(m string) string {
			b, _ := strconv.ParseUint(m[1:], 16, 8)
			return string(rune(b))
		})
		s = jsonEscape.ReplaceAllStringFunc(s, func(m string) string {
			r, _ := strconv.ParseUint(m[2:], 16, 16)
			return string(rune(r))
		})
		s = strings.ReplaceAll(s, `\/`, "/")
	}
	return s
}

// leaked names a marker s holds, plain or escaped; "" if none.
func leaked(s string) string {
	d := decodedAll(s)
	for _, m := range bodyMarkers {
		if strings.Contains(s, m) || strings.Contains(d, m) {
			return m
		}
	}
	return ""
}

// noLeakInRows checks every row the gateway recorded, whole.
func noLeakInRows(t *testing.T, name string, rows []audit.Row) {
	t.Helper()
	for _, r := range rows {
		b, err := json.Marshal(r)
		if err != nil {
			t.Fatal(err)
		}
		if m := leaked(string(b)); m != "" {
			t.Errorf("%s: a %s row holds the secret %q: %s", name, r.Kind, m, b)
		}
	}
}

// lastRequestRow is the newest request row of a session (requests on
// one connection share it).
func lastRequestRow(t *testing.T, rec *testenv.Recorder, sid string) audit.Row {
	t.Helper()
	rows := rec.Rows()
	for i := len(rows) - 1; i >= 0; i-- {
		if rows[i].SessionID == sid && rows[i].Kind == "http.request" {
			return rows[i]
		}
	}
	t.Fatalf("no request row for session %s", sid)
	return audit.Row{}
}

type bodyCase struct {
	name     string
	ctype    string
	encoding string
	body     []byte
	// plain is the body as the plugins read it (decoded).
	plain string
	// chunked sends the body without a Content-Length.
	chunked bool
	// expect sends Expect: 100-continue and waits for the 100.
	expect bool
}

func encodeBody(t *testing.T, enc, s string) []byte {
	t.Helper()
	var b bytes.Buffer
	var w io.WriteCloser
	switch enc {
	case "gzip":
		w = gzip.NewWriter(&b)
	case "deflate":
		w = zlib.NewWriter(&b)
	case "raw-deflate":
		fw, err := flate.NewWriter(&b, flate.BestSpeed)
		if err != nil {
			t.Fatal(err)
		}
		w = fw
	case "br":
		w = brotli.NewWriter(&b)
	case "zstd":
		zw, err := zstd.NewWriter(&b)
		if err != nil {
			t.Fatal(err)
		}
		w = zw
	}
	if _, err := io.WriteString(w, s); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// everyByte percent-encodes every byte of s.
func everyByte(s string) string {
	var b strings.Builder
	for i := range len(s) {
		fmt.Fprintf(&b, "%%%02X", s[i])
	}
	return b.String()
}

// post sends one request with a body through the gateway.
func (p *inproc) post(t *testing.T, c bodyCase) (*http.Response, string) {
	t.Helper()
	var body io.Reader = bytes.NewReader(c.body)
	if c.chunked {
		body = io.MultiReader(bytes.NewReader(c.body)) // no length known
	}
	req, err := http.NewRequest("POST", p.base+"/api/items?x=1", body)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+p.tok)
	if c.ctype != "" {
		req.Header.Set("Content-Type", c.ctype)
	}
	if c.encoding != "" {
		req.Header.Set("Content-Encoding", c.encoding)
	}
	cli := p.cli
	if c.expect {
		req.Header.Set("Expect", "100-continue")
		// The client sends the body only after the gateway's 100.
		cli = &http.Client{Transport: &http.Transport{ExpectContinueTimeout: time.Hour}}
	}
	resp, err := cli.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

// Issue 17, item 9: with redact's requests configured (request_fields
// includes "body" by default), a secret in a request body reaches the
// target byte for byte as sent, and no audit row and no log line holds
// it, however the agent encodes it: JSON, a form, a multipart upload,
// each Content-Encoding the gateway decodes, percent-encoding, JSON
// escapes, chunked, after a 100-continue.
func TestRedactRequestBodyInTheRowOnly(t *testing.T) {
	logs, log := captureLogs(t)
	up := testenv.StartUpstream(t, nil)
	gw := startInProcess(t, loadRedact(t, log, map[string]any{"requests": []string{"http.request"}}), up.URL, nil, nil)

	jsonBody := `{"name":"deploy","token":"` + bodyToken + `","aws":{"key":"` + bodyAWS + `"}}`
	formBody := "name=deploy&token=" + bodyToken + "&aws=" + bodyAWS
	escaped := `{"name":"deploy","token":"ghp\u005f` + bodyToken[4:] + `","aws":"\u0041\u004bIA` + bodyAWS[4:] + `"}`
	var mp bytes.Buffer
	mw := multipart.NewWriter(&mp)
	mw.WriteField("name", "deploy")
	fw, _ := mw.CreateFormFile("env", "creds.env")
	io.WriteString(fw, "GITHUB_TOKEN="+bodyToken+"\nAWS_ACCESS_KEY_ID="+bodyAWS+"\n")
	mw.Close()

	cases := []bodyCase{
		{name: "json", ctype: "application/json", body: []byte(jsonBody), plain: jsonBody},
		{name: "form", ctype: "application/x-www-form-urlencoded", body: []byte(formBody), plain: formBody},
		{name: "form percent-encoded", ctype: "application/x-www-form-urlencoded",
			body: []byte("name=deploy&token=" + everyByte(bodyToken) + "&aws=" + everyByte(bodyAWS))},
		{name: "form percent-encoded twice", ctype: "application/x-www-form-urlencoded",
			body: []byte("token=" + url.QueryEscape(everyByte(bodyToken)) + "&aws=" + url.QueryEscape(everyByte(bodyAWS)))},
		{name: "json escaped", ctype: "application/json; charset=utf-8", body: []byte(escaped), plain: escaped},
		{name: "text", ctype: "text/plain", body: []byte("export T=" + bodyToken + " K=" + bodyAWS)},
		{name: "xml", ctype: "application/xml", body: []byte("<c><t>" + bodyToken + "</t><k>" + bodyAWS + "</k></c>")},
		{name: "multipart", ctype: mw.FormDataContentType(), body: mp.Bytes()},
		{name: "chunked", ctype: "application/json", body: []byte(jsonBody), chunked: true},
		{name: "100-continue", ctype: "application/json", body: []byte(jsonBody), expect: true},
	}
	for _, enc := range []string{"gzip", "deflate", "raw-deflate", "br", "zstd"} {
		name := enc
		if enc == "raw-deflate" {
			name = "deflate" // the header says deflate; the bytes are raw
		}
		cases = append(cases, bodyCase{name: "json " + enc, ctype: "application/json", encoding: name, body: encodeBody(t, enc, jsonBody), plain: jsonBody})
	}
	cases = append(cases, bodyCase{name: "form gzip chunked", ctype: "application/x-www-form-urlencoded", encoding: "gzip",
		body: encodeBody(t, "gzip", formBody), plain: formBody, chunked: true})

	for _, c := range cases {
		resp, answer := gw.post(t, c)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("%s: %d %s", c.name, resp.StatusCode, answer)
		}
		seen := up.Seen()
		last := seen[len(seen)-1]
		if !bytes.Equal(last.Body, c.body) {
			t.Errorf("%s: the upstream got %q, want the bytes sent %q", c.name, last.Body, c.body)
		}
		if got := last.Header.Get("Content-Encoding"); got != c.encoding {
			t.Errorf("%s: the upstream got Content-Encoding %q, want %q", c.name, got, c.encoding)
		}
		row := lastRequestRow(t, gw.rec, last.Header.Get("X-Tollgate-Session-Id"))
		if row.Request["body_inspected"] != "true" || row.Request["body"] == "" {
			t.Errorf("%s: the body was not inspected: %v %v", c.name, row.Request, row.Annotations)
		}
		if c.plain != "" && row.Request["body"] == c.plain {
			t.Errorf("%s: the row's body is unmasked", c.name)
		}
		if n, _ := strconv.Atoi(row.Annotations["redact.values"]); n < 2 {
			t.Errorf("%s: redact.values = %q, want both secrets masked: %v", c.name, row.Annotations["redact.values"], row.Request["body"])
		}
		if (bytes.Contains(c.body, []byte("deploy")) || strings.Contains(c.plain, "deploy")) && !strings.Contains(row.Request["body"], "deploy") {
			t.Errorf("%s: the row's body lost what is not secret: %q", c.name, row.Request["body"])
		}
		if c.encoding != "" && row.Annotations["http.request_decoded"] != c.encoding {
			t.Errorf("%s: http.request_decoded = %q", c.name, row.Annotations["http.request_decoded"])
		}
		if row.Verdict == "rewrite" {
			t.Errorf("%s: a record-only change made the verdict a rewrite", c.name)
		}
		if row.RequestBytes != int64(len(c.body)) {
			t.Errorf("%s: request_bytes %d, want %d", c.name, row.RequestBytes, len(c.body))
		}
	}
	noLeakInRows(t, "inspected bodies", gw.rec.Rows())
	if m := leaked(logs.String()); m != "" {
		t.Errorf("a log line holds the secret %q:\n%s", m, logs.String())
	}
}

// Over max_inspect_body_bytes (raw or decoded), not text, or in a coding
// the gateway cannot decode, a body is forwarded as sent and is not in
// the event or the row at all: not its first bytes either, where a secret
// across the cap would be cut short of what a detector recognises. The
// event says body_inspected=false and the row says why.
func TestRequestBodyNotInspected(t *testing.T) {
	logs, log := captureLogs(t)
	up := testenv.StartUpstream(t, nil)
	const limit = 1024
	gw := startInProcess(t, loadRedact(t, log, map[string]any{"requests": []string{"http.request"}}), up.URL, nil,
		func(l *config.Listener) { l.Options.(*httpproto.ListenerOptions).MaxInspectBodyBytes = limit })

	// The token starts 10 bytes before the cap and ends past it.
	pre := `{"token":"`
	split := `{"pad":"` + strings.Repeat("p", limit-10-len(`{"pad":"`)-len(`","token":"`)) + `","token":"` + bodyToken + `","aws":"` + bodyAWS + `"}`
	if i := strings.Index(split, bodyToken); i != limit-10 {
		t.Fatalf("the token starts at %d", i)
	}
	atStart := pre + bodyToken + `","aws":"` + bodyAWS + `","pad":"` + strings.Repeat("p", 2*limit) + `"}`
	bomb := `{"token":"` + bodyToken + `","pad":"` + strings.Repeat("p", 4*limit) + `"}`
	cases := []struct {
		bodyCase
		why string
	}{
		{bodyCase{name: "split across the cap", ctype: "application/json", body: []byte(split)}, "larger than max_inspect_body_bytes (1024)"},
		{bodyCase{name: "split across the cap, chunked", ctype: "application/json", body: []byte(split), chunked: true}, "larger than max_inspect_body_bytes (1024)"},
		{bodyCase{name: "over the cap, secret first", ctype: "application/json", body: []byte(atStart), chunked: true}, "larger than max_inspect_body_bytes (1024)"},
		{bodyCase{name: "decodes past the cap", ctype: "application/json", encoding: "gzip", body: encodeBody(t, "gzip", bomb)}, "decodes (gzip) to more than max_inspect_body_bytes (1024)"},
		{bodyCase{name: "stacked codings", ctype: "application/json", encoding: "gzip, gzip", body: encodeBody(t, "gzip", `{"t":"`+bodyToken+`","k":"`+bodyAWS+`"}`)}, `Content-Encoding "gzip, gzip" cannot be decoded`},
		{bodyCase{name: "corrupt gzip", ctype: "application/json", encoding: "gzip", body: []byte(`{"t":"` + bodyToken + `","k":"` + bodyAWS + `"}`)}, "gzip body is corrupt"},
		{bodyCase{name: "binary", ctype: "application/octet-stream", body: []byte(bodyToken + " " + bodyAWS)}, `content type "application/octet-stream" is not text`},
		{bodyCase{name: "gzip without Content-Encoding", ctype: "application/json", body: encodeBody(t, "gzip", `{"t":"`+bodyToken+`","k":"`+bodyAWS+`"}`)}, "not valid UTF-8 text"},
		{bodyCase{name: "no content type", body: []byte(bodyToken + " " + bodyAWS)}, `content type "" is not text`},
	}
	for _, c := range cases {
		resp, answer := gw.post(t, c.bodyCase)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("%s: %d %s", c.name, resp.StatusCode, answer)
		}
		seen := up.Seen()
		last := seen[len(seen)-1]
		if !bytes.Equal(last.Body, c.body) {
			t.Errorf("%s: the upstream got %d bytes, not the %d sent", c.name, len(last.Body), len(c.body))
		}
		row := lastRequestRow(t, gw.rec, last.Header.Get("X-Tollgate-Session-Id"))
		if _, ok := row.Request["body"]; ok || row.Request["body_inspected"] != "false" {
			t.Errorf("%s: body %q, body_inspected %q", c.name, row.Request["body"], row.Request["body_inspected"])
		}
		if got := row.Annotations["http.request_body_not_inspected"]; got != c.why {
			t.Errorf("%s: http.request_body_not_inspected = %q, want %q", c.name, got, c.why)
		}
		if row.RequestBytes != int64(len(c.body)) {
			t.Errorf("%s: request_bytes %d, want %d", c.name, row.RequestBytes, len(c.body))
		}
	}
	// One byte under the cap is inspected.
	at := `{"token":"` + bodyToken + `","pad":"` + strings.Repeat("p", limit-len(`{"token":"`+bodyToken+`","pad":"`)-2) + `"}`
	if len(at) != limit {
		t.Fatalf("at the cap: %d bytes", len(at))
	}
	gw.post(t, bodyCase{ctype: "application/json", body: []byte(at)})
	seen := up.Seen()
	if row := lastRequestRow(t, gw.rec, seen[len(seen)-1].Header.Get("X-Tollgate-Session-Id")); row.Request["body_inspected"] != "true" || row.Annotations["redact.values"] != "1" {
		t.Errorf("a body of exactly the cap: %v %v", row.Request["body_inspected"], row.Annotations)
	}
	noLeakInRows(t, "bodies not inspected", gw.rec.Rows())
	if m := leaked(logs.String()); m != "" {
		t.Errorf("a log line holds the secret %q:\n%s", m, logs.String())
	}
}

// With no plugin asking for the body, nothing reads it before the target
// does: the request streams through (the target has it before the client
// has sent the rest), and the row holds no body.
func TestRequestBodyNotWantedStreams(t *testing.T) {
	_, log := captureLogs(t)
	early := make(chan string, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		early <- r.Header.Get("X-Tollgate-Session-Id") // before the body is read
		io.Copy(io.Discard, r.Body)
	}))
	t.Cleanup(srv.Close)
	gw := startInProcess(t, loadRedact(t, log, map[string]any{"requests": []string{"http.request"}, "request_fields": []string{"query"}}), srv.URL, nil, nil)
	pr, pw := io.Pipe()
	req, _ := http.NewRequest("POST", gw.base+"/stream", pr)
	req.Header.Set("Authorization", "Bearer "+gw.tok)
	req.Header.Set("Content-Type", "application/json")
	done := make(chan error, 1)
	go func() {
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			resp.Body.Close()
		}
		done <- err
	}()
	io.WriteString(pw, `{"token":"`+bodyToken)
	var sid string
	select {
	case sid = <-early:
	case err := <-done:
		t.Fatalf("the request ended before the body did: %v", err)
	}
	io.WriteString(pw, `"}`)
	pw.Close()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	row := requestRow(t, gw.rec, sid)
	if _, ok := row.Request["body"]; ok {
		t.Errorf("a body no plugin asked for is in the row: %v", row.Request)
	}
	if _, ok := row.Request["body_inspected"]; ok {
		t.Errorf("a body no plugin asked for is marked: %v", row.Request)
	}
}

// A plugin that changes the request body (not record-only) is refused:
// the gateway forwards request bodies only as sent.
type bodyRewriter struct{}

func (bodyRewriter) Process(_ context.Context, ev *event.Event) (event.Verdict, error) {
	if ev.Kind != "http.request" {
		return event.Verdict{Action: event.Allow}, nil
	}
	return event.Verdict{Action: event.Rewrite, Plugin: "rewriter", Changes: map[string]string{"body": strings.ToUpper(ev.Fields["body"])}}, nil
}

func (bodyRewriter) WantsField(sub string) bool { return sub == event.WantsBody }

func TestRequestBodyRewriteRefused(t *testing.T) {
	up := testenv.StartUpstream(t, nil)
	gw := startInProcess(t, bodyRewriter{}, up.URL, nil, nil)
	resp, answer := gw.post(t, bodyCase{ctype: "application/json", body: []byte(`{"a":"b"}`)})
	if resp.StatusCode != http.StatusForbidden || !strings.Contains(answer, "forwards only as sent") {
		t.Fatalf("%d %s", resp.StatusCode, answer)
	}
	if n := len(up.Seen()); n != 0 {
		t.Errorf("the upstream got %d requests", n)
	}
	var eb struct {
		SessionID string `json:"session_id"`
	}
	json.Unmarshal([]byte(answer), &eb)
	if row := requestRow(t, gw.rec, eb.SessionID); row.Verdict != "deny" || row.Request["body"] != `{"a":"b"}` {
		t.Errorf("row verdict %q body %q", row.Verdict, row.Request["body"])
	}
}

// End to end, with gateway.toml: redact first, approve after it. A held
// request's reviewer sees the body as the row records it, masked; once
// approved the target gets the bytes sent; and no file the gateway wrote
// (audit trail, spool, approvals) nor its log holds the secret.
func TestHeldRequestBodyRedacted(t *testing.T) {
	redact := testenv.BuildWasm(t, "plugins/redact")
	e := startApprovalsWith(t, `http_wait = "30s"`, envOptions{extra: fmt.Sprintf(`
[[plugins]]
name = "redact"
path = %q
[plugins.config]
requests = ["http.request"]
`, redact)})
	agent := e.ciToken(t)
	alice := e.dba(t, "alice@acme.test")

	body := `{"name":"deploy","token":"ghp\u005f` + bodyToken[4:] + `","aws":"` + bodyAWS + `"}`
	send := func(path string, b []byte, encoding string) <-chan answer {
		ch := make(chan answer, 1)
		go func() {
			req, _ := http.NewRequest("POST", "http://"+e.addr+path, bytes.NewReader(b))
			req.Header.Set("Authorization", "Bearer "+agent)
			req.Header.Set("Content-Type", "application/json")
			if encoding != "" {
				req.Header.Set("Content-Encoding", encoding)
			}
			resp, err := (&http.Client{Timeout: time.Minute}).Do(req)
			if err != nil {
				ch <- answer{err: err}
				return
			}
			defer resp.Body.Close()
			rb, _ := io.ReadAll(resp.Body)
			ch <- answer{status: resp.StatusCode, body: string(rb)}
		}()
		return ch
	}
	ch := send("/orders/api/danger/deploy", []byte(body), "")
	rec := e.waitPending(t, alice)
	shown, _ := json.Marshal(rec)
	if m := leaked(string(shown)); m != "" {
		t.Errorf("the approval shows the secret %q: %s", m, shown)
	}
	if !strings.Contains(rec.Body, "deploy") || rec.Fields["body"] != rec.Body {
		t.Errorf("the reviewer sees body %q, the row records %q", rec.Body, rec.Fields["body"])
	}
	if _, err := alice.Approve(context.Background(), rec.ID, admin.DecideRequest{Reason: "ok"}); err != nil {
		t.Fatal(err)
	}
	if a := wait(t, ch); a.status != http.StatusOK {
		t.Fatalf("approved request: %d %s", a.status, a.body)
	}
	if a := wait(t, send("/orders/api/items", encodeBody(t, "gzip", body), "gzip")); a.status != http.StatusOK {
		t.Fatalf("gzip request: %d %s", a.status, a.body)
	}
	seen := e.up.Seen()
	if len(seen) != 2 || string(seen[0].Body) != body || !bytes.Equal(seen[1].Body, encodeBody(t, "gzip", body)) {
		t.Fatalf("the upstream got %d requests, not the bytes sent", len(seen))
	}
	for _, p := range []string{"/api/danger/deploy", "/api/items"} {
		row := e.gw.WaitAudit(auditPath, "for "+p, func(r audit.Row) bool { return r.Kind == "http.request" && r.Request["path"] == p })
		if row.Request["body_inspected"] != "true" || row.Annotations["redact.values"] != "2" {
			t.Errorf("%s: row %v %v", p, row.Request, row.Annotations)
		}
	}
	filepath.WalkDir(e.gw.Dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(p)
		if err != nil {
			t.Error(err)
			return nil
		}
		if m := leaked(string(b)); m != "" {
			t.Errorf("%s holds the secret %q", p, m)
		}
		return nil
	})
	if m := leaked(e.gw.Output()); m != "" {
		t.Errorf("the gateway's log holds the secret %q", m)
	}
}

// A reload between the moment the gateway asked whether a plugin wants the
// body and the chain's decision: the body was read for the old chain, the
// new one (which does not redact bodies) decides, and the row holds no
// body. The 100 Continue says the gateway has asked and is reading.
func TestRequestBodyDroppedAfterReload(t *testing.T) {
	_, log := captureLogs(t)
	up := testenv.StartUpstream(t, nil)
	withBody := loadRedact(t, log, map[string]any{"requests": []string{"http.request"}})
	queryOnly := loadRedact(t, log, map[string]any{"requests": []string{"http.request"}, "request_fields": []string{"query"}})
	chain := plugin.NewReloadable(withBody, nil)
	gw := startInProcess(t, chain, up.URL, nil, nil)

	body := `{"token":"` + bodyToken + `"}`
	c := dial(t, strings.TrimPrefix(gw.base, "http://"))
	fmt.Fprintf(c, "POST /api/items HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\nExpect: 100-continue\r\n\r\n", gw.tok, len(body))
	br := bufio.NewReader(c)
	line, err := br.ReadString('\n')
	if err != nil || !strings.Contains(line, "100 Continue") {
		t.Fatalf("want 100 Continue first, got %q %v", line, err)
	}
	br.ReadString('\n') // the blank line ending the 100
	chain.Replace(queryOnly, nil)
	io.WriteString(c, body)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status %d", resp.StatusCode)
	}
	seen := up.Seen()
	if string(seen[len(seen)-1].Body) != body {
		t.Errorf("the upstream got %q", seen[len(seen)-1].Body)
	}
	row := lastRequestRow(t, gw.rec, seen[len(seen)-1].Header.Get("X-Tollgate-Session-Id"))
	if _, ok := row.Request["body"]; ok {
		t.Errorf("the body no plugin of the deciding chain asked for is in the row: %v", row.Request)
	}
	noLeakInRows(t, "after a reload", gw.rec.Rows())
}
