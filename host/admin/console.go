package admin

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"embed"
	"encoding/hex"
	"html/template"
	"io/fs"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/tollgate-dev/tollgate/host/approval"
	"github.com/tollgate-dev/tollgate/host/audit"
	"github.com/tollgate-dev/tollgate/host/audit/trail"
	"github.com/tollgate-dev/tollgate/host/event"
)

// The web console: server-rendered pages on the admin listener, no build
// step, usable without JavaScript (one small script reloads the queue).
//
//	GET  /ui/login                 paste an OIDC token (in --dev: `gateway token`)
//	POST /ui/login                 verify it, keep it in an HttpOnly, SameSite=Strict cookie
//	POST /ui/logout
//	GET  /ui/                      the pending queue and recent decisions
//	GET  /ui/approvals/{id}        one request: who (claims), target, the exact request, the plugin's reason
//	POST /ui/approvals/{id}/approve|deny
//	GET  /ui/sessions              live and recorded sessions, from the audit store (admin groups)
//	GET  /ui/sessions/{id}/replay  a session's terminal recording in asciinema-player (recording.go)
//
// Every form carries a CSRF token: HMAC-SHA256 of the session cookie under
// a key made at start (a forged cross-site form cannot know it), and the
// login form a double-submit token. The cookie is SameSite=Strict as well.
// html/template escapes every value; the request text is attacker-written.

//go:embed ui
var uiFS embed.FS

var pages = template.Must(template.New("").Funcs(template.FuncMap{
	"ago":   func(t time.Time) string { return time.Since(t).Round(time.Second).String() },
	"utc":   func(t time.Time) string { return t.UTC().Format("2006-01-02 15:04:05 UTC") },
	"join":  strings.Join,
	"lines": summaryLine,
}).ParseFS(uiFS, "ui/*.html"))

const (
	sessionCookie = "tollgate_console"
	loginCookie   = "tollgate_login"
)

type console struct {
	o   Options
	key []byte // CSRF HMAC key
}

func (o Options) consoleRoutes(mux *http.ServeMux) {
	c := &console{o: o, key: make([]byte, 32)}
	rand.Read(c.key)
	static, _ := fs.Sub(uiFS, "ui/static")
	mux.Handle("GET /ui/static/", http.StripPrefix("/ui/static/", http.FileServerFS(static)))
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) { http.Redirect(w, r, "/ui/", http.StatusSeeOther) })
	mux.HandleFunc("GET /ui/login", c.loginPage)
	mux.HandleFunc("POST /ui/login", c.login)
	mux.HandleFunc("POST /ui/logout", c.withSession(c.logout))
	mux.HandleFunc("GET /ui/{$}", c.withSession(c.queue))
	mux.HandleFunc("GET /ui/approvals/{id}", c.withSession(c.detail))
	mux.HandleFunc("POST /ui/approvals/{id}/{verb}", c.withSession(c.decide))
	mux.HandleFunc("GET /ui/sessions", c.withSession(c.sessions))
	mux.HandleFunc("GET /ui/sessions/{id}/replay", c.withSession(c.replayPage))
	mux.HandleFunc("GET /ui/sessions/{id}/cast", c.withSession(c.castFile))
}

// view is what every page template gets.
type view struct {
	Title     string
	Who       *event.Principal
	CSRF      string
	Error     string
	Notice    string
	Refresh   bool
	Pending   []approval.Record
	Recent    []approval.Record
	Rec       *approval.Record
	CanDecide bool
	Claims    [][2]string
	Fields    [][2]string
	Request   []token // the exact request, highlighted
	Status    int
	Next      string // login: where to go after
	Columns   []string
	Rows      [][]string
	Changed   map[string]bool // fields plugins rewrote before the hold
	Covered   [][2]string     // the canonical request the approval covers
	BodyLen   int             // the held body's length; Rec.Body shows it or its first KiB
	BodyCut   bool
	// The recordings (recording.go): the session page's, and the
	// sessions page's list with their player links.
	Session     string
	Player      bool // the page loads asciinema-player (and its CSP)
	CastURL     string
	Gaps        []int
	Length      string
	RecColumns  []string
	RecRows     [][]string
	RecordingOf string // an SSH approval's session, linked from its page
}

func (c *console) render(w http.ResponseWriter, status int, name string, v view) {
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Referrer-Policy", "no-referrer")
	csp := "default-src 'none'; script-src 'self'; style-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
	if v.Player {
		csp = playerCSP
	}
	h.Set("Content-Security-Policy", csp)
	w.WriteHeader(status)
	if err := pages.ExecuteTemplate(w, name, v); err != nil {
		c.o.Log.Error("admin: console template", "page", name, "err", err)
	}
}

func (c *console) cookie(name, value string, maxAge int) *http.Cookie {
	return &http.Cookie{Name: name, Value: value, Path: "/ui/", MaxAge: maxAge, HttpOnly: true, Secure: c.o.Secure, SameSite: http.SameSiteStrictMode}
}

