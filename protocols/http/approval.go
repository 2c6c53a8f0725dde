package http

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/tollgate-dev/tollgate/host/event"
	"github.com/tollgate-dev/tollgate/host/gate"
)

// maxHeldBody bounds the body of a held request, which is read into
// memory before waiting: a request whose body is still unread is one whose
// client can vanish unnoticed (Go's server watches the connection only
// after the body has been read).
const maxHeldBody = 4 << 20

// pendingBody is the 202 answer of a request still waiting for approval.
type pendingBody struct {
	Status     int    `json:"status"`
	Error      string `json:"error"`
	Reason     string `json:"reason"`
	ApprovalID string `json:"approval_id"`
	URL        string `json:"url"`
	SessionID  string `json:"session_id,omitempty"`
}

// hold runs a held request through the approval service: a session grant
// lets it through at once; otherwise it waits up to the configured time
// for the decision (its own earlier attempt's, found by Idempotency-Key or
// canonical form, or a new approval's). It answers the client and returns
// false unless the request was approved and may run now, exactly once.
//
// An approval covers the request's canonical form (gate.CoverHTTP):
// a retry whose Idempotency-Key names an approval of another request is
// refused with 409 approval_mismatch.
func (x *exchange) hold(w http.ResponseWriter, r *http.Request, v event.Verdict) bool {
	m := x.l.deps.Approvals
	// The body is read first: it is part of what an approval covers,
	// grants included.
	body := []byte{}
	if r.Body != nil && r.Body != http.NoBody {
		b, err := io.ReadAll(io.LimitReader(r.Body, maxHeldBody+1))
		if err != nil {
			x.errMsg, x.status = "client went away", 499
			return false
		}
		if len(b) > maxHeldBody {
			x.fail(w, http.StatusRequestEntityTooLarge, "body_too_large", "a request held for approval may carry at most 4 MiB")
			return false
		}
		r.Body.Close()
		r.Body = io.NopCloser(bytes.NewReader(b))
		body = b
	}
	if ce := r.Header.Get("Content-Encoding"); ce != "" && !strings.EqualFold(ce, "identity") && len(body) > 0 {
		x.fail(w, http.StatusUnsupportedMediaType, "encoded_body", "a request held for approval must send its body without Content-Encoding, so that the reviewer can read it")
		return false
	}
	fields, changed := gate.RewrittenFields(x.ev.Fields, v.Changes, acceptedChange)
	req := gate.ApprovalRequest{
		SessionID: x.sess.ID(), Protocol: "http", Kind: x.ev.Kind, Target: x.rt.cfg.Target,
		Principal: x.ev.Principal, Fields: fields, Changed: changed, Plugin: v.Plugin, Reason: v.Reason,
		ApproverGroups: v.ApproverGroups, IdempotencyKey: r.Header.Get("Idempotency-Key"),
		Covered: gate.CoverHTTP(fields["method"], fields["path"], fields["query"], heldHeader(r, v.Changes), body), Body: x.reviewedBody(body),
		RemoteAddr: x.conn.remote, Listener: x.l.cfg.Name,
	}
	if d, ok := m.Granted(req); ok {
		x.approvalID, x.approver = d.ID, d.Approver
		return true
	}
	p, ok, err := m.Resume(req)
	var mm *gate.MismatchError
	if errors.As(err, &mm) {
		x.approvalID = mm.ID
		x.fail(w, http.StatusConflict, "approval_mismatch", mm.Error()+"; send the approved request unchanged, or another Idempotency-Key for a new approval")
		return false
	}
	if !ok {
		if p, err = m.Hold(r.Context(), req); err != nil {
			if errors.Is(err, gate.ErrTooManyPending) {
				w.Header().Set("Retry-After", strconv.Itoa(retryAfter))
				x.fail(w, http.StatusTooManyRequests, "too_many_pending", "held for approval, and not recorded: "+err.Error())
				return false
			}
			x.sess.Log().Error("approval not recorded", "err", err)
			x.fail(w, http.StatusForbidden, "denied", "held for approval, and the approval could not be recorded: "+v.Reason)
			return false
		}
	}
	x.approvalID = p.ID
	t := time.NewTimer(x.l.deps.ApprovalWait)
	defer t.Stop()
	select {
	case <-p.Done():
	case <-r.Context().Done():
		p.Cancel("the client went away while the request was held")
		x.errMsg, x.status = "client went away while held for approval", 499
		return false
	case <-t.C:
		x.pending(w, p, v)
		return false
	}
	d, ok := p.Take()
	switch {
	case !ok:
		x.fail(w, http.StatusConflict, "approval_used", "approval "+p.ID+" was already used by another attempt of this request")
		return false
	case !d.Approved():
		x.approver = d.Approver
		x.fail(w, http.StatusForbidden, "approval_"+string(d.State), d.Message())
		return false
	}
	x.approver = d.Approver
	return true
}

// heldHeader is r's header as the request will leave, with the chain's
// header changes applied as applyChanges will apply them.
func heldHeader(r *http.Request, changes map[string]string) http.Header {
	h, cloned := r.Header, false
	for k, v := range changes {
		if !strings.HasPrefix(k, "header.") || !acceptedChange(k, v) {
			continue
		}
		if !cloned {
			h, cloned = r.Header.Clone(), true
		}
		name := http.CanonicalHeaderKey(strings.TrimPrefix(k, "header."))
		if v == "" {
			h.Del(name)
		} else {
			h.Set(name, v)
		}
	}
	return h
}

// pending answers 202: the approval goes on, and a retry of the same
// request (same Idempotency-Key, or the same canonical form) picks it up.
func (x *exchange) pending(w http.ResponseWriter, p *gate.Pending, v event.Verdict) {
	x.errMsg = "held: waiting for approval " + p.ID
	b, _ := json.Marshal(pendingBody{
		Status: http.StatusAccepted, Error: "approval_pending",
		Reason:     "held for approval (" + v.Reason + "); once it is approved, retry the same request unchanged (method, path, query, body), with the same Idempotency-Key if you sent one",
		ApprovalID: p.ID, URL: p.URL, SessionID: x.sess.ID(),
	})
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Retry-After", strconv.Itoa(retryAfter))
	h.Set("Location", p.URL)
	w.WriteHeader(http.StatusAccepted)
	w.Write(append(b, '\n'))
}

// retryAfter is the seconds a 202 asks the client to wait before retrying.
const retryAfter = 5
