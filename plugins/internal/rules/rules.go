// Package rules matches events against the rules of the guard and approve
// plugins. It is plain Go, compiled into each plugin's Wasm module; it sees
// an event through the Event interface so that it can be tested natively
// and run unchanged in a guest.
package rules

import (
	"strings"
)

// Event is what a rule can look at. The SDK's Event satisfies it through a
// small adapter in each plugin.
type Event interface {
	Kind() string
	Target() string
	Field(name string) string
	Claim(name string) string
	Groups() []string
}

// Rule is one entry of a plugin's `rules` list. Every condition that is
// set must hold; lists mean "one of".
type Rule struct {
	Name    string   `json:"name"`
	Kinds   []string `json:"kinds"`   // event kinds; default: every kind the plugin gets
	Targets []string `json:"targets"` // target name globs
	Groups  []string `json:"groups"`  // the principal is in one of these
	Unless  []string `json:"unless_groups"`

	Methods []string `json:"methods"` // http: methods
	Paths   []string `json:"paths"`   // http: path prefixes

	SQL          []string `json:"sql"`           // pg.query: statement classes (read, write, ddl, dcl, admin, transaction, session, lock, lift_read_only, unknown)
	WithoutWhere bool     `json:"without_where"` // pg.query: an UPDATE or DELETE with no WHERE, a MERGE with an UPDATE or DELETE action without its own AND condition
	Commands     []string `json:"commands"`      // ssh.exec, ssh.input, kube.exec: command-line globs, matched against the whole line (field "command", or "line" of a shell line) and against each simple command the protocol lists in field "commands"
	Refs         []string `json:"refs"`          // git.push: ref globs, e.g. refs/heads/main
	Force        []string `json:"force"`         // git.push: the push's force field is one of these (true, false, unknown)
	Actions      []string `json:"actions"`       // git.push: the command's action is one of these (create, update, delete)

	Reason    string   `json:"reason"`
	Approvers []string `json:"approvers"` // approve plugin: who may approve
}

// SQLInfo is what a rule needs to know about a query; the guard and
// approve plugins fill it from their SQL classifier.
type SQLInfo struct {
	Classes      []string // lower-case class of each statement
	WithoutWhere bool     // some UPDATE/DELETE lacks a top-level WHERE, or a MERGE an action condition
}

// Match returns the first rule that matches ev, or nil.
func Match(rs []Rule, ev Event, sql func() SQLInfo) *Rule {
	var info *SQLInfo
	for i := range rs {
		r := &rs[i]
		if len(r.SQL) > 0 || r.WithoutWhere {
			if info == nil {
				v := sql()
				info = &v
			}
		}
		if r.matches(ev, info) {
			return r
		}
	}
	return nil
}

// KindExec and KindInput: a line submitted in an SSH shell is a command
// as much as an exec is, so a rule for ssh.exec also applies to
// ssh.input (a shell is no way around a command rule).
const (
	KindExec  = "ssh.exec"
	KindInput = "ssh.input"
)

// Kinds is what a plugin subscribes to for kinds: ssh.input is added
// beside ssh.exec.
func Kinds(kinds []string) []string {
	out := append([]string(nil), kinds...)
	if anyEqual(kinds, KindExec) && !anyEqual(kinds, KindInput) {
		out = append(out, KindInput)
	}
	return out
}

func (r *Rule) matches(ev Event, sql *SQLInfo) bool {
	if len(r.Kinds) > 0 && !anyEqual(r.Kinds, ev.Kind()) && !(ev.Kind() == KindInput && anyEqual(r.Kinds, KindExec)) {
		return false
	}
	if len(r.Targets) > 0 && !anyGlob(r.Targets, ev.Target()) {
		return false
	}
	if len(r.Groups) > 0 && !intersects(r.Groups, ev.Groups()) {
		return false
	}
	if len(r.Unless) > 0 && intersects(r.Unless, ev.Groups()) {
		return false
	}
	if len(r.Methods) > 0 && !anyEqual(r.Methods, strings.ToUpper(ev.Field("method"))) {
		return false
	}
	if len(r.Paths) > 0 && !anyPrefix(r.Paths, ev.Field("path")) {
		return false
	}
	if len(r.Commands) > 0 && !anyGlob(r.Commands, commandLine(ev)) && !anyLine(r.Commands, ev.Field("commands")) {
		return false
	}
	if len(r.Refs) > 0 && !anyGlob(r.Refs, ev.Field("ref")) {
		return false
	}
	if len(r.Force) > 0 && !anyEqual(r.Force, ev.Field("force")) {
		return false
	}
	if len(r.Actions) > 0 && !anyEqual(r.Actions, ev.Field("action")) {
		return false
	}
	if len(r.SQL) > 0 {
		hit := false
		for _, c := range sql.Classes {
			if anyEqual(r.SQL, c) {
				hit = true
				break
			}
		}
		if !hit {
			return false
		}
	}
	if r.WithoutWhere && !sql.WithoutWhere {
		return false
	}
	return true
}

// commandLine is the command line of an event: field "command", or
// "line" for a shell line.
func commandLine(ev Event) string {
	if ev.Kind() == KindInput {
		return ev.Field("line")
	}
	return ev.Field("command")
}

func anyEqual(list []string, s string) bool {
	for _, e := range list {
		if strings.EqualFold(e, s) {
			return true
		}
	}
	return false
}

func anyPrefix(list []string, s string) bool {
	for _, p := range list {
		if strings.HasPrefix(s, p) {
			return true
		}
	}
	return false
}

// anyLine reports whether a glob matches a line of s: the simple
// commands a protocol that parses shell lists in the field "commands"
// (ssh.exec), so that "rm -rf *" also catches "true; /bin/rm -rf /".
func anyLine(list []string, s string) bool {
	if s == "" {
		return false
	}
	for _, line := range strings.Split(s, "\n") {
		if anyGlob(list, line) {
			return true
		}
	}
	return false
}

func anyGlob(list []string, s string) bool {
	for _, p := range list {
		if Glob(p, s) {
			return true
		}
	}
	return false
}

func intersects(a, b []string) bool {
	for _, x := range a {
		if anyEqual(b, x) {
			return true
		}
	}
	return false
}

// Glob matches s against a pattern where `*` matches any run of
// characters (including none) and everything else is literal; matching is
// case-sensitive. It is linear in len(s)*len(p), never exponential.
func Glob(p, s string) bool {
	// Greedy matching with one backtrack point, as in most shells.
	pi, si := 0, 0
	star, mark := -1, 0
	for si < len(s) {
		switch {
		case pi < len(p) && p[pi] == '*':
			star, mark = pi, si
			pi++
		case pi < len(p) && p[pi] == s[si]:
			pi++
			si++
		case star >= 0:
			pi = star + 1
			mark++
			si = mark
		default:
			return false
		}
	}
	for pi < len(p) && p[pi] == '*' {
		pi++
	}
	return pi == len(p)
}
