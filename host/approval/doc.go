// Package approval holds a request for a human's decision and resumes it.
//
// It is protocol-neutral: a protocol package whose plugin chain answered
// [event.Hold] asks the Manager to hold the request, tells its client where
// to look (the approval's URL), waits on the decision, and then runs the
// request exactly once or fails it with the reason, in its own protocol.
//
// # Typical use (what protocols/postgres, ssh and kube call)
//
//	req := approval.Request{
//		SessionID: sess.ID, Protocol: "postgres", Kind: ev.Kind, Target: ev.Target,
//		Principal: ev.Principal, Fields: ev.Fields,
//		Plugin: v.Plugin, Reason: v.Reason, ApproverGroups: v.ApproverGroups,
//		Covered: approval.StatementCovered(ev.Fields), // what the approval covers
//	}
//	if d, ok := m.Granted(req); ok {
//		// a just-in-time grant of this session covers it: run it, and put
//		// d.ID and d.Approver on the request's audit row
//	}
//	p, err := m.Hold(ctx, req)     // err: refuse the request (42501)
//	notice("waiting for approval " + p.ID + " at " + p.URL)
//	d, err := p.Wait(ctx)          // ctx done: the approval is cancelled
//	if err != nil || !d.Approved() {
//		// fail with d.Reason (SQLSTATE 42501, exit status, 403)
//	}
//	// run the request once; put d.ID and d.Approver on its audit row
//
// A protocol that cannot keep its client waiting (HTTP answers 202 after
// the [approvals] http_wait) selects on [Pending.Done] instead of
// calling Wait, leaves the approval pending, and on the client's retry finds
// it again with [Manager.Resume]; [Pending.Take] hands an approval's
// decision to exactly one request. Resume and Granted match only a request
// whose canonical form (see [CanonicalHash]) is identical; Resume answers a
// [*MismatchError] when the Idempotency-Key names an approval of another
// request, and Hold wraps [ErrTooManyPending] past the pending caps.
//
// # Rules
//
//   - States: pending, then exactly one of approved, denied, expired
//     (no decision within the timeout) or cancelled (the client went away,
//     or the gateway stopped or restarted while it was pending).
//   - The requesting principal (same issuer and subject) never approves or
//     denies its own request ([ErrSelfApproval]); a decider must be in one
//     of the request's approver groups ([ErrNotApprover]).
//   - Quorum: approved after RequiredApprovals different people approved;
//     one deny denies.
//   - Scope: "once" lets this one request run; "session" also grants the
//     same kind of request (same kind, target and request hash) in the same
//     session for the given minutes ([Manager.Granted]).
//
// # Audit
//
// Each approval is its own audit chain whose session_id is the approval ID:
// "approval.request" when held, "approval.vote" for each approval short of
// the quorum, and "approval.decision" (approver, reason, the wait in
// duration_us, the state in status) when it ends; every row carries
// approval_id. The protocol writes the held request's own row with the
// same approval_id and approver.
//
// # Persistence and replicas
//
// Records are kept in a [Store]. [OpenFileStore] is a JSON-lines file in
// the data directory, fsynced per change, so pending approvals and
// decisions survive a restart: on start, an approval that was pending when
// the old process died becomes "cancelled (gateway restarted)" and stays
// listed. A [Shared] store (chstore, on the ClickHouse audit server) is read
// by every replica: Get and List include other replicas' approvals, and a
// decision on an approval another replica holds is submitted as a [Ruling]
// that the holder polls for (Options.PollInterval) and applies under its own
// rules, so one replica owns each approval's state.
package approval
