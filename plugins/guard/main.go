//go:build wasip1

// Command guard is Tollgate's built-in policy plugin: rules over SQL
// statements, HTTP methods and paths, commands and git refs, each of which
// denies the event with a reason. SQL that cannot be classified (DO,
// EXECUTE, CALL, anything unknown) is denied unless the config says
// otherwise.
package main

import (
	"github.com/tollgate-dev/tollgate/plugins/internal/guest"
	"github.com/tollgate-dev/tollgate/plugins/internal/rules"
	"github.com/tollgate-dev/tollgate/plugins/internal/sqlinfo"
	"github.com/tollgate-dev/tollgate/sdk"
)

var cfg struct {
	Rules        []rules.Rule `json:"rules"`
	AllowUnknown bool         `json:"allow_unknown_sql"` // default false: unknown SQL is denied
	Kinds        []string     `json:"kinds"`             // default: pg.query, http.request, ssh.exec, ssh.input, kube.exec, git.push (ssh.input is added to ssh.exec)
	// ReadOnlyTargets are target name globs where only reads, transaction
	// control and session settings that keep read-only pass: no write,
	// lock, DDL, DCL, admin, lifting of read-only, or unknown SQL (even
	// with allow_unknown_sql).
	ReadOnlyTargets []string `json:"read_only_targets"`
}

func init() {
	if err := sdk.Config(&cfg); err != nil {
		panic("guard: config: " + err.Error())
	}
	if len(cfg.Kinds) == 0 {
		cfg.Kinds = []string{"pg.query", "http.request", "ssh.exec", "kube.exec", "git.push"}
	}
	// A shell's lines (ssh.input) are commands too.
	for _, k := range rules.Kinds(cfg.Kinds) {
		sdk.Subscribe(k)
	}
	sdk.HandleEvent(decide)
}

func decide(e sdk.Event) sdk.Verdict {
	ev := guest.Event{Event: e}
	var info *sqlinfo.Info
	sql := func() rules.SQLInfo {
		if info == nil {
			i := sqlinfo.Of(guest.Statements(e))
			info = &i
		}
		return info.Rules
	}
	// The verdict depends only on what this call read (the host records
	// it), so identical statements skip the call next time.
	sdk.Cacheable()
	if r := rules.Match(cfg.Rules, ev, sql); r != nil {
		reason := r.Reason
		if reason == "" {
			reason = "denied by guard rule " + r.Name
		}
		sdk.Annotate("guard.rule", r.Name)
		return sdk.Deny(reason)
	}
	if e.Kind() == "pg.query" {
		sql()
		// The target is read for every statement or for none: the host
		// caches verdicts by what a call read and expects the same
		// reads each time (reading it only for writes made every
		// statement miss the cache).
		if len(cfg.ReadOnlyTargets) > 0 && readOnly(e.Target()) && info.NotReadOnly != "" {
			sdk.Annotate("guard.read_only", info.NotReadOnly)
			return sdk.Deny("target " + e.Target() + " is read-only: " + info.NotReadOnly + " is not allowed")
		}
		if info.Unknown && !cfg.AllowUnknown {
			sdk.Annotate("guard.sql", "unknown")
			return sdk.Deny("statement cannot be classified (" + info.FirstUnknown + "); guard denies what it cannot read")
		}
		sdk.Annotate("guard.sql", info.Summary)
	}
	return sdk.Allow()
}

func readOnly(target string) bool {
	for _, g := range cfg.ReadOnlyTargets {
		if rules.Glob(g, target) {
			return true
		}
	}
	return false
}

func main() {}
