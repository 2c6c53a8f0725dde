package audit

import (
	"slices"
	"strings"
)

// AnnotationSpoolFull marks a row recorded in its minimal form (Minimal)
// because the spool had no room for it whole: the trail states the outage
// instead of showing a gap. Its value says why.
const AnnotationSpoolFull = "audit.spool_full"

// The spool's reserve (see Pipeline): its last sixteenth takes only
// session open and close rows, approval decisions, checkpoints and
// minimal rows, so that a request refused because the trail is full still
// leaves a row, a session that opened in the trail also closes there, and
// the checkpoints that make truncation detectable go on.
//
// Reserved reports whether r may use it.
func Reserved(r *Row) bool {
	switch r.Kind {
	case KindSessionOpen, KindSessionClose, KindApprovalDecision, KindCheckpoint:
		return true
	}
	_, ok := r.Annotations[AnnotationSpoolFull]
	return ok
}

// Minimal bounds: a minimal row keeps the request's fields up to these
// sizes, enough to say what was asked (a method and path, the start of a
// statement), so that the reserve holds many of them.
const (
	minimalValue   = 256
	minimalRequest = 1024
)

// Minimal is the row that stands for r when the spool has no room for r
// whole: the same identity, session, kind, verdict, status and sizes, the
// request's fields cut to a bound, no annotations but AnnotationSpoolFull.
// The caller seals it in r's place (same sequence number and event ID).
func Minimal(r Row) Row {
	m := Row{
		EventID: r.EventID, Time: r.Time, GatewayID: r.GatewayID, SessionID: r.SessionID, Seq: r.Seq,
		Protocol: r.Protocol, Listener: r.Listener, Target: r.Target, Kind: r.Kind, RemoteAddr: r.RemoteAddr,
		Issuer: r.Issuer, Subject: r.Subject, Email: r.Email, Groups: r.Groups, Claims: r.Claims,
		AccessRule: r.AccessRule, Verdict: r.Verdict, Plugin: r.Plugin, Reason: cut(r.Reason, minimalValue),
		Status: r.Status, RequestBytes: r.RequestBytes, ResponseBytes: r.ResponseBytes, DurationMicro: r.DurationMicro,
		Error: cut(r.Error, minimalValue), ApprovalID: r.ApprovalID, Approver: r.Approver,
	}
	why := "minimal row: the audit spool was full"
	if len(r.Request) > 0 {
		keys := make([]string, 0, len(r.Request))
		for k := range r.Request {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		m.Request = make(map[string]string, len(keys))
		size := 0
		for _, k := range keys {
			v := cut(r.Request[k], minimalValue)
			if size+len(k)+len(v) > minimalRequest {
				why += "; request fields cut"
				break
			}
			if len(v) < len(r.Request[k]) && !strings.HasSuffix(why, "cut") {
				why += "; request fields cut"
			}
			m.Request[k] = v
			size += len(k) + len(v)
		}
	}
	m.Annotations = map[string]string{AnnotationSpoolFull: why}
	return m
}

// cut shortens s to at most n bytes, on a UTF-8 boundary.
func cut(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && s[n]&0xC0 == 0x80 {
		n--
	}
	return s[:n]
}
