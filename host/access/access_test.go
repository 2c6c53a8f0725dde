package access

import (
	"reflect"
	"testing"

	"github.com/tollgate-dev/tollgate/host/config"
	"github.com/tollgate-dev/tollgate/host/event"
)

func TestDecide(t *testing.T) {
	pol := New([]config.Rule{
		{Name: "ci-main-read", Targets: []string{"orders"}, Issuers: []string{"github"},
			Claims:  map[string]config.Patterns{"repository": {"acme/*"}, "ref": {"refs/heads/main", "refs/tags/**"}},
			Methods: []string{"GET", "HEAD"}, Paths: []string{"/api/"}},
		{Name: "sre-all", Targets: []string{"*"}, Groups: []string{"sre"}},
	})
	ci := &event.Principal{Issuer: "github", Subject: "repo:acme/app:ref:refs/heads/main",
		Claims: map[string]string{"repository": "acme/app", "ref": "refs/heads/main"}}
	sre := &event.Principal{Issuer: "corp", Subject: "alice", Groups: []string{"dev", "sre"}}
	fork := &event.Principal{Issuer: "github", Subject: "x",
		Claims: map[string]string{"repository": "evil/app", "ref": "refs/heads/main"}}
	noRef := &event.Principal{Issuer: "github", Subject: "y", Claims: map[string]string{"repository": "acme/app"}}
	otherIssuer := &event.Principal{Issuer: "corp", Subject: "z", Claims: ci.Claims}

	for _, tc := range []struct {
		name string
		p    *event.Principal
		req  Request
		rule string // "" means denied
	}{
		{"ci reads", ci, Request{"orders", "GET", "/api/orders"}, "ci-main-read"},
		{"ci writes", ci, Request{"orders", "POST", "/api/orders"}, ""},
		{"ci outside prefix", ci, Request{"orders", "GET", "/admin"}, ""},
		{"ci other target", ci, Request{"billing", "GET", "/api/x"}, ""},
		{"tag ref", &event.Principal{Issuer: "github", Claims: map[string]string{"repository": "acme/app", "ref": "refs/tags/v1/rc"}}, Request{"orders", "GET", "/api/"}, "ci-main-read"},
		{"fork repo", fork, Request{"orders", "GET", "/api/orders"}, ""},
		{"missing claim", noRef, Request{"orders", "GET", "/api/orders"}, ""},
		{"wrong issuer", otherIssuer, Request{"orders", "GET", "/api/orders"}, ""},
		{"group wildcard", sre, Request{"billing", "DELETE", "/anything"}, "sre-all"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := New(*pol.rules.Load()).Decide(tc.p, tc.req)
			if d.Allowed != (tc.rule != "") || d.Rule != tc.rule {
				t.Fatalf("Decide = %+v, want rule %q", d, tc.rule)
			}
			if !d.Allowed && d.Reason == "" {
				t.Fatal("a deny must say why")
			}
		})
	}
}

func TestResourcePrefixBoundary(t *testing.T) {
	for _, tc := range []struct {
		prefix, path string
		want         bool
	}{
		{"/api", "/api", true},
		{"/api", "/api/x", true},
		{"/api", "/apix", false},
		{"/api/", "/api", false},
		{"/api/", "/api/x", true},
		{"/", "/anything", true},
	} {
		if got := resourceAllowed([]string{tc.prefix}, tc.path); got != tc.want {
			t.Errorf("resourceAllowed(%q, %q) = %v", tc.prefix, tc.path, got)
		}
	}
}

// Replace swaps the rules at once and says what changed, by name.
func TestReplace(t *testing.T) {
	read := config.Rule{Name: "read", Targets: []string{"orders"}, Methods: []string{"GET"}}
	write := config.Rule{Name: "write", Targets: []string{"orders"}, Methods: []string{"POST"}}
	pol := New([]config.Rule{read, write})
	agent := &event.Principal{Issuer: "ci", Subject: "agent"}
	if !pol.Decide(agent, Request{"orders", "POST", "/x"}).Allowed {
		t.Fatal("write not granted before the reload")
	}
	readAll := read
	readAll.Methods = []string{"GET", "HEAD"}
	audit := config.Rule{Name: "audit", Targets: []string{"billing"}}
	got := pol.Replace([]config.Rule{audit, readAll})
	want := []Change{{"audit", "added"}, {"read", "changed"}, {"write", "removed"}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("changes: %v, want %v", got, want)
	}
	if pol.Decide(agent, Request{"orders", "POST", "/x"}).Allowed {
		t.Error("a removed rule still grants")
	}
	if d := pol.Decide(agent, Request{"orders", "HEAD", "/x"}); !d.Allowed || d.Rule != "read" {
		t.Errorf("a changed rule: %+v", d)
	}
	if got := pol.Replace([]config.Rule{audit, readAll}); len(got) != 0 {
		t.Errorf("the same rules again: %v", got)
	}
}
