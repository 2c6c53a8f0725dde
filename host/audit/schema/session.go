package schema

import (
	"time"

	"github.com/tollgate-dev/tollgate/host/audit"
)

// Session is one row of the sessions table, as both stores write it.
type Session struct {
	SessionID  string    `ch:"session_id"`
	GatewayID  string    `ch:"gateway_id"`
	Protocol   string    `ch:"protocol"`
	Listener   string    `ch:"listener"`
	Target     string    `ch:"target"`
	RemoteAddr string    `ch:"remote_addr"`
	Issuer     string    `ch:"issuer"`
	Subject    string    `ch:"subject"`
	Email      string    `ch:"email"`
	Groups     []string  `ch:"groups"`
	ClaimKeys  []string  `ch:"claim_keys"`
	ClaimVals  []string  `ch:"claim_values"`
	OpenedAt   time.Time `ch:"opened_at"`
	OpenedUs   uint32    `ch:"opened_us"`
	Closed     uint8     `ch:"closed"`
	ClosedAt   time.Time `ch:"closed_at"`
	ClosedUs   uint32    `ch:"closed_us"`
	Status     string    `ch:"status"`
	DurationUs int64     `ch:"duration_us"`
	LastSeq    uint64    `ch:"last_seq"`
}

// SessionColumns is the sessions table's column list, in Session order.
const SessionColumns = "session_id, gateway_id, protocol, listener, target, remote_addr, issuer, subject, email, groups, claim_keys, claim_values, opened_at, opened_us, closed, closed_at, closed_us, status, duration_us, last_seq"

// Merge folds an open or close row into s. The open row is authoritative
// for identity and target; a close row only fills what is still empty
// (it arrives first when delivery reorders batches, and an HTTP close
// row names no target).
func (s *Session) Merge(r audit.Row) {
	open := r.Kind == audit.KindSessionOpen
	set := func(dst *string, v string) {
		if v != "" && (open || *dst == "") {
			*dst = v
		}
	}
	s.SessionID = r.SessionID
	set(&s.GatewayID, r.GatewayID)
	set(&s.Protocol, r.Protocol)
	set(&s.Listener, r.Listener)
	set(&s.Target, r.Target)
	set(&s.RemoteAddr, r.RemoteAddr)
	set(&s.Issuer, r.Issuer)
	set(&s.Subject, r.Subject)
	set(&s.Email, r.Email)
	if len(r.Groups) > 0 && (open || len(s.Groups) == 0) {
		s.Groups = r.Groups
	}
	if len(r.Claims) > 0 && (open || len(s.ClaimKeys) == 0) {
		s.ClaimKeys, s.ClaimVals = Pairs(r.Claims)
	}
	if open {
		s.OpenedAt, s.OpenedUs = Split(r.Time)
	} else {
		s.Closed = 1
		s.ClosedAt, s.ClosedUs = Split(r.Time)
		s.Status, s.DurationUs = r.Status, r.DurationMicro
		if s.OpenedAt.Unix() == 0 {
			// Not seen the open row yet: its time, near enough, until it comes.
			s.OpenedAt, s.OpenedUs = Split(r.Time.Add(-time.Duration(r.DurationMicro) * time.Microsecond))
		}
	}
	s.LastSeq = max(s.LastSeq, r.Seq)
}

// TouchedSessions groups the open and close rows in rows by session, in the
// order sessions first appear: what a batch changes in the sessions table.
func TouchedSessions(rows []audit.Row) (ids []string, touched map[string][]audit.Row) {
	touched = map[string][]audit.Row{}
	for _, r := range rows {
		if r.Kind != audit.KindSessionOpen && r.Kind != audit.KindSessionClose {
			continue
		}
		if _, ok := touched[r.SessionID]; !ok {
			ids = append(ids, r.SessionID)
		}
		touched[r.SessionID] = append(touched[r.SessionID], r)
	}
	return ids, touched
}

// FoldSessions merges each touched session's rows into its stored row (a
// new one when none is stored), the open row before the close row whatever
// order the batch holds them in. Rerunning it for the same rows gives the
// same result, so a retried insert is harmless.
func FoldSessions(ids []string, touched map[string][]audit.Row, stored map[string]*Session) []Session {
	out := make([]Session, 0, len(ids))
	for _, id := range ids {
		s := Session{OpenedAt: time.Unix(0, 0), ClosedAt: time.Unix(0, 0)}
		if st := stored[id]; st != nil {
			s = *st
		}
		for _, kind := range []string{audit.KindSessionOpen, audit.KindSessionClose} {
			for _, r := range touched[id] {
				if r.Kind == kind {
					s.Merge(r)
				}
			}
		}
		out = append(out, s)
	}
	return out
}

// Values is s as insert arguments in SessionColumns order; empty arrays
// are never nil, which the native protocol refuses.
func (s *Session) Values() []any {
	groups, ck, cv := s.Groups, s.ClaimKeys, s.ClaimVals
	if groups == nil {
		groups = []string{}
	}
	if ck == nil {
		ck, cv = []string{}, []string{}
	}
	return []any{s.SessionID, s.GatewayID, s.Protocol, s.Listener, s.Target,
		s.RemoteAddr, s.Issuer, s.Subject, s.Email, groups, ck, cv,
		s.OpenedAt, s.OpenedUs, s.Closed, s.ClosedAt, s.ClosedUs, s.Status,
		s.DurationUs, s.LastSeq}
}
