package gate_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/expfmt"

	"github.com/tollgate-dev/tollgate/host/audit"
	"github.com/tollgate-dev/tollgate/host/event"
	"github.com/tollgate-dev/tollgate/host/gate"
)

// verdicts answers by the line's first word, as a plugin chain would.
type verdicts struct{}

func (verdicts) Process(_ context.Context, ev *event.Event) (event.Verdict, error) {
	switch strings.Fields(ev.Fields["line"])[0] {
	case "DROP":
		return event.Verdict{Action: event.Deny, Plugin: "guard", Reason: "no"}, nil
	case "MASK":
		return event.Verdict{Action: event.Rewrite, Plugin: "mask", Changes: map[string]string{"line": "MASK ***"}}, nil
	case "HOLD":
		return event.Verdict{Action: event.Hold, Plugin: "approve", Reason: "a person decides", ApproverGroups: []string{"dba"}}, nil
	case "CRASH":
		// What a plugin's on_error deny answers after a crash.
		return event.Verdict{Action: event.Deny, Plugin: "faulty", Reason: "plugin faulty failed", Failed: "panic: bug"}, nil
	case "BROKEN":
		return event.Verdict{}, errors.New("chain: broken")
	}
	return event.Verdict{Action: event.Allow}, nil
}

// Decide counts each request under its verdict, a session while it is
// open, and a request on a closed session as closed; the target is the
// event's when it names one.
func TestMetricsCountVerdicts(t *testing.T) {
	m := gate.NewMetrics()
	deps := &gate.Deps{GatewayID: "gw", Chain: verdicts{}, Recorder: &memory{}, Metrics: m}
	s := deps.NewSession(gate.SessionInfo{Protocol: "echo", Listener: "lines"})
	s.SetTarget("notes", "agents")
	if err := s.Open(s.Row("")); err != nil {
		t.Fatal(err)
	}
	decide := func(line, target string) {
		ev := &event.Event{Phase: event.Request, Protocol: "echo", Kind: "echo.line", Target: target, Fields: map[string]string{"line": line}}
		s.Decide(context.Background(), ev, nil).Done()
	}
	for _, line := range []string{"SELECT 1", "SELECT 2", "DROP t", "MASK x", "HOLD y", "CRASH z", "BROKEN w"} {
		decide(line, "")
	}
	decide("SELECT 3", "other")
	s.UpstreamError(errors.New("connection reset"))
	s.UpstreamError(nil)
	mid := scrape(t, m)
	s.Close("done", "")
	decide("SELECT 4", "")
	end := scrape(t, m)

	want := func(got string, lines ...string) {
		t.Helper()
		for _, l := range lines {
			if !strings.Contains(got, l+"\n") {
				t.Errorf("no %q in\n%s", l, got)
			}
		}
	}
	want(mid, `tollgate_sessions_open{protocol="echo",target="notes"} 1`)
	want(end,
		`tollgate_sessions_total{protocol="echo",target="notes"} 1`,
		`tollgate_sessions_open{protocol="echo",target="notes"} 0`,
		`tollgate_requests_total{protocol="echo",target="notes",verdict="allow"} 2`,
		`tollgate_requests_total{protocol="echo",target="other",verdict="allow"} 1`,
		`tollgate_requests_total{protocol="echo",target="notes",verdict="deny"} 1`,
		// Refused for want of approvals, and counted as the chain's hold, as its row says.
		`tollgate_requests_total{protocol="echo",target="notes",verdict="hold"} 1`,
		`tollgate_requests_total{protocol="echo",target="notes",verdict="rewrite"} 1`,
		`tollgate_requests_total{protocol="echo",target="notes",verdict="error"} 2`,
		`tollgate_requests_total{protocol="echo",target="notes",verdict="closed"} 1`,
		`tollgate_upstream_errors_total{protocol="echo",target="notes"} 1`,
	)

	// Refusals before the chain: no token, and no rule.
	if _, err := deps.Verify(context.Background(), ""); !errors.Is(err, gate.ErrNoToken) {
		t.Fatal(err)
	}
	if d := deps.Authorize(&event.Principal{Subject: "x"}, gate.AccessRequest{Target: "notes"}); d.Allowed {
		t.Fatal("allowed without rules")
	}
	want(scrape(t, m), `tollgate_auth_failures_total{reason="no_token"} 1`, `tollgate_access_denied_total{target="notes"} 1`)

	// A full trail refuses the request before the chain: audit_full.
	fd := &gate.Deps{Chain: verdicts{}, Recorder: full{&memory{}}, Metrics: gate.NewMetrics()}
	fs := fd.NewSession(gate.SessionInfo{Protocol: "echo"})
	fs.SetTarget("notes", "")
	if d := fs.Decide(context.Background(), &event.Event{Kind: "echo.line", Fields: map[string]string{"line": "SELECT 1"}}, nil); d.Refusal != gate.RefusedAuditFull {
		t.Fatalf("refusal %v", d.Refusal)
	}
	want(scrape(t, fd.Metrics), `tollgate_requests_total{protocol="echo",target="notes",verdict="audit_full"} 1`, "tollgate_audit_admit_refused_total 1")

	// Without metrics nothing is counted, and nothing fails.
	plain := &gate.Deps{Chain: verdicts{}, Recorder: &memory{}}
	ps := plain.NewSession(gate.SessionInfo{Protocol: "echo"})
	ps.Open(ps.Row(""))
	ps.Decide(context.Background(), &event.Event{Kind: "echo.line", Fields: map[string]string{"line": "DROP t"}}, nil).Done()
	ps.UpstreamError(errors.New("x"))
	ps.Close("done", "")
}

// full is a recorder whose spool is full (audit.Admitter).
type full struct{ *memory }

func (full) Admit() error { return audit.ErrFull }

func scrape(t *testing.T, c prometheus.Collector) string {
	t.Helper()
	reg := prometheus.NewRegistry()
	if err := reg.Register(c); err != nil {
		t.Fatal(err)
	}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	for _, mf := range mfs {
		expfmt.MetricFamilyToText(&b, mf)
	}
	return b.String()
}