func (c *console) loginPage(w http.ResponseWriter, r *http.Request) {
	tok := randomHex()
	http.SetCookie(w, c.cookie(loginCookie, tok, 600))
	c.render(w, http.StatusOK, "login.html", view{Title: "Sign in", CSRF: tok, Next: r.URL.Query().Get("next")})
}

func (c *console) login(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, 64<<10)
	ck, err := r.Cookie(loginCookie)
	if err != nil || !equal(ck.Value, r.PostFormValue("csrf")) {
		c.render(w, http.StatusForbidden, "login.html", view{Title: "Sign in", Error: "The form expired or did not come from this console; try again.", CSRF: c.resetLogin(w)})
		return
	}
	raw := strings.TrimSpace(r.PostFormValue("token"))
	p, err := c.o.Auth.Verify(r.Context(), raw)
	if err != nil {
		c.render(w, http.StatusUnauthorized, "login.html", view{Title: "Sign in", Error: "That token was not accepted (expired, or not from a trusted issuer).", CSRF: c.resetLogin(w)})
		return
	}
	http.SetCookie(w, c.cookie(loginCookie, "", -1))
	http.SetCookie(w, c.cookie(sessionCookie, raw, 0))
	c.o.Log.Info("admin: console login", "subject", p.Subject, "issuer", p.Issuer)
	next := r.PostFormValue("next")
	if !strings.HasPrefix(next, "/ui/") || strings.HasPrefix(next, "//") {
		next = "/ui/"
	}
	http.Redirect(w, r, next, http.StatusSeeOther)
}

func (c *console) resetLogin(w http.ResponseWriter) string {
	tok := randomHex()
	http.SetCookie(w, c.cookie(loginCookie, tok, 600))
	return tok
}

func (c *console) logout(w http.ResponseWriter, r *http.Request, p *event.Principal, csrf string) {
	if !c.checkCSRF(w, r, csrf) {
		return
	}
	http.SetCookie(w, c.cookie(sessionCookie, "", -1))
	http.Redirect(w, r, "/ui/login", http.StatusSeeOther)
}

// withSession resolves the cookie to a principal, or sends the browser to
// the login page.
func (c *console) withSession(h func(http.ResponseWriter, *http.Request, *event.Principal, string)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		ck, err := r.Cookie(sessionCookie)
		var p *event.Principal
		if err == nil {
			p, err = c.o.Auth.Verify(r.Context(), ck.Value)
		}
		if err != nil {
			if r.Method != http.MethodGet {
				c.render(w, http.StatusUnauthorized, "login.html", view{Title: "Sign in", Error: "Your session ended; sign in again.", CSRF: c.resetLogin(w)})
				return
			}
			http.Redirect(w, r, "/ui/login?next="+url.QueryEscape(r.URL.Path), http.StatusSeeOther)
			return
		}
		h(w, r, p, c.csrfFor(ck.Value))
	}
}

func (c *console) csrfFor(session string) string {
	m := hmac.New(sha256.New, c.key)
	m.Write([]byte(session))
	return hex.EncodeToString(m.Sum(nil))
}

// checkCSRF refuses a POST whose form lacks the session's token.
func (c *console) checkCSRF(w http.ResponseWriter, r *http.Request, want string) bool {
	r.Body = http.MaxBytesReader(w, r.Body, 64<<10)
	if equal(r.PostFormValue("csrf"), want) {
		return true
	}
	c.o.Log.Warn("admin: console form without a valid CSRF token", "path", r.URL.Path, "remote", r.RemoteAddr)
	c.render(w, http.StatusForbidden, "error.html", view{Title: "Refused", Status: 403,
		Error: "This form did not come from this console (missing or wrong CSRF token). Nothing was changed."})
	return false
}

func (c *console) queue(w http.ResponseWriter, r *http.Request, p *event.Principal, csrf string) {
	v := view{Title: "Approvals", Who: p, CSRF: csrf, Refresh: true}
	for _, rec := range c.o.visible(p) {
		if rec.State == approval.StatePending {
			v.Pending = append(v.Pending, rec)
		} else if len(v.Recent) < 50 {
			v.Recent = append(v.Recent, rec)
		}
	}
	c.render(w, http.StatusOK, "queue.html", v)
}

func (c *console) detail(w http.ResponseWriter, r *http.Request, p *event.Principal, csrf string) {
	c.showDetail(w, r.PathValue("id"), p, csrf, http.StatusOK, "", r.URL.Query().Get("done"))
}

