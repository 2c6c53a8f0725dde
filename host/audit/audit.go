// Package audit defines the audit row and the Recorder that carries rows
// away from the request path. Every step of every session is one row.
package audit

import (
	"time"

	"github.com/tollgate-dev/tollgate/host/event"
)

// Row kinds that are not an event kind.
const (
	KindSessionOpen  = "session.open"
	KindSessionClose = "session.close"

	// An approval is a chain of its own whose session_id is the approval
	// ID (host/approval): the hold, each vote short of the quorum, and the
	// decision, which ends the chain as a close row ends a session.
	KindApprovalRequest  = "approval.request"
	KindApprovalVote     = "approval.vote"
	KindApprovalDecision = "approval.decision"

	// KindRecording is a chunk of a session's terminal recording
	// (host/audit/cast): request field "events" holds asciicast v2 lines
	// (chunk 0 starts with the header line), "chunk" its number from 0.
	// It is a row of the session like any other, so the spool keeps it
	// through an outage and the session's hash chain covers it; the stores
	// copy it into their recordings table.
	KindRecording = "session.recording"
)

// Closes reports whether a row of kind ends its chain: a session's close
// row, or an approval's decision.
func Closes(kind string) bool { return kind == KindSessionClose || kind == KindApprovalDecision }

// Row is one step of a session. Field names are the column names of the
// audit schema; keep them stable.
type Row struct {
	// EventID is the row's stable identity (a UUID): a replayed batch
	// carries the same IDs, so stores can present each event once.
	EventID    string    `json:"event_id"`
	Time       time.Time `json:"time"`
	GatewayID  string    `json:"gateway_id"`
	SessionID  string    `json:"session_id"`
	Seq        uint64    `json:"seq"` // 1-based position in the session
	Protocol   string    `json:"protocol"`
	Listener   string    `json:"listener,omitempty"`
	Target     string    `json:"target,omitempty"`
	Kind       string    `json:"kind"`
	RemoteAddr string    `json:"remote_addr,omitempty"`

	Issuer  string            `json:"issuer,omitempty"`
	Subject string            `json:"subject,omitempty"`
	Email   string            `json:"email,omitempty"`
	Groups  []string          `json:"groups,omitempty"`
	Claims  map[string]string `json:"claims,omitempty"` // the issuer's kept claims only

	AccessRule string `json:"access_rule,omitempty"`
	// Request is the request as the plugins left it (masked), by field
	// name. It never holds a credential: protocols strip those first.
	Request map[string]string `json:"request,omitempty"`

	Verdict       string            `json:"verdict,omitempty"` // allow, rewrite, deny, hold, or "error"
	Plugin        string            `json:"plugin,omitempty"`
	Reason        string            `json:"reason,omitempty"`
	Annotations   map[string]string `json:"annotations,omitempty"`
	Status        string            `json:"status,omitempty"` // e.g. "200", "SELECT 5"
	RequestBytes  int64             `json:"request_bytes,omitempty"`
	ResponseBytes int64             `json:"response_bytes,omitempty"`
	DurationMicro int64             `json:"duration_us,omitempty"`
	Error         string            `json:"error,omitempty"`

	ApprovalID string `json:"approval_id,omitempty"`
	Approver   string `json:"approver,omitempty"`

	// PrevHash and RowHash chain the rows of a session (hex SHA-256): an
	// edited, deleted or reordered row breaks the chain.
	PrevHash string `json:"prev_hash,omitempty"`
	RowHash  string `json:"row_hash,omitempty"`
	// Signature is set on session-close rows and checkpoints when a
	// signing key is configured: hex Ed25519 over the row hash, that is,
	// over the whole chain of the session (or of the run's checkpoints).
	// It is not part of the row hash.
	Signature string `json:"signature,omitempty"`
}

// SetPrincipal copies the identity columns from p.
func (r *Row) SetPrincipal(p *event.Principal) {
	if p == nil {
		return
	}
	r.Issuer, r.Subject, r.Email, r.Groups = p.Issuer, p.Subject, p.Email, p.Groups
	if len(p.Kept) > 0 {
		r.Claims = p.Kept
	}
}

// SetVerdict copies the chain's decision. extra are annotations made
// after it (a response's), recorded with the chain's in one map.
func (r *Row) SetVerdict(v event.Verdict, extra ...event.Annotation) {
	r.Verdict, r.Plugin, r.Reason = v.Action.String(), v.Plugin, v.Reason
	if v.Failed != "" {
		// A crash is not a policy decision: an analyst tells them apart.
		r.Verdict = VerdictError
	}
	if n := len(v.Annotations) + len(extra); n > 0 {
		r.Annotations = make(map[string]string, n)
		for _, a := range v.Annotations {
			r.Annotations[a.Key] = a.Value
		}
		for _, a := range extra {
			r.Annotations[a.Key] = a.Value
		}
	}
}

// VerdictError is the verdict of a row whose request a plugin failure
// refused (event.Verdict.Failed): the reason holds what went wrong.
const VerdictError = "error"

// CloseRow is the session.close row of the session that open opened. It
// repeats the open row's identity, target, listener, address and access
// rule, so that
// the row alone describes the session: the stores derive the sessions
// table from open and close rows without reading anything back (a
// materialized view in ClickHouse). Every protocol closes its sessions
// with it. DurationMicro is exact to the microsecond, so the session's
// opening time is Time minus DurationMicro.
func CloseRow(open Row, at time.Time, status string) Row {
	at = at.Truncate(time.Microsecond)
	return Row{
		Time:          at,
		GatewayID:     open.GatewayID,
		SessionID:     open.SessionID,
		Protocol:      open.Protocol,
		Listener:      open.Listener,
		Target:        open.Target,
		Kind:          KindSessionClose,
		RemoteAddr:    open.RemoteAddr,
		AccessRule:    open.AccessRule,
		Issuer:        open.Issuer,
		Subject:       open.Subject,
		Email:         open.Email,
		Groups:        open.Groups,
		Claims:        open.Claims,
		Status:        status,
		DurationMicro: at.Sub(open.Time.Truncate(time.Microsecond)).Microseconds(),
	}
}

// Admitter is implemented by recorders that can run out of room. A
// protocol asks before it starts work: a request whose audit row could not
// be kept is refused up front, in the client's protocol.
type Admitter interface {
	Admit() error
}

// Recorder takes rows off the request path.
//
// Record must not block on the store; it returns an error only when the
// row cannot be accepted (the recorder is closed or full), and the caller
// then refuses the request: an unaudited action is worse than a failed one.
// Close flushes what was accepted and releases the store.
type Recorder interface {
	Record(Row) error
	Close() error
}
