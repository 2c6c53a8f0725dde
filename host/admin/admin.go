// Package admin is the gateway's operator API, on its own listener: the
// audit trail's read side, so that the CLI can query a store the running
// gateway owns (the embedded store allows one process), and human approval
// of held requests, as a JSON API (for the CLI) and a server-rendered web
// console. Humans and tools authenticate with the same OIDC tokens as
// agents; the audit API needs one of the configured groups, an approval is
// visible to those groups, to its approver groups and to its requester, and
// only its approvers decide it.
package admin

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/tollgate-dev/tollgate/host/approval"
	"github.com/tollgate-dev/tollgate/host/audit"
	"github.com/tollgate-dev/tollgate/host/event"
	"github.com/tollgate-dev/tollgate/host/gate"
)

// AuditReader is the read side of an audit store.
type AuditReader interface {
	Query(ctx context.Context, sql string, args ...any) ([]string, [][]string, error)
	Rows(ctx context.Context, where string, args ...any) ([]audit.Row, error)
}

// Options configure the handler.
type Options struct {
	Auth   gate.Authenticator
	Groups []string    // a caller must be in one of these
	Audit  AuditReader // nil when the store is not queryable (file)
	Log    *slog.Logger
	// Approvals serves /v1/approvals and the console (/ui/); nil: off.
	Approvals *approval.Manager
	// Secure marks the console's cookies Secure (the console is served
	// behind https).
	Secure bool
	// AuditDatabase is the audit store's database, for the console's live
	// sessions; default "tollgate".
	AuditDatabase string
	// Webhooks reports the approval notifier's counters; nil: none.
	Webhooks func() approval.NotifierStats
	// Metrics is what /metrics serves (NewRegistry, with the collectors
	// of the gate, the audit pipeline, the plugins and the approvals
	// registered); nil: the Go runtime's figures only.
	Metrics prometheus.Gatherer
	// Reload reloads the access rules and the plugins (as SIGHUP does),
	// for POST /v1/reload; nil: not offered.
	Reload func(ctx context.Context) ReloadResult
	// PProf serves net/http/pprof's profiles under /debug/pprof/ to the
	// admin groups ([admin] pprof; see pprof.go). Default off.
	PProf bool
	// Routes are the protocols' own routes (gate.APIService): the SSH
	// listeners' certificate issue, for one. An Admin route needs a token
	// in one of Groups.
	Routes []gate.Route
}

// ReloadResult is what a reload did, the answer of POST /v1/reload.
type ReloadResult struct {
	OK bool `json:"ok"`
	// Error says why nothing changed (the file or a plugin did not load).
	Error string `json:"error,omitempty"`
	// Plugins is the chain now serving, in order.
	Plugins []string `json:"plugins,omitempty"`
	// Access lists the rules added, changed or removed ("name: added").
	Access []string `json:"access,omitempty"`
}

// QueryRequest is the body of POST /v1/audit/query.
type QueryRequest struct {
	SQL string `json:"sql"`
}

// QueryResponse is its answer.
type QueryResponse struct {
	Columns []string   `json:"columns"`
	Rows    [][]string `json:"rows"`
}

