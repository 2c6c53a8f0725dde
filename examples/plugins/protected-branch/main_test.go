package main_test

import (
	"encoding/json"
	"os"
	"strings"
	"testing"

	"github.com/tollgate-dev/tollgate/sdk/sdktest"
)

func event(t *testing.T, claims map[string]string) string {
	t.Helper()
	b, err := json.Marshal(map[string]any{"kind": "http.request", "protocol": "http", "target": "orders-api",
		"principal": map[string]any{"subject": "repo:acme/app", "claims": claims},
		"fields":    map[string]string{"method": "POST", "path": "/orders"}})
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// A protected branch passes, as GitHub and GitLab name it; anything that
// only looks like one does not: a longer name, a tag or pull request
// named like the branch, a glob that would cross a /, no claim at all.
func TestProtectedBranches(t *testing.T) {
	wasm := sdktest.Build(t, ".")
	cfg, err := os.ReadFile("config.toml")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		claims map[string]string
		want   string
	}{
		{map[string]string{"ref": "refs/heads/main", "ref_type": "branch"}, "allow"},
		{map[string]string{"ref": "refs/heads/main"}, "allow"},
		{map[string]string{"ref": "refs/heads/release/1.2", "ref_type": "branch"}, "allow"},
		{map[string]string{"ref": "main", "ref_type": "branch"}, "allow"}, // GitLab
		{map[string]string{"ref": "refs/heads/feature/x", "ref_type": "branch"}, "deny"},
		{map[string]string{"ref": "refs/heads/main-evil", "ref_type": "branch"}, "deny"},
		{map[string]string{"ref": "refs/heads/release/1.2/evil", "ref_type": "branch"}, "deny"},
		{map[string]string{"ref": "refs/tags/main", "ref_type": "tag"}, "deny"},
		{map[string]string{"ref": "refs/heads/main", "ref_type": "tag"}, "deny"},
		{map[string]string{"ref": "main", "ref_type": "tag"}, "deny"},
		{map[string]string{"ref": "main"}, "deny"}, // a bare name needs ref_type branch
		{map[string]string{"ref": "refs/pull/7/merge"}, "deny"},
		{map[string]string{"ref": "refs/heads/"}, "deny"},
		{map[string]string{"ref": "feature/x", "ref_type": "branch", "ref_protected": "true"}, "deny"}, // not trusted in this config
		{map[string]string{"repository": "acme/app"}, "deny"},
	} {
		r := sdktest.Run(t, wasm, string(cfg), event(t, tc.claims))
		if r.Action != tc.want {
			t.Errorf("%v: %s (%s), want %s", tc.claims, r.Action, r.Reason, tc.want)
		}
	}
	// With trust_ref_protected, GitLab's word is enough.
	trusted := strings.Replace(string(cfg), "trust_ref_protected = false", "trust_ref_protected = true", 1)
	for claims, want := range map[string]string{"true": "allow", "false": "deny", "": "deny"} {
		c := map[string]string{"ref": "feature/x", "ref_type": "branch", "ref_protected": claims}
		if r := sdktest.Run(t, wasm, trusted, event(t, c)); r.Action != want {
			t.Errorf("ref_protected %q: %s (%s), want %s", claims, r.Action, r.Reason, want)
		}
	}
	// The shipped sample is a feature branch: denied.
	ev, err := os.ReadFile("event.json")
	if err != nil {
		t.Fatal(err)
	}
	if r := sdktest.Run(t, wasm, string(cfg), string(ev)); r.Action != "deny" {
		t.Errorf("event.json: %s (%s), want deny", r.Action, r.Reason)
	}
}
