package admin

import (
	"bytes"
	"context"
	"net/http/httptest"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/tollgate-dev/tollgate/host/approval"
	"github.com/tollgate-dev/tollgate/host/audit"
	"github.com/tollgate-dev/tollgate/host/audit/cast"
	"github.com/tollgate-dev/tollgate/host/audit/clickhouse"
	"github.com/tollgate-dev/tollgate/host/gate"
	"github.com/tollgate-dev/tollgate/internal/testenv"
)

type keep struct{ rows []audit.Row }

func (k *keep) Record(r audit.Row) error { k.rows = append(k.rows, r); return nil }
func (k *keep) Close() error             { return nil }

// recordedServer is the admin API on a real ClickHouse store holding one
// SSH session whose recording shows output, and an SSH approval of that
// session.
func recordedServer(t *testing.T, output string) (srv *httptest.Server, session string) {
	t.Helper()
	ch := testenv.StartClickHouse(t)
	store, err := clickhouse.Open(context.Background(), clickhouse.Options{Addrs: []string{ch.Addr()}, Database: "rec"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	mem := &keep{}
	s := (&gate.Deps{GatewayID: "gw", Recorder: mem}).NewSession(gate.SessionInfo{Protocol: "ssh", Listener: "ssh", Remote: "127.0.0.1:1"})
	s.SetTarget("box", "agents")
	if err := s.Open(s.Row("")); err != nil {
		t.Fatal(err)
	}
	s.Recording().Input([]byte("cat notes\n"))
	s.Recording().Output([]byte(output))
	s.Close("1 exec", "")
	if err := store.Insert(context.Background(), mem.rows); err != nil {
		t.Fatal(err)
	}
	m, err := approval.New(approval.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Shutdown(context.Background()) })
	if _, err := m.Hold(context.Background(), approval.Request{
		SessionID: s.ID(), Protocol: "ssh", Kind: "ssh.exec", Target: "box", Principal: people["agent"],
		Fields: map[string]string{"command": "systemctl restart app"}, Plugin: "approve", Reason: "restarts need a person",
		ApproverGroups: []string{"auditors"},
	}); err != nil {
		t.Fatal(err)
	}
	srv = httptest.NewServer(New(Options{Auth: people, Groups: []string{"auditors"}, Approvals: m, Audit: store, AuditDatabase: "rec"}))
	t.Cleanup(srv.Close)
	return srv, s.ID()
}

// The cast endpoints: the API (bearer) and the console (cookie) answer
// the recording to the admin groups only; a bad or unknown ID is refused.
func TestRecordingEndpoints(t *testing.T) {
	srv, id := recordedServer(t, "hello <b>from</b> the box\r\n")
	code, body := call(t, srv, "GET", "/v1/audit/sessions/"+id+"/cast", "auditor", "")
	if code != 200 {
		t.Fatalf("cast: %d %s", code, body)
	}
	c, err := cast.Decode(strings.NewReader(body))
	if err != nil || c.Output() != "hello <b>from</b> the box\r\n" {
		t.Fatalf("cast: %v %q", err, body)
	}
	for _, tc := range []struct {
		path, token string
		code        int
	}{
		{"/v1/audit/sessions/" + id + "/cast", "alice", 403},
		{"/v1/audit/sessions/" + id + "/cast", "", 401},
		{"/v1/audit/sessions/not-a-uuid/cast", "auditor", 400},
		{"/v1/audit/sessions/00000000-0000-4000-8000-000000000000/cast", "auditor", 404},
		{"/v1/audit/sessions/x'%20OR%201=1/cast", "auditor", 400},
	} {
		if code, body := call(t, srv, "GET", tc.path, tc.token, ""); code != tc.code {
			t.Errorf("%s as %q: %d, want %d: %s", tc.path, tc.token, code, tc.code, body)
		}
	}
	// The console: the page and its cast for an auditor, not for an
	// approver outside the admin groups.
	b, _ := login(t, srv.URL, "auditor")
	if code, page := get(t, b, srv.URL+"/ui/sessions/"+id+"/replay"); code != 200 || !strings.Contains(page, `data-cast="/ui/sessions/`+id+`/cast"`) {
		t.Fatalf("replay page: %d\n%s", code, page)
	}
	if code, body := get(t, b, srv.URL+"/ui/sessions/"+id+"/cast"); code != 200 || !strings.Contains(body, `"version":2`) {
		t.Fatalf("console cast: %d %s", code, body)
	}
	if code, page := get(t, b, srv.URL+"/ui/sessions"); code != 200 || !strings.Contains(page, `href="/ui/sessions/`+id+`/replay"`) {
		t.Fatalf("sessions page does not link the recording: %d\n%s", code, page)
	}
	a, _ := login(t, srv.URL, "alice")
	if code, _ := get(t, a, srv.URL+"/ui/sessions/"+id+"/replay"); code != 403 {
		t.Errorf("an approver's replay page: %d", code)
	}
	if code, _ := get(t, a, srv.URL+"/ui/sessions/"+id+"/cast"); code != 403 {
		t.Errorf("an approver's cast: %d", code)
	}
	// Only the player page relaxes the CSP, and only for WebAssembly and
	// fetching the cast.
	resp, err := b.Get(srv.URL + "/ui/sessions/" + id + "/replay")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if got := resp.Header.Get("Content-Security-Policy"); got != playerCSP || strings.Contains(got, "unsafe-inline") || strings.Contains(got, "'unsafe-eval'") {
		t.Errorf("player CSP %q", got)
	}
	resp, err = b.Get(srv.URL + "/ui/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if got := resp.Header.Get("Content-Security-Policy"); strings.Contains(got, "wasm") || strings.Contains(got, "connect-src") {
		t.Errorf("the queue's CSP was relaxed too: %q", got)
	}
}

// The approval of an SSH command links to its session's recording.
func TestSSHApprovalLinksItsRecording(t *testing.T) {
	srv, id := recordedServer(t, "ok\r\n")
	b, _ := login(t, srv.URL, "auditor")
	_, queue := get(t, b, srv.URL+"/ui/")
	i := strings.Index(queue, `href="/ui/approvals/`)
	if i < 0 {
		t.Fatalf("no approval in the queue:\n%s", queue)
	}
	href := queue[i+len(`href="`):]
	href = href[:strings.IndexByte(href, '"')]
	if code, page := get(t, b, srv.URL+href); code != 200 || !strings.Contains(page, `id="recording" href="/ui/sessions/`+id+`/replay"`) {
		t.Fatalf("approval page: %d\n%s", code, page)
	}
}

// The console's player page in a real headless Chromium, under the
// page's CSP: asciinema-player loads, fetches the cast and renders the
// recorded text; the browser reports no CSP violation.
func TestRecordingPlayerInChromium(t *testing.T) {
	const text = "deploy finished: 3 hosts restarted"
	srv, id := recordedServer(t, "\x1b[32m"+text+"\x1b[0m\r\n$ ")
	path, err := exec.LookPath("chromium")
	if err != nil {
		t.Fatalf("chromium is not installed: run `make deps` (Debian package chromium): %v", err)
	}
	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(path), chromedp.Headless, chromedp.NoSandbox, chromedp.DisableGPU)
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	defer cancelAlloc()
	ctx, cancelCtx := chromedp.NewContext(actx)
	defer cancelCtx()
	bctx := ctx // for the page's state after a failure
	ctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	var mu sync.Mutex
	var logs bytes.Buffer
	msgs := chromedp.Console(ctx)
	go func() {
		for m, err := range msgs {
			if err != nil {
				return
			}
			mu.Lock()
			logs.WriteString(string(m.Type) + ": " + m.Text + "\n")
			mu.Unlock()
		}
	}()
	err = chromedp.Do(ctx,
		chromedp.Navigate(srv.URL+"/ui/login"),
		chromedp.WaitVisible(chromedp.ID("token")),
		chromedp.SetValue(chromedp.ID("token"), "auditor"),
		chromedp.Click(chromedp.ID("signin")),
		chromedp.WaitVisible(chromedp.CSS("header .who")),
		chromedp.Navigate(srv.URL+"/ui/sessions/"+id+"/replay"),
		chromedp.WaitVisible(chromedp.CSS("#player .ap-term")),
	)
	var rendered string
	if err == nil {
		rendered, err = chromedp.Run(ctx, chromedp.Poll[string](`(function(){var t=document.querySelector("#player .ap-term");return t&&t.textContent.indexOf(`+"`"+text+"`"+`)>=0?t.textContent:false})()`, chromedp.WithPollingTimeout(60*time.Second)))
	}
	if err != nil {
		html, _ := chromedp.Run(bctx, chromedp.Evaluate[string](`document.documentElement.outerHTML.slice(0, 3000)`))
		mu.Lock()
		defer mu.Unlock()
		t.Fatalf("browser: %v\nconsole and log:\n%s\npage:\n%s", err, logs.String(), html)
	}
	mu.Lock()
	defer mu.Unlock()
	if !strings.Contains(rendered, text) {
		t.Fatalf("the player shows %q", rendered)
	}
	if l := logs.String(); strings.Contains(l, "Content Security Policy") || strings.Contains(l, "exception:") {
		t.Fatalf("the browser reported:\n%s", l)
	}
}
