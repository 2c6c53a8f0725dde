package gate

import (
	"context"
	"errors"

	"github.com/tollgate-dev/tollgate/host/approval"
	"github.com/tollgate-dev/tollgate/host/event"
)

// Ask is how a protocol that keeps a held request waiting asks for its
// approval (AskApproval).
type Ask struct {
	// Cover gives the canonical form of the request the approval covers
	// from its fields as they would run (a session grant or a retry runs
	// only if its form is identical); nil covers all of the fields.
	Cover func(fields map[string]string) map[string]string
	// Accept filters the chain's changes the protocol applies (nil: all),
	// so that the reviewer sees the request as it would run.
	Accept func(field, value string) bool
	// Notify tells the client where the approval is, once it is recorded
	// and before the wait; it must not block for long.
	Notify func(id, url string)
}

// CoverStatement is the Cover of a protocol whose requests are statements
// with parameters (fields "sql", "params", "param.N").
func CoverStatement(fields map[string]string) map[string]string {
	return approval.StatementCovered(fields)
}

// Approval is what a held request's row says of its approval.
type Approval struct {
	ID, Approver string
	// TooManyPending: refused because the principal or the target has
	// too many approvals pending (the protocol's "limit exceeded" code).
	TooManyPending bool
}

// AskApproval asks the approvers about ev, which the chain held with v,
// and waits for their decision until ctx ends: a session grant lets it
// through at once. It returns the verdict for the row (its reason says
// why when it is refused), the approval, and whether the request may
// run, exactly once. Call it from a Holder.
func (s *Session) AskApproval(ctx context.Context, ev *event.Event, v event.Verdict, a Ask) (event.Verdict, Approval, bool) {
	m := s.deps.Approvals
	if m == nil {
		v.Reason = reasonNoApprovals + v.Reason
		return v, Approval{}, false
	}
	fields, changed := approval.Rewritten(ev.Fields, v.Changes, a.Accept)
	var covered map[string]string
	if a.Cover != nil {
		covered = a.Cover(fields)
	}
	s.mu.Lock()
	target := s.target
	s.mu.Unlock()
	if ev.Target != "" {
		target = ev.Target
	}
	req := approval.Request{
		SessionID: s.id, Protocol: s.protocol, Kind: ev.Kind, Target: target,
		Principal: ev.Principal, Fields: fields, Changed: changed, Plugin: v.Plugin, Reason: v.Reason,
		ApproverGroups: v.ApproverGroups, Covered: covered,
		RemoteAddr: s.remote, Listener: s.listener,
	}
	if d, ok := m.Granted(req); ok {
		return v, Approval{ID: d.ID, Approver: d.Approver}, true
	}
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	p, err := m.Hold(ctx, req)
	if errors.Is(err, approval.ErrTooManyPending) {
		v.Reason = "held for approval, and not recorded: " + err.Error()
		return v, Approval{TooManyPending: true}, false
	}
	if err != nil {
		s.log.Error("approval not recorded", "err", err)
		v.Reason = "held for approval, and the approval could not be recorded: " + v.Reason
		return v, Approval{}, false
	}
	ap := Approval{ID: p.ID}
	if a.Notify != nil {
		a.Notify(p.ID, p.URL)
	}
	d, err := p.Wait(ctx)
	switch {
	case err != nil && context.Cause(ctx) != nil && !errors.Is(context.Cause(ctx), context.Canceled):
		v.Reason = context.Cause(ctx).Error()
		return v, ap, false
	case err != nil:
		v.Reason = "approval " + p.ID + ": " + err.Error()
		return v, ap, false
	case !d.Approved():
		ap.Approver = d.Approver
		v.Reason = d.Message()
		return v, ap, false
	}
	ap.Approver = d.Approver
	return v, ap, true
}
