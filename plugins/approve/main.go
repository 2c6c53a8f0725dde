//go:build wasip1

// Command approve is Tollgate's built-in approval plugin: events that match
// one of its rules are held until a person in one of the rule's approver
// groups approves them.
package main

import (
	"github.com/tollgate-dev/tollgate/plugins/internal/rules"
	"github.com/tollgate-dev/tollgate/plugins/internal/sqlinfo"
	"github.com/tollgate-dev/tollgate/sdk"
)

var cfg struct {
	Rules []rules.Rule `json:"rules"`
	Kinds []string     `json:"kinds"` // default: pg.query, http.request, ssh.exec, kube.exec, git.push
}

func init() {
	if err := sdk.Config(&cfg); err != nil {
		panic("approve: config: " + err.Error())
	}
	if len(cfg.Kinds) == 0 {
		cfg.Kinds = []string{"pg.query", "http.request", "ssh.exec", "kube.exec", "git.push"}
	}
	for _, k := range cfg.Kinds {
		sdk.Subscribe(k)
	}
	sdk.HandleEvent(func(e sdk.Event) sdk.Verdict {
		sql := func() rules.SQLInfo { return sqlinfo.Of(statements(e)).Rules }
		sdk.Cacheable()
		r := rules.Match(cfg.Rules, event{e}, sql)
		if r == nil {
			return sdk.Allow()
		}
		reason := r.Reason
		if reason == "" {
			reason = "approval required by rule " + r.Name
		}
		sdk.Annotate("approve.rule", r.Name)
		return sdk.Hold(reason, r.Approvers...)
	})
}

type event struct{ sdk.Event }

func (e event) Groups() []string {
	g, _ := e.Get("principal.groups")
	return sqlinfo.Lines(g)
}

func main() {}

// statements classifies the event's SQL in the host.
func statements(e sdk.Event) []sqlinfo.Statement {
	var out []sqlinfo.Statement
	for _, st := range e.Statements("sql") {
		out = append(out, sqlinfo.Statement{Class: st.Class, Command: st.Command, HasWhere: st.HasWhere})
	}
	return out
}
