package gate

import (
	"context"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/tollgate-dev/tollgate/host/event"
)

// Refusal says why Decide refused a request, so that the protocol can
// answer in its own terms (an HTTP status, a SQLSTATE, an exit code).
type Refusal int

const (
	// NotRefused: the request may go.
	NotRefused Refusal = iota
	// RefusedAuditFull: the audit trail cannot take its row; nothing
	// unaudited runs.
	RefusedAuditFull
	// RefusedChainFailed: the plugin chain failed in a way on_error did
	// not resolve.
	RefusedChainFailed
	// RefusedByPolicy: a plugin denied it, or held it and no approval
	// could be asked for.
	RefusedByPolicy
	// RefusedByHold: the protocol's Holder waited for a person and the
	// answer was no (or no answer came); the Holder has answered the
	// client where the protocol does that itself.
	RefusedByHold
)

// Reasons shared by every protocol, so that an analyst reads the same
// words whatever the protocol.
const (
	ReasonChainFailed = "policy chain failed"
	reasonNoApprovals = "held for approval, and this gateway has no approval service: "
	reasonNoApprovers = "held for approval, but the plugin named no approver groups: "
)

// A Holder asks a person about a held request and waits, the way its
// protocol can wait (HTTP answers 202 after a while; PostgreSQL keeps the
// statement waiting and tells the client with a notice). It returns the
// verdict for the row (its reason changed when it refuses) and whether
// the request was approved and may run, exactly once.
type Holder func(ctx context.Context, ev *event.Event, v event.Verdict) (event.Verdict, bool)

// A Decision is the gateway's answer to one request. It keeps the chain
// generation that decided the request until Done, so that the same
// plugins see the request's responses even when the chain is reloaded
// meanwhile (SIGHUP).
type Decision struct {
	// Verdict is the chain's answer, for the row.
	Verdict event.Verdict
	// Reason is why the request was refused, for the client and the
	// row's error: the verdict's reason, with what the layer adds (a hold
	// that no one can be asked about says so).
	Reason string
	// Allowed: the request may go, with Verdict.Changes applied.
	Allowed bool
	// Refusal says who refused it, when it is not allowed.
	Refusal Refusal

	sess    *Session
	closed  bool // refused because the session had closed
	chain   event.Chain
	release func()
	once    sync.Once
	done    atomic.Bool
}

// Decide runs ev, a request, through the plugin chain, once. It refuses
// the request when the audit trail cannot take its row, when the chain
// fails or denies, and when it holds and no approval can be asked for;
// a hold with approvals goes to hold. The Decision keeps the chain until
// Done (or the session's Close).
func (s *Session) Decide(ctx context.Context, ev *event.Event, hold Holder) *Decision {
	d := s.decide(ctx, ev, hold)
	if s.deps.Metrics != nil {
		label := verdictLabel(d)
		if d.closed {
			label = VerdictClosed
		}
		s.countRequest(ev.Target, label)
	}
	return d
}

func (s *Session) decide(ctx context.Context, ev *event.Event, hold Holder) *Decision {
	d := &Decision{sess: s}
	if err := s.deps.Admit(); err != nil {
		d.Verdict = event.Verdict{Action: event.Deny, Reason: "the audit trail cannot take more rows now, so nothing runs: " + err.Error()}
		d.Reason, d.Refusal = d.Verdict.Reason, RefusedAuditFull
		return d
	}
	d.chain, d.release = event.Acquire(s.deps.Chain)
	if !s.hold(d) {
		// Closed: nothing of it may run, and nothing would release it.
		d.Done()
		d.chain = nil
		d.Verdict, d.Refusal = event.Verdict{Action: event.Deny, Reason: "the session is closed"}, RefusedByPolicy
		d.Reason, d.closed = d.Verdict.Reason, true
		return d
	}
	if ev.SessionID == "" {
		ev.SessionID = s.id
	}
	if !event.Wants(d.chain, ev.Kind) {
		d.Verdict, d.Allowed = event.Verdict{Action: event.Allow}, true
		return d
	}
	v, err := d.chain.Process(ctx, ev)
	if err != nil {
		s.log.Error("plugin chain failed", "kind", ev.Kind, "err", err)
		d.Verdict, d.Refusal = chainFailed(err), RefusedChainFailed
		d.Reason = ReasonChainFailed
		return d
	}
	d.Verdict, d.Reason = v, v.Reason
	switch v.Action {
	case event.Deny:
		d.Refusal = RefusedByPolicy
		return d
	case event.Hold:
		switch {
		case s.deps.Approvals == nil || hold == nil:
			// A hold that cannot be resumed is a deny that says so.
			d.Reason = reasonNoApprovals + v.Reason
			d.Refusal = RefusedByPolicy
			return d
		case len(v.ApproverGroups) == 0:
			d.Reason = reasonNoApprovers + v.Reason
			d.Refusal = RefusedByPolicy
			return d
		}
		d.Verdict, d.Allowed = hold(ctx, ev, v)
		d.Reason = d.Verdict.Reason
		if !d.Allowed {
			d.Refusal = RefusedByHold
		}
		return d
	}
	d.Allowed = true
	return d
}

