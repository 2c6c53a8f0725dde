package admin

import (
	"net/http"
	"net/http/pprof"

	"github.com/tollgate-dev/tollgate/host/event"
)

// pprofRoutes serves Go's runtime profiles under /debug/pprof/ (the
// index, the named profiles heap, allocs, goroutine, block, mutex,
// threadcreate, and profile, trace and symbol), to the admin groups only:
// the same bearer token and group check as the audit API. A profile
// shows the process's internals (stacks, allocation sites, symbol
// names) and a CPU profile or a trace costs CPU while it runs, and the
// admin listener may be reachable from more than the loopback, so being
// on the listener is not enough. The handlers are mounted here, on the
// admin mux, never through net/http/pprof's side effect on
// http.DefaultServeMux (importing the package registers its handlers
// there; no listener of the gateway serves that mux: each http.Server is
// given its own handler). /debug/pprof/cmdline is left out: the process's
// arguments are nobody's business over HTTP.
func (o Options) pprofRoutes(mux *http.ServeMux) {
	gate := func(h http.HandlerFunc) http.Handler {
		return o.adminOnly(func(w http.ResponseWriter, r *http.Request, p *event.Principal) {
			o.Log.Info("admin: profile", "subject", p.Subject, "path", r.URL.Path, "query", r.URL.RawQuery)
			h(w, r)
		})
	}
	mux.Handle("GET /debug/pprof/", gate(pprof.Index)) // named profiles: /debug/pprof/heap etc.
	mux.Handle("GET /debug/pprof/profile", gate(pprof.Profile))
	mux.Handle("GET /debug/pprof/trace", gate(pprof.Trace))
	mux.Handle("GET /debug/pprof/symbol", gate(pprof.Symbol))
	mux.Handle("POST /debug/pprof/symbol", gate(pprof.Symbol)) // as go tool pprof calls it
	mux.Handle("GET /debug/pprof/cmdline", http.NotFoundHandler())
}
