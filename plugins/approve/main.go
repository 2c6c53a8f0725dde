//go:build wasip1

// Command approve is Tollgate's built-in approval plugin: events that match
// one of its rules are held until a person in one of the rule's approver
// groups approves them.
package main

import (
	"github.com/tollgate-dev/tollgate/plugins/internal/guest"
	"github.com/tollgate-dev/tollgate/plugins/internal/rules"
	"github.com/tollgate-dev/tollgate/plugins/internal/sqlinfo"
	"github.com/tollgate-dev/tollgate/sdk"
)

var cfg struct {
	Rules []rules.Rule `json:"rules"`
	Kinds []string     `json:"kinds"` // default: pg.query, http.request, ssh.exec, ssh.input, kube.exec, git.push (ssh.input is added to ssh.exec)
}

func init() {
	if err := sdk.Config(&cfg); err != nil {
		panic("approve: config: " + err.Error())
	}
	if len(cfg.Kinds) == 0 {
		cfg.Kinds = []string{"pg.query", "http.request", "ssh.exec", "kube.exec", "git.push"}
	}
	// A shell's lines (ssh.input) are commands too.
	for _, k := range rules.Kinds(cfg.Kinds) {
		sdk.Subscribe(k)
	}
	sdk.HandleEvent(func(e sdk.Event) sdk.Verdict {
		sql := func() rules.SQLInfo { return sqlinfo.Of(guest.Statements(e)).Rules }
		sdk.Cacheable()
		r := rules.Match(cfg.Rules, guest.Event{Event: e}, sql)
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

func main() {}