// Wants reports whether a plugin of the deciding chain acts on kind
// (after Done, of the current chain).
func (d *Decision) Wants(kind string) bool {
	if d.done.Load() {
		return d.sess.Wants(kind)
	}
	return d.chain != nil && event.Wants(d.chain, kind)
}

// WantsField reports whether a plugin of the deciding chain asked for sub
// (event.WantsBody).
func (d *Decision) WantsField(sub string) bool {
	if d.done.Load() {
		return d.sess.WantsField(sub)
	}
	return d.chain != nil && event.WantsField(d.chain, sub)
}

// Process runs a response event (or a chunk of one) through the chain that
// decided the request. A chain failure comes back as a deny with the
// shared reason, logged; the caller withholds what it could not check.
//
// After Done (a late message of a request already recorded) the current
// chain answers.
func (d *Decision) Process(ctx context.Context, ev *event.Event) event.Verdict {
	if d.done.Load() {
		return d.sess.Process(ctx, ev)
	}
	if d.chain == nil || !event.Wants(d.chain, ev.Kind) {
		return event.Verdict{Action: event.Allow}
	}
	if ev.SessionID == "" {
		ev.SessionID = d.sess.id
	}
	v, err := d.chain.Process(ctx, ev)
	if err != nil {
		d.sess.log.Error("plugin chain failed", "kind", ev.Kind, "err", err)
		return chainFailed(err)
	}
	return v
}

// chainFailed is the verdict of a chain that failed: a deny whose row says
// "error" (event.Verdict.Failed), with the error's first line.
func chainFailed(err error) event.Verdict {
	line, _, _ := strings.Cut(err.Error(), "\n")
	return event.Verdict{Action: event.Deny, Reason: ReasonChainFailed, Failed: line}
}

// Wants reports whether the current chain acts on kind.
func (s *Session) Wants(kind string) bool {
	c, release := event.Acquire(s.deps.Chain)
	defer release()
	return event.Wants(c, kind)
}

// WantsField reports whether a plugin of the current chain asked for sub
// (event.WantsBody): a protocol reads such a field only then.
func (s *Session) WantsField(sub string) bool {
	c, release := event.Acquire(s.deps.Chain)
	defer release()
	return event.WantsField(c, sub)
}

// Process runs an event that belongs to no request (a notification the
// server sends between statements) through the current chain, with the
// errors handled as Decision.Process does.
func (s *Session) Process(ctx context.Context, ev *event.Event) event.Verdict {
	c, release := event.Acquire(s.deps.Chain)
	defer release()
	if !event.Wants(c, ev.Kind) {
		return event.Verdict{Action: event.Allow}
	}
	if ev.SessionID == "" {
		ev.SessionID = s.id
	}
	v, err := c.Process(ctx, ev)
	if err != nil {
		s.log.Error("plugin chain failed", "kind", ev.Kind, "err", err)
		return chainFailed(err)
	}
	return v
}

// Done releases the chain generation. It is safe to call more than once.
func (d *Decision) Done() {
	d.once.Do(func() {
		d.done.Store(true)
		if d.release != nil {
			d.release()
		}
		if d.sess != nil {
			d.sess.unhold(d)
		}
	})
}
