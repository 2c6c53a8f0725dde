package gate

import (
	"github.com/tollgate-dev/tollgate/host/access/glob"
	"github.com/tollgate-dev/tollgate/host/approval"
	"github.com/tollgate-dev/tollgate/host/audit"
)

// What a protocol needs of the audit trail's and the approvals' types,
// named here so that a protocol package imports the layer and event and
// nothing else of the host: the layer is the one place that says what a
// protocol may use.

// Row is one audit row; Session.Row starts one.
type Row = audit.Row

// Ticket identifies a recorded row for Session.WaitDurable.
type Ticket = audit.Ticket

// Row kinds every protocol writes.
const (
	KindSessionOpen  = audit.KindSessionOpen
	KindSessionClose = audit.KindSessionClose
)

// ApprovalRequest is a held request as the approvals see it, for a
// protocol that asks the approval service itself (HTTP resumes a held
// request by its Idempotency-Key); AskApproval builds one for the others.
type ApprovalRequest = approval.Request

// Pending is an approval being waited for.
type Pending = approval.Pending

// MismatchError is a retry whose approval covers another request.
type MismatchError = approval.MismatchError

// ErrTooManyPending refuses a hold past the pending caps.
var ErrTooManyPending = approval.ErrTooManyPending

// RewrittenFields is a held request's fields as they would run, and the
// names of those the chain changed (approval.Rewritten).
func RewrittenFields(fields, changes map[string]string, accept func(field, value string) bool) (map[string]string, []string) {
	return approval.Rewritten(fields, changes, accept)
}

// CoverHTTP is the canonical form of an HTTP request that an approval
// covers (approval.HTTPCovered).
var CoverHTTP = approval.HTTPCovered

// GlobMatch reports whether s matches pattern, where * matches any run of
// characters (the access rules' and the config's globs).
func GlobMatch(pattern, s string) bool { return glob.Match(pattern, s) }
