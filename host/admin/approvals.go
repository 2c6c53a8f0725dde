package admin

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"

	"github.com/tollgate-dev/tollgate/host/approval"
	"github.com/tollgate-dev/tollgate/host/event"
)

// DecideRequest is the body of POST /v1/approvals/{id}/approve and /deny.
type DecideRequest struct {
	Reason  string `json:"reason,omitempty"`
	Scope   string `json:"scope,omitempty"`   // approve: "once" (default) or "session"
	Minutes int    `json:"minutes,omitempty"` // approve with scope "session"
}

// ApprovalList is the answer of GET /v1/approvals.
type ApprovalList struct {
	Approvals []approval.Record `json:"approvals"`
}

// maxListed bounds the decided approvals a list shows.
const maxListed = 200

func (o Options) approvalRoutes(mux *http.ServeMux) {
	m := o.Approvals
	mux.Handle("GET /v1/approvals", o.withPrincipal(func(w http.ResponseWriter, r *http.Request, p *event.Principal) {
		writeJSON(w, ApprovalList{Approvals: o.visible(p)})
	}))
	mux.Handle("GET /v1/approvals/webhooks", o.withPrincipal(func(w http.ResponseWriter, r *http.Request, p *event.Principal) {
		if !inAny(p, o.Groups) {
			writeError(w, http.StatusForbidden, "forbidden", "needs membership in one of: "+strings.Join(o.Groups, ", "))
			return
		}
		var st approval.NotifierStats
		if o.Webhooks != nil {
			st = o.Webhooks()
		}
		writeJSON(w, st)
	}))
	mux.Handle("GET /v1/approvals/{id}", o.withPrincipal(func(w http.ResponseWriter, r *http.Request, p *event.Principal) {
		rec, ok := m.Get(r.PathValue("id"))
		if !ok || !o.canSee(p, rec) {
			writeError(w, http.StatusNotFound, "not_found", "no such approval")
			return
		}
		writeJSON(w, rec)
	}))
	for _, verb := range []string{"approve", "deny"} {
		mux.Handle("POST /v1/approvals/{id}/"+verb, o.withPrincipal(func(w http.ResponseWriter, r *http.Request, p *event.Principal) {
			var d DecideRequest
			if err := json.NewDecoder(io.LimitReader(r.Body, 64<<10)).Decode(&d); err != nil && !errors.Is(err, io.EOF) {
				writeError(w, http.StatusBadRequest, "bad_request", `body must be {"reason": "...", "scope": "once"|"session", "minutes": N}`)
				return
			}
			rec, err := o.decide(r.PathValue("id"), verb, p, d)
			if err != nil {
				status, code := decideError(err)
				writeError(w, status, code, err.Error())
				return
			}
			writeJSON(w, rec)
		}))
	}
}

// decide approves or denies, and logs who did (the audit row is the
// Manager's).
func (o Options) decide(id, verb string, p *event.Principal, d DecideRequest) (approval.Record, error) {
	var rec approval.Record
	var err error
	if verb == "deny" {
		if strings.TrimSpace(d.Reason) == "" {
			return rec, errReasonRequired
		}
		rec, err = o.Approvals.Deny(id, p, d.Reason)
	} else {
		rec, err = o.Approvals.Approve(id, p, approval.DecideOptions{Reason: d.Reason, Scope: approval.Scope(d.Scope), Minutes: d.Minutes})
	}
	if err != nil {
		o.Log.Warn("admin: approval decision refused", "approval_id", id, "verb", verb, "subject", p.Subject, "err", err)
		return rec, err
	}
	o.Log.Info("admin: approval decision", "approval_id", id, "verb", verb, "subject", p.Subject, "state", rec.State)
	return rec, nil
}

var errReasonRequired = errors.New("admin: a denial needs a reason (the requester sees it)")

func decideError(err error) (int, string) {
	switch {
	case errors.Is(err, approval.ErrNotFound):
		return http.StatusNotFound, "not_found"
	case errors.Is(err, approval.ErrNotPending):
		return http.StatusConflict, "not_pending"
	case errors.Is(err, approval.ErrAlreadyVoted):
		return http.StatusConflict, "already_approved_by_you"
	case errors.Is(err, approval.ErrSelfApproval):
		return http.StatusForbidden, "self_approval"
	case errors.Is(err, approval.ErrNotApprover):
		return http.StatusForbidden, "not_an_approver"
	case errors.Is(err, approval.ErrBadScope), errors.Is(err, errReasonRequired):
		return http.StatusBadRequest, "bad_request"
	}
	return http.StatusInternalServerError, "internal"
}

// withPrincipal needs only a valid token: what the principal sees is
// filtered per approval.
func (o Options) withPrincipal(h func(http.ResponseWriter, *http.Request, *event.Principal)) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if p, ok := o.bearer(w, r); ok {
			h(w, r, p)
		}
	})
}

// canSee: the admin groups, the approval's approver groups, and the
// requester (an agent may poll its own approval).
func (o Options) canSee(p *event.Principal, r approval.Record) bool {
	return inAny(p, o.Groups) || approval.CanDecide(r, p) || (p.Issuer == r.Issuer && p.Subject == r.Subject)
}

// visible lists the pending approvals p may see, then at most maxListed
// decided ones.
func (o Options) visible(p *event.Principal) []approval.Record {
	out := []approval.Record{}
	decided := 0
	for _, r := range o.Approvals.List() {
		if !o.canSee(p, r) {
			continue
		}
		if r.State != approval.StatePending {
			if decided == maxListed {
				continue
			}
			decided++
		}
		out = append(out, r)
	}
	return out
}