func (c *console) showDetail(w http.ResponseWriter, id string, p *event.Principal, csrf string, status int, errMsg, notice string) {
	rec, ok := c.o.Approvals.Get(id)
	if !ok || !c.o.canSee(p, rec) {
		c.render(w, http.StatusNotFound, "error.html", view{Title: "Not found", Who: p, CSRF: csrf, Status: 404, Error: "No such approval, or not one you may see."})
		return
	}
	v := view{Title: "Approval " + rec.ID, Who: p, CSRF: csrf, Rec: &rec, Error: errMsg, Notice: notice,
		CanDecide: rec.State == approval.StatePending && approval.CanDecide(rec, p)}
	v.Claims = sortedPairs(rec.Claims)
	v.Fields = sortedPairs(rec.Fields)
	v.Changed = map[string]bool{}
	for _, k := range rec.Changed {
		v.Changed[k] = true
	}
	v.Request = highlight(rec)
	v.Covered = sortedPairs(rec.Covered)
	v.BodyLen, _ = strconv.Atoi(rec.Covered["body.length"])
	v.BodyCut = v.BodyLen > 1024
	if rec.Protocol == "ssh" && audit.IsID(rec.SessionID) && inAny(p, c.o.Groups) && c.o.Audit != nil {
		v.RecordingOf = rec.SessionID
	}
	c.render(w, status, "detail.html", v)
}

func (c *console) decide(w http.ResponseWriter, r *http.Request, p *event.Principal, csrf string) {
	if !c.checkCSRF(w, r, csrf) {
		return
	}
	id, verb := r.PathValue("id"), r.PathValue("verb")
	if verb != "approve" && verb != "deny" {
		http.NotFound(w, r)
		return
	}
	minutes, _ := strconv.Atoi(r.PostFormValue("minutes"))
	d := DecideRequest{Reason: r.PostFormValue("reason"), Scope: r.PostFormValue("scope"), Minutes: minutes}
	if _, err := c.o.decide(id, verb, p, d); err != nil {
		status, _ := decideError(err)
		c.showDetail(w, id, p, csrf, status, strings.TrimPrefix(strings.TrimPrefix(err.Error(), "approval: "), "admin: "), "")
		return
	}
	done := "approved"
	if verb == "deny" {
		done = "denied"
	}
	http.Redirect(w, r, "/ui/approvals/"+url.PathEscape(id)+"?done="+done, http.StatusSeeOther)
}

func sortedPairs(m map[string]string) [][2]string {
	out := make([][2]string, 0, len(m))
	for k, v := range m {
		out = append(out, [2]string{k, v})
	}
	sort.Slice(out, func(i, j int) bool { return out[i][0] < out[j][0] })
	return out
}

// summaryLine is the request in the queue: SQL, command, or method and path.
func summaryLine(f map[string]string) string {
	for _, k := range []string{"sql", "command"} {
		if v := f[k]; v != "" {
			return clip(v, 160)
		}
	}
	s := f["method"] + " " + f["path"]
	if q := f["query"]; q != "" {
		s += "?" + q
	}
	return clip(s, 160)
}

func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

func equal(a, b string) bool {
	return a != "" && subtle.ConstantTimeCompare([]byte(a), []byte(b)) == 1
}

func randomHex() string {
	var b [16]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// sessions lists the sessions the audit store holds as open (opened in the
// last day, no close row yet), newest first. The file store cannot answer.
func (c *console) sessions(w http.ResponseWriter, r *http.Request, p *event.Principal, csrf string) {
	v := view{Title: "Sessions", Who: p, CSRF: csrf, Refresh: true}
	switch {
	case !inAny(p, c.o.Groups):
		v.Error = "Live sessions are for the admin groups: " + strings.Join(c.o.Groups, ", ") + "."
		c.render(w, http.StatusForbidden, "sessions.html", v)
		return
	case c.o.Audit == nil:
		v.Error = "Live sessions need a queryable audit store (clickhouse or embedded); this gateway writes a file."
		c.render(w, http.StatusOK, "sessions.html", v)
		return
	}
	db := c.o.AuditDatabase
	if db == "" {
		db = "tollgate"
	}
	ctx, cancel := context.WithTimeout(r.Context(), 10*time.Second)
	defer cancel()
	tr, err := trail.New(trail.FromStore(c.o.Audit), db)
	var tab trail.Table
	if err == nil {
		tab, err = tr.LiveSessions(ctx)
	}
	if err != nil {
		c.o.Log.Warn("admin: console sessions", "err", err)
		v.Error = "The audit store did not answer; try again."
		c.render(w, http.StatusServiceUnavailable, "sessions.html", v)
		return
	}
	cols, rows := tab.Columns, tab.Rows
	v.Columns, v.Rows = cols, rows
	if rec, err := c.recordedSessions(ctx, tr); err != nil {
		// The live list stands alone; a store without the recordings
		// table (older schema) says so in the log.
		c.o.Log.Warn("admin: console recorded sessions", "err", err)
	} else {
		v.RecColumns, v.RecRows = rec.Columns, rec.Rows
	}
	c.render(w, http.StatusOK, "sessions.html", v)
}
