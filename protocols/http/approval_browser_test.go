package http_test

import (
	"context"
	"encoding/json"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// chromium starts a real headless Chromium (Debian's chromium, installed
// by `make deps`) for the test.
func chromium(t *testing.T) context.Context {
	t.Helper()
	path, err := exec.LookPath("chromium")
	if err != nil {
		t.Fatalf("chromium is not installed: run `make deps` (Debian package chromium): %v", err)
	}
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(path),
		chromedp.Headless,
		chromedp.NoSandbox, // CI runs as root
		chromedp.DisableGPU,
	)
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelCtx := chromedp.NewContext(actx)
	ctx, cancelTimeout := context.WithTimeout(ctx, 90*time.Second)
	t.Cleanup(func() { cancelTimeout(); cancelCtx(); cancelAlloc() })
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("chromium did not start: %v", err)
	}
	return ctx
}

// TestConsoleInBrowser: an agent's request is held; a reviewer signs in to
// the web console with a token, opens the request, approves it, and the
// agent's request completes; then another is denied from the same page.
func TestConsoleInBrowser(t *testing.T) {
	e := startApprovals(t, `http_wait = "60s"`)
	browser := chromium(t)
	agent := e.ciToken(t)
	reviewer := e.token(t, "--sub", "dana@acme.test", "--claim", "email=dana@acme.test", "--group", "dba")
	console := "http://" + e.admin

	// The query carries markup: the console must show it as text.
	held := e.send(context.Background(), "POST", "/orders/api/danger/refund?order=42&note=<script>alert(1)</script>", agent, "")
	rec := e.waitPending(t, e.dba(t, "watcher@acme.test"))

	err := chromedp.Do(browser,
		chromedp.Navigate(console+"/ui/"), // not signed in: the login page
		chromedp.WaitVisible(chromedp.ID("token")),
		chromedp.SetValue(chromedp.ID("token"), reviewer),
		chromedp.Click(chromedp.ID("signin")),
		chromedp.WaitVisible(chromedp.CSS("#pending a.open")),
		chromedp.Click(chromedp.CSS("#pending a.open")),
		chromedp.WaitVisible(chromedp.ID("approve")),
	)
	if err != nil {
		t.Fatalf("browser: sign in and open the request: %v", err)
	}
	request := text(t, browser, chromedp.ID("request"))
	who := text(t, browser, chromedp.CSS("dl"))
	// The agent's <script> is text on the page, not an element: the only
	// script is the console's own.
	scripts, err := chromedp.Run(browser, chromedp.Evaluate[int](`document.scripts.length`))
	if err != nil || scripts != 1 || !strings.Contains(request, "note=<script>alert(1)</script>") {
		t.Fatalf("scripts on the page: %d (%v); request shown as %q", scripts, err, request)
	}
	err = chromedp.Do(browser,
		chromedp.SetValue(chromedp.ID("approve-reason"), "refund for order 42 is fine"),
		chromedp.Click(chromedp.ID("approve")),
		chromedp.WaitVisible(chromedp.CSS(".notice")),
	)
	if err != nil {
		t.Fatalf("browser: approve: %v", err)
	}
	state := text(t, browser, chromedp.ID("state"))
	if !strings.Contains(request, "POST /api/danger/refund?order=42") || !strings.Contains(who, "acme/app") || state != "approved" {
		t.Fatalf("page showed request %q, who %q, state %q", request, who, state)
	}
	a := wait(t, held)
	if a.status != 200 {
		t.Fatalf("agent's request after approval in the browser: %d %s", a.status, a.body)
	}
	if n := e.hits("/api/danger/refund"); n != 1 {
		t.Fatalf("upstream hits %d", n)
	}
	if r, _ := e.dba(t, "watcher@acme.test").Approval(context.Background(), rec.ID); r.DecidedBy != "dana@acme.test" {
		t.Fatalf("decided by %q", r.DecidedBy)
	}

	// A deny, from the same signed-in browser.
	held = e.send(context.Background(), "POST", "/orders/api/danger/drop-everything", agent, "")
	e.waitPending(t, e.dba(t, "watcher@acme.test"))
	err = chromedp.Do(browser,
		chromedp.Navigate(console+"/ui/"),
		chromedp.WaitVisible(chromedp.CSS("#pending a.open")),
		chromedp.Click(chromedp.CSS("#pending a.open")),
		chromedp.WaitVisible(chromedp.ID("deny")),
		chromedp.SetValue(chromedp.ID("deny-reason"), "never drop everything"),
		chromedp.Click(chromedp.ID("deny")),
		chromedp.WaitVisible(chromedp.CSS(".notice")),
	)
	if err != nil {
		t.Fatalf("browser: deny: %v", err)
	}
	state = text(t, browser, chromedp.ID("state"))
	a = wait(t, held)
	var eb errorBody
	json.Unmarshal([]byte(a.body), &eb)
	if state != "denied" || a.status != 403 || !strings.Contains(eb.Reason, "never drop everything") {
		t.Fatalf("deny: page state %q, agent got %d %s", state, a.status, a.body)
	}
	if e.hits("/api/danger/drop-everything") != 0 {
		t.Fatal("a denied request reached the upstream")
	}
}

func text[S chromedp.Selectable](t *testing.T, ctx context.Context, sel S) string {
	t.Helper()
	s, err := chromedp.Run(ctx, chromedp.Text(sel))
	if err != nil {
		t.Fatalf("browser: text of %v: %v", sel, err)
	}
	return strings.TrimSpace(s)
}