// New returns the admin API:
//
//	GET  /healthz                 200 "ok" (no authentication)
//	GET  /metrics                 Prometheus text: sessions, requests, plugins, approvals, audit pipeline, runtime (no authentication; README "Metrics and dashboards")
//	POST /v1/audit/query          {"sql": "SELECT ..."} → QueryResponse (read-only)
//	GET  /v1/audit/rows?session=  the session's rows, for verification
//	GET  /v1/audit/sessions/{id}/cast  the session's terminal recording, asciicast v2 (recording.go)
//	GET  /v1/approvals            {"approvals": [Record...]}: pending, then recent
//	GET  /v1/approvals/{id}       a Record
//	POST /v1/approvals/{id}/approve {"reason", "scope": "once"|"session", "minutes"} → Record
//	POST /v1/approvals/{id}/deny  {"reason"} → Record
//	GET  /v1/approvals/webhooks   the notifier's counters (admin groups)
//	GET  /ui/...                  the web console (see console.go)
//	GET  /debug/pprof/...         Go's runtime profiles, admin groups, only with PProf (see pprof.go)
//	...                           each of Routes (e.g. POST /v1/ssh/{listener}/certificate)
func New(o Options) http.Handler {
	if o.Log == nil {
		o.Log = slog.Default()
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok\n") })
	mux.Handle("GET /metrics", metricsHandler(o.Metrics, o.Log))
	mux.Handle("POST /v1/audit/query", o.authorized(func(w http.ResponseWriter, r *http.Request, p *event.Principal) {
		var q QueryRequest
		if err := json.NewDecoder(io.LimitReader(r.Body, 1<<20)).Decode(&q); err != nil || strings.TrimSpace(q.SQL) == "" {
			writeError(w, http.StatusBadRequest, "bad_request", "body must be {\"sql\": \"SELECT ...\"}")
			return
		}
		ctx, cancel := context.WithTimeout(r.Context(), 2*time.Minute)
		defer cancel()
		cols, rows, err := o.Audit.Query(ctx, q.SQL)
		if err != nil {
			writeError(w, http.StatusBadRequest, "query_failed", err.Error())
			return
		}
		o.Log.Info("admin: audit query", "subject", p.Subject, "sql", q.SQL, "rows", len(rows))
		writeJSON(w, QueryResponse{Columns: cols, Rows: rows})
	}))
	mux.Handle("GET /v1/audit/rows", o.authorized(func(w http.ResponseWriter, r *http.Request, p *event.Principal) {
		ctx, cancel := context.WithTimeout(r.Context(), 5*time.Minute)
		defer cancel()
		var rows []audit.Row
		var err error
		if s := r.URL.Query().Get("session"); s != "" {
			rows, err = o.Audit.Rows(ctx, "session_id = toUUID(?)", s)
		} else {
			rows, err = o.Audit.Rows(ctx, "")
		}
		if err != nil {
			writeError(w, http.StatusBadRequest, "query_failed", err.Error())
			return
		}
		writeJSON(w, rows)
	}))
	mux.Handle("GET /v1/audit/sessions/{id}/cast", o.authorized(func(w http.ResponseWriter, r *http.Request, p *event.Principal) {
		o.serveCast(w, r, p, r.PathValue("id"))
	}))
	mux.Handle("POST /v1/reload", o.adminOnly(func(w http.ResponseWriter, r *http.Request, p *event.Principal) {
		if o.Reload == nil {
			writeError(w, http.StatusNotFound, "no_reload", "this gateway does not reload through the API")
			return
		}
		o.Log.Info("admin: reload", "subject", p.Subject)
		writeJSON(w, o.Reload(r.Context()))
	}))
	if o.Approvals != nil {
		o.approvalRoutes(mux)
		o.consoleRoutes(mux)
	}
	if o.PProf {
		o.pprofRoutes(mux)
	}
	for _, rt := range o.Routes {
		h := rt.Handler
		if rt.Admin {
			h = o.adminOnly(func(w http.ResponseWriter, r *http.Request, _ *event.Principal) { rt.Handler.ServeHTTP(w, r) })
		}
		mux.Handle(rt.Pattern, h)
	}
	return mux
}

// adminOnly serves h to a verified token in one of the admin groups.
func (o Options) adminOnly(h func(http.ResponseWriter, *http.Request, *event.Principal)) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p, ok := o.bearer(w, r)
		if !ok {
			return
		}
		if !inAny(p, o.Groups) {
			writeError(w, http.StatusForbidden, "forbidden", "the admin API needs membership in one of: "+strings.Join(o.Groups, ", "))
			return
		}
		h(w, r, p)
	})
}

// authorized is adminOnly for the audit API, which needs a queryable store.
func (o Options) authorized(h func(http.ResponseWriter, *http.Request, *event.Principal)) http.Handler {
	return o.adminOnly(func(w http.ResponseWriter, r *http.Request, p *event.Principal) {
		if o.Audit == nil {
			writeError(w, http.StatusNotFound, "no_store", "the audit store is not queryable (store = \"file\")")
			return
		}
		h(w, r, p)
	})
}

// bearer verifies the request's bearer token; false means it answered.
func (o Options) bearer(w http.ResponseWriter, r *http.Request) (*event.Principal, bool) {
	scheme, tok, _ := strings.Cut(r.Header.Get("Authorization"), " ")
	if !strings.EqualFold(scheme, "Bearer") || tok == "" {
		w.Header().Set("WWW-Authenticate", `Bearer realm="tollgate-admin"`)
		writeError(w, http.StatusUnauthorized, "unauthenticated", "an OIDC token is required")
		return nil, false
	}
	p, err := o.Auth.Verify(r.Context(), strings.TrimSpace(tok))
	if err != nil {
		writeError(w, http.StatusUnauthorized, "invalid_token", "the token was not accepted")
		return nil, false
	}
	return p, true
}

func inAny(p *event.Principal, groups []string) bool {
	for _, g := range groups {
		if p.InGroup(g) {
			return true
		}
	}
	return false
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(v)
}

func writeError(w http.ResponseWriter, status int, code, reason string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(map[string]any{"status": status, "error": code, "reason": reason})
}

// ErrStatus is returned by the client for a non-2xx answer.
var ErrStatus = errors.New("admin: request failed")
