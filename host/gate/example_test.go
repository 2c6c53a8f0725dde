package gate_test

import (
	"context"
	"fmt"
	"strings"

	"github.com/tollgate-dev/tollgate/host/audit"
	"github.com/tollgate-dev/tollgate/host/event"
	"github.com/tollgate-dev/tollgate/host/gate"
)

// memory keeps rows, as an audit store would.
type memory struct{ rows []audit.Row }

func (m *memory) Record(r audit.Row) error { m.rows = append(m.rows, r); return nil }
func (m *memory) Close() error             { return nil }

// guard denies lines that start with DROP.
type guard struct{}

func (guard) Process(_ context.Context, ev *event.Event) (event.Verdict, error) {
	if strings.HasPrefix(ev.Fields["line"], "DROP") {
		return event.Verdict{Action: event.Deny, Plugin: "guard", Reason: "DROP is not allowed"}, nil
	}
	return event.Verdict{Action: event.Allow}, nil
}

// One session of a protocol: open, two requests decided by the chain
// (each with its row), close. The rows form one hash chain.
func ExampleSession_Decide() {
	rec := &memory{}
	deps := &gate.Deps{GatewayID: "gw", Chain: guard{}, Recorder: rec}
	s := deps.NewSession(gate.SessionInfo{Protocol: "echo", Listener: "lines", Remote: "127.0.0.1:5000"})
	s.SetTarget("notes", "agents")
	s.Open(s.Row(""))

	for _, line := range []string{"SELECT 1", "DROP TABLE t"} {
		ev := &event.Event{Phase: event.Request, Protocol: "echo", Kind: "echo.line", Fields: map[string]string{"line": line}}
		d := s.Decide(context.Background(), ev, nil)
		row := s.Row("echo.line")
		row.Request = ev.Fields
		row.SetVerdict(d.Verdict)
		s.Record(row)
		d.Done()
		fmt.Printf("%s: allowed=%v reason=%q\n", line, d.Allowed, d.Reason)
	}
	s.Close("2 lines", "")

	for _, r := range rec.rows {
		fmt.Println(r.Seq, r.Kind, r.Verdict, r.Target, r.AccessRule)
	}
	fmt.Println(audit.Verify(rec.rows)[0].Status)
	// Output:
	// SELECT 1: allowed=true reason=""
	// DROP TABLE t: allowed=false reason="DROP is not allowed"
	// 1 session.open  notes agents
	// 2 echo.line allow notes agents
	// 3 echo.line deny notes agents
	// 4 session.close  notes agents
	// complete
}
