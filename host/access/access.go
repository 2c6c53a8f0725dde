// Package access decides whether a principal may reach a target, from the
// [[access]] rules of gateway.toml. Anything no rule grants is denied.
package access

import (
	"reflect"
	"strings"
	"sync/atomic"

	"github.com/tollgate-dev/tollgate/host/access/glob"
	"github.com/tollgate-dev/tollgate/host/config"
	"github.com/tollgate-dev/tollgate/host/event"
)

// Request is what a principal asks to do. For HTTP, Verb is the method and
// Resource the path as it will be forwarded.
type Request struct {
	Target   string
	Verb     string
	Resource string
}

// Decision is the outcome of [Policy.Decide].
type Decision struct {
	Allowed bool
	Rule    string // the rule that allowed it; empty on deny
	Reason  string // why it was denied, safe to show the client
}

// Policy is a set of rules, safe for concurrent use. Replace swaps the
// whole set at once (a reload): a decision sees the old rules or the new
// ones, never a mix.
type Policy struct{ rules atomic.Pointer[[]config.Rule] }

// New compiles the rules, which config has already validated.
func New(rules []config.Rule) *Policy {
	pol := &Policy{}
	pol.rules.Store(&rules)
	return pol
}

// Change is one rule a Replace added, removed or changed, by name.
type Change struct {
	Rule string
	What string // "added", "removed" or "changed"
}

// Replace makes rules the policy's and reports what changed, by rule
// name, in the new file's order (removed rules last).
func (pol *Policy) Replace(rules []config.Rule) []Change {
	old := *pol.rules.Swap(&rules)
	byName := make(map[string]config.Rule, len(old))
	for _, r := range old {
		byName[r.Name] = r
	}
	var out []Change
	for _, r := range rules {
		o, ok := byName[r.Name]
		switch {
		case !ok:
			out = append(out, Change{r.Name, "added"})
		case !reflect.DeepEqual(o, r):
			out = append(out, Change{r.Name, "changed"})
		}
		delete(byName, r.Name)
	}
	for _, r := range old {
		if _, gone := byName[r.Name]; gone {
			out = append(out, Change{r.Name, "removed"})
		}
	}
	return out
}

// Decide returns the first rule, in file order, that grants req to p.
func (pol *Policy) Decide(p *event.Principal, req Request) Decision {
	targetGranted := false
	for _, r := range *pol.rules.Load() {
		if !matchPrincipal(r, p) || !listed(r.Targets, req.Target) {
			continue
		}
		targetGranted = true
		if verbAllowed(r.Methods, req.Verb) && resourceAllowed(r.Paths, req.Resource) {
			return Decision{Allowed: true, Rule: r.Name}
		}
	}
	if targetGranted {
		return Decision{Reason: "no access rule allows " + req.Verb + " " + req.Resource + " on target " + req.Target}
	}
	return Decision{Reason: "no access rule grants target " + req.Target + " to " + p.Subject}
}

func matchPrincipal(r config.Rule, p *event.Principal) bool {
	if len(r.Issuers) > 0 && !contains(r.Issuers, p.Issuer) {
		return false
	}
	if len(r.Groups) > 0 {
		in := false
		for _, g := range r.Groups {
			if p.InGroup(g) {
				in = true
				break
			}
		}
		if !in {
			return false
		}
	}
	// Every claim condition must hold; a claim the token lacks never matches.
	for name, pats := range r.Claims {
		v, ok := p.Claims[name]
		if !ok {
			return false
		}
		matched := false
		for _, pat := range pats {
			if glob.Match(pat, v) {
				matched = true
				break
			}
		}
		if !matched {
			return false
		}
	}
	return true
}

func listed(targets []string, t string) bool {
	return contains(targets, "*") || contains(targets, t)
}

func verbAllowed(verbs []string, v string) bool {
	return len(verbs) == 0 || contains(verbs, v)
}

// resourceAllowed matches path prefixes on segment boundaries: "/api"
// allows "/api" and "/api/x" but not "/apix"; "/api/" allows only below it.
func resourceAllowed(prefixes []string, res string) bool {
	if len(prefixes) == 0 {
		return true
	}
	for _, pre := range prefixes {
		if strings.HasSuffix(pre, "/") {
			if strings.HasPrefix(res, pre) {
				return true
			}
			continue
		}
		if res == pre || strings.HasPrefix(res, pre+"/") {
			return true
		}
	}
	return false
}

func contains(list []string, s string) bool {
	for _, e := range list {
		if e == s {
			return true
		}
	}
	return false
}
