package admin

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/tollgate-dev/tollgate/host/audit"
	"github.com/tollgate-dev/tollgate/host/audit/cast"
	"github.com/tollgate-dev/tollgate/host/audit/trail"
	"github.com/tollgate-dev/tollgate/host/event"
)

// Session recordings (an SSH session's terminal, host/audit/cast):
//
//	GET /v1/audit/sessions/{id}/cast  the recording as an asciicast v2 file (admin groups, bearer token)
//	GET /ui/sessions/{id}/cast        the same, for the console's player (admin groups, console cookie)
//	GET /ui/sessions/{id}/replay      a page with asciinema-player playing it
//
// A recording holds what the client received after redaction, and what it
// typed: it is shown to the admin groups only, as the audit API is.

// playerCSP is the console's policy plus what asciinema-player needs: its
// terminal emulator is WebAssembly ('wasm-unsafe-eval' allows compiling
// it, not eval of JavaScript) and it fetches the cast (connect-src).
const playerCSP = "default-src 'none'; script-src 'self' 'wasm-unsafe-eval'; style-src 'self'; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"

// recording reads session id's recording from the audit store.
func (o Options) recording(ctx context.Context, id string) (*cast.Cast, []int, error) {
	db := o.AuditDatabase
	if db == "" {
		db = "tollgate"
	}
	tr, err := trail.New(trail.FromStore(o.Audit), db)
	if err != nil {
		return nil, nil, err
	}
	return tr.Recording(ctx, id)
}

// serveCast answers with session id's recording as a .cast file.
func (o Options) serveCast(w http.ResponseWriter, r *http.Request, p *event.Principal, id string) {
	if !audit.IsID(id) {
		writeError(w, http.StatusBadRequest, "bad_request", "the session ID must be a UUID")
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), time.Minute)
	defer cancel()
	c, gaps, err := o.recording(ctx, id)
	switch {
	case errors.Is(err, trail.ErrNoRecording):
		writeError(w, http.StatusNotFound, "no_recording", "no recording for this session")
		return
	case err != nil:
		o.Log.Warn("admin: recording", "session_id", id, "err", err)
		writeError(w, http.StatusServiceUnavailable, "query_failed", "the audit store did not answer")
		return
	}
	o.Log.Info("admin: recording read", "session_id", id, "subject", p.Subject, "events", len(c.Events))
	h := w.Header()
	h.Set("Content-Type", "application/x-asciicast")
	h.Set("Content-Disposition", `inline; filename="`+id+`.cast"`)
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	if len(gaps) > 0 {
		h.Set("X-Tollgate-Recording-Gaps", joinInts(gaps))
	}
	if err := c.Encode(w); err != nil {
		o.Log.Warn("admin: recording: write", "session_id", id, "err", err)
	}
}

func joinInts(v []int) string {
	s := make([]string, len(v))
	for i, n := range v {
		s[i] = strconv.Itoa(n)
	}
	return strings.Join(s, ",")
}

// recordingAllowed answers the console's refusals: the admin groups only,
// and a store that can be read.
func (c *console) recordingAllowed(w http.ResponseWriter, p *event.Principal, csrf string) bool {
	switch {
	case !inAny(p, c.o.Groups):
		c.render(w, http.StatusForbidden, "error.html", view{Title: "Refused", Who: p, CSRF: csrf, Status: 403,
			Error: "Session recordings are for the admin groups: " + strings.Join(c.o.Groups, ", ") + "."})
		return false
	case c.o.Audit == nil:
		c.render(w, http.StatusNotFound, "error.html", view{Title: "Not found", Who: p, CSRF: csrf, Status: 404,
			Error: "Recordings need a queryable audit store (clickhouse or embedded); this gateway writes a file."})
		return false
	}
	return true
}

func (c *console) castFile(w http.ResponseWriter, r *http.Request, p *event.Principal, csrf string) {
	if !inAny(p, c.o.Groups) || c.o.Audit == nil {
		writeError(w, http.StatusForbidden, "forbidden", "recordings are for the admin groups, from a queryable store")
		return
	}
	c.o.serveCast(w, r, p, r.PathValue("id"))
}

func (c *console) replayPage(w http.ResponseWriter, r *http.Request, p *event.Principal, csrf string) {
	if !c.recordingAllowed(w, p, csrf) {
		return
	}
	id := r.PathValue("id")
	v := view{Title: "Session " + id, Who: p, CSRF: csrf, Session: id}
	if !audit.IsID(id) {
		c.render(w, http.StatusNotFound, "error.html", view{Title: "Not found", Who: p, CSRF: csrf, Status: 404, Error: "No such session."})
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), 30*time.Second)
	defer cancel()
	rec, gaps, err := c.o.recording(ctx, id)
	switch {
	case errors.Is(err, trail.ErrNoRecording):
		c.render(w, http.StatusNotFound, "error.html", view{Title: "Not found", Who: p, CSRF: csrf, Status: 404,
			Error: "This session has no recording (yet: chunks reach the store about a second after they are written)."})
		return
	case err != nil:
		c.o.Log.Warn("admin: console recording", "session_id", id, "err", err)
		c.render(w, http.StatusServiceUnavailable, "error.html", view{Title: "Unavailable", Who: p, CSRF: csrf, Status: 503, Error: "The audit store did not answer; try again."})
		return
	}
	v.Player = true
	v.CastURL = "/ui/sessions/" + url.PathEscape(id) + "/cast"
	v.Gaps = gaps
	if n := len(rec.Events); n > 0 {
		v.Length = fmt.Sprintf("%.1f s, %d events, %dx%d", rec.Events[n-1].Time, n, rec.Header.Width, rec.Header.Height)
	}
	c.render(w, http.StatusOK, "replay.html", v)
}

// recordedSessions is the sessions page's list of recorded sessions (the
// last day), each linked to its player.
func (c *console) recordedSessions(ctx context.Context, tr *trail.Trail) (trail.Table, error) {
	return tr.RecordedSessions(ctx, time.Now().Add(-24*time.Hour))
}
