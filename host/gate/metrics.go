package gate

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/tollgate-dev/tollgate/host/event"
)

// Metrics counts what every protocol does alike: sessions, requests by
// verdict, refusals before the chain, and upstream errors. The layer
// counts them itself (Session.Open and Close, Decide, Deps.Verify and
// Authorize), so that a protocol adds nothing but UpstreamError calls.
// Labels are bounded by the config (protocol, target) or by this file
// (verdict, reason): never a principal, a statement or a path, which
// would give a series per value.
//
// A nil *Metrics counts nothing. It is a prometheus.Collector: serve
// registers it with the admin listener's registry.
type Metrics struct {
	sessions     *prometheus.CounterVec
	open         *prometheus.GaugeVec
	requests     *prometheus.CounterVec
	authFailures *prometheus.CounterVec
	accessDenied *prometheus.CounterVec
	upstream     *prometheus.CounterVec
	admitRefused prometheus.Counter
}

// Verdict label values of tollgate_requests_total beyond the chain's
// actions (allow, rewrite, deny, hold).
const (
	// VerdictError: the chain failed (a plugin's on_error did not allow).
	VerdictError = "error"
	// VerdictAuditFull: refused because the audit trail was full.
	VerdictAuditFull = "audit_full"
	// VerdictClosed: refused because the session had closed.
	VerdictClosed = "closed"
)

// NewMetrics makes the layer's series, unregistered.
func NewMetrics() *Metrics {
	return &Metrics{
		sessions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tollgate_sessions_total",
			Help: "Sessions opened (their session.open row recorded), by protocol and target.",
		}, []string{"protocol", "target"}),
		open: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "tollgate_sessions_open",
			Help: "Sessions open now, by protocol and target.",
		}, []string{"protocol", "target"}),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tollgate_requests_total",
			Help: "Requests decided by the plugin chain, by protocol, target and verdict (allow, rewrite, deny, hold, error: the chain failed, audit_full: refused because the audit trail was full, closed). A held request counts as hold whatever the approvers decide (tollgate_approval_decision_seconds).",
		}, []string{"protocol", "target", "verdict"}),
		authFailures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tollgate_auth_failures_total",
			Help: "Requests refused before any rule was asked, by reason: no_token, invalid (a token refused), unavailable (the issuer's keys could not be fetched).",
		}, []string{"reason"}),
		accessDenied: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tollgate_access_denied_total",
			Help: "Requests of a verified principal that no [[access]] rule granted, by target.",
		}, []string{"target"}),
		admitRefused: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "tollgate_audit_admit_refused_total",
			Help: "Requests refused because the audit trail could not take their rows (the spool past its ordinary share, on_full = refuse): each is refused once, up front or in Decide (then also counted as verdict audit_full).",
		}),
		upstream: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tollgate_upstream_errors_total",
			Help: "Failures reaching or talking to a target (dial, TLS, login, a connection cut), by protocol and target.",
		}, []string{"protocol", "target"}),
	}
}

func (m *Metrics) collectors() []prometheus.Collector {
	return []prometheus.Collector{m.sessions, m.open, m.requests, m.authFailures, m.accessDenied, m.upstream, m.admitRefused}
}

// Describe implements prometheus.Collector.
func (m *Metrics) Describe(ch chan<- *prometheus.Desc) {
	for _, c := range m.collectors() {
		c.Describe(ch)
	}
}

// Collect implements prometheus.Collector.
func (m *Metrics) Collect(ch chan<- prometheus.Metric) {
	for _, c := range m.collectors() {
		c.Collect(ch)
	}
}

func (m *Metrics) sessionOpened(protocol, target string) {
	if m == nil {
		return
	}
	m.sessions.WithLabelValues(protocol, target).Inc()
	m.open.WithLabelValues(protocol, target).Inc()
}

func (m *Metrics) sessionClosed(protocol, target string) {
	if m == nil {
		return
	}
	m.open.WithLabelValues(protocol, target).Dec()
}

// countRequest counts one decided request of the session, on target (the
// session's when empty). The session keeps the counters it used: a label
// lookup hashes every label value, a map of the few (target, verdict)
// pairs a session meets does not.
func (s *Session) countRequest(target, verdict string) {
	s.mu.Lock()
	if target == "" {
		target = s.target
	}
	k := requestKey{target, verdict}
	c, ok := s.counters[k]
	if !ok {
		c = s.deps.Metrics.requests.WithLabelValues(s.protocol, target, verdict)
		if s.counters == nil {
			s.counters = map[requestKey]prometheus.Counter{}
		}
		s.counters[k] = c
	}
	s.mu.Unlock()
	c.Inc()
}

type requestKey struct{ target, verdict string }

func (m *Metrics) authFailed(err error) {
	if m == nil {
		return
	}
	reason := "unavailable"
	switch kind, _ := AuthFailure(err); kind {
	case AuthNoToken:
		reason = "no_token"
	case AuthInvalid:
		reason = "invalid"
	}
	m.authFailures.WithLabelValues(reason).Inc()
}

func (m *Metrics) admitFailed() {
	if m == nil {
		return
	}
	m.admitRefused.Inc()
}

func (m *Metrics) denied(target string) {
	if m == nil {
		return
	}
	m.accessDenied.WithLabelValues(target).Inc()
}

// verdictLabel is a decision's verdict as tollgate_requests_total names it.
func verdictLabel(d *Decision) string {
	switch d.Refusal {
	case RefusedAuditFull:
		return VerdictAuditFull
	case RefusedChainFailed:
		return VerdictError
	}
	if d.Verdict.Failed != "" {
		return VerdictError
	}
	switch d.Verdict.Action {
	case event.Allow:
		return "allow"
	case event.Rewrite:
		return "rewrite"
	case event.Hold:
		return "hold"
	}
	return "deny"
}

// UpstreamError counts a failure reaching or talking to the session's
// target (tollgate_upstream_errors_total); the protocol logs err itself,
// with what it knows. A nil err counts nothing.
func (s *Session) UpstreamError(err error) {
	if err == nil || s.deps.Metrics == nil {
		return
	}
	s.mu.Lock()
	target := s.target
	s.mu.Unlock()
	s.deps.Metrics.upstream.WithLabelValues(s.protocol, target).Inc()
}
