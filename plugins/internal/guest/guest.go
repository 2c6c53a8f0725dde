//go:build wasip1

// Package guest adapts the SDK's Event to the rules engine, for the
// built-in plugins that match rules (guard, approve).
package guest

import (
	"github.com/tollgate-dev/tollgate/plugins/internal/sqlinfo"
	"github.com/tollgate-dev/tollgate/sdk"
)

// Event is an sdk.Event that satisfies rules.Event.
type Event struct{ sdk.Event }

// Groups are the principal's groups.
func (e Event) Groups() []string {
	g, _ := e.Get("principal.groups")
	return sqlinfo.Lines(g)
}

// Statements classifies the event's SQL in the host.
func Statements(e sdk.Event) []sqlinfo.Statement {
	var out []sqlinfo.Statement
	for _, st := range e.Statements("sql") {
		out = append(out, sqlinfo.Statement{Class: st.Class, Command: st.Command, HasWhere: st.HasWhere})
	}
	return out
}
