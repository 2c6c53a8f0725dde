package ci_test

import (
	"context"
	"errors"
	"maps"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tollgate-dev/tollgate/host/access"
	"github.com/tollgate-dev/tollgate/host/config"
	"github.com/tollgate-dev/tollgate/host/identity"

	// The configs name postgres and http listeners: their protocols
	// register their config keys.
	_ "github.com/tollgate-dev/tollgate/protocols/http"
	_ "github.com/tollgate-dev/tollgate/protocols/postgres"
)

// githubClaims are the claims of a GitHub Actions job token (push to main
// of acme/app, workflow "agent"), by GitHub's names; every value is a
// string, as GitHub sends them.
var githubClaims = map[string]any{
	"repository": "acme/app", "repository_owner": "acme", "repository_id": "74", "repository_visibility": "private",
	"ref": "refs/heads/main", "ref_type": "branch", "sha": "e3b0c44298fc1c149afbf4c8996fb92427ae41e4",
	"workflow": "agent", "workflow_ref": "acme/app/.github/workflows/agent.yml@refs/heads/main",
	"job_workflow_ref": "acme/app/.github/workflows/agent.yml@refs/heads/main",
	"actor":            "alice", "actor_id": "12", "event_name": "push", "environment": "",
	"run_id": "8431962213", "run_number": "118", "run_attempt": "1", "runner_environment": "github-hosted",
}

// gitlabClaims are a GitLab CI job token's (pipeline on the protected
// main branch of acme/app).
var gitlabClaims = map[string]any{
	"namespace_id": "4", "namespace_path": "acme", "project_id": "22", "project_path": "acme/app",
	"user_id": "31", "user_login": "carol", "user_email": "carol@acme.example",
	"pipeline_id": "1172", "pipeline_source": "push", "job_id": "80312",
	"ref": "main", "ref_type": "branch", "ref_protected": "true",
	"runner_id": "3", "runner_environment": "gitlab-hosted", "sha": "e3b0c44298fc1c149afbf4c8996fb92427ae41e4",
}

// Each shipped gateway.toml, loaded by the real loader, trusts its
// provider's tokens (signed here by the repository's test issuer, whose
// URL stands in for the provider's) through the real verifier, and its
// access rules let the right repository and branch in and keep another
// repository, another branch, a pull request and an unprotected ref out.
func TestShippedCIRules(t *testing.T) {
	for _, tc := range []struct {
		dir, subject string
		claims       map[string]any
		cases        []ruleCase
	}{
		{"github", "repo:acme/app:ref:refs/heads/main", githubClaims, []ruleCase{
			{"main of acme/app", nil, "orders-db", "CONNECT", "/orders", "acme-app-agent-on-main"},
			{"main of acme/app, the API", nil, "deploy-api", "POST", "/deploy", "acme-app-agent-on-main"},
			{"another repository", map[string]any{"repository": "evil/app", "repository_owner": "evil"}, "orders-db", "CONNECT", "/orders", ""},
			{"a look-alike repository", map[string]any{"repository": "acme/app-fork"}, "orders-db", "CONNECT", "/orders", ""},
			{"another branch", map[string]any{"ref": "refs/heads/feature"}, "orders-db", "CONNECT", "/orders", ""},
			{"a pull request", map[string]any{"ref": "refs/pull/7/merge", "event_name": "pull_request"}, "deploy-api", "GET", "/status", ""},
			{"another workflow", map[string]any{"workflow": "release"}, "orders-db", "CONNECT", "/orders", ""},
			{"a maintainer by hand on a branch, reading", map[string]any{"ref": "refs/heads/feature", "event_name": "workflow_dispatch"}, "deploy-api", "GET", "/status", "acme-app-maintainers-read"},
			{"a maintainer by hand on a branch, writing", map[string]any{"ref": "refs/heads/feature", "event_name": "workflow_dispatch"}, "deploy-api", "POST", "/deploy", ""},
			{"someone else by hand on a branch", map[string]any{"ref": "refs/heads/feature", "event_name": "workflow_dispatch", "actor": "mallory"}, "deploy-api", "GET", "/status", ""},
		}},
		{"gitlab", "project_path:acme/app:ref_type:branch:ref:main", gitlabClaims, []ruleCase{
			{"protected main of acme/app", nil, "orders-db", "CONNECT", "/orders", "acme-app-protected-main"},
			{"protected main of acme/app, the API", nil, "deploy-api", "POST", "/deploy", "acme-app-protected-main"},
			{"another project", map[string]any{"project_path": "evil/app", "namespace_path": "evil"}, "orders-db", "CONNECT", "/orders", ""},
			{"another branch", map[string]any{"ref": "feature"}, "orders-db", "CONNECT", "/orders", ""},
			{"main, unprotected", map[string]any{"ref_protected": "false"}, "orders-db", "CONNECT", "/orders", ""},
			{"a tag named main", map[string]any{"ref_type": "tag"}, "orders-db", "CONNECT", "/orders", ""},
			{"a maintainer's pipeline on a branch, reading", map[string]any{"ref": "feature", "ref_protected": "false", "user_login": "alice"}, "deploy-api", "GET", "/status", "acme-app-maintainers-read"},
			{"a maintainer's pipeline on a branch, the database", map[string]any{"ref": "feature", "ref_protected": "false", "user_login": "alice"}, "orders-db", "CONNECT", "/orders", ""},
		}},
	} {
		t.Run(tc.dir, func(t *testing.T) {
			cfg, err := config.Load(filepath.Join(tc.dir, "gateway.toml"))
			if err != nil {
				t.Fatalf("load: %v", err)
			}
			if len(cfg.Identity.Issuers) != 1 {
				t.Fatalf("%d issuers, want 1", len(cfg.Identity.Issuers))
			}
			shipped := cfg.Identity.Issuers[0]
			want := map[string]string{"github": "https://token.actions.githubusercontent.com", "gitlab": "https://gitlab.com"}[tc.dir]
			if shipped.URL != want || len(shipped.Audience) != 1 {
				t.Fatalf("issuer %q audience %v, want %s and one audience", shipped.URL, shipped.Audience, want)
			}
			checkPipeline(t, tc.dir, shipped.Audience[0])
			iss := startIssuer(t, shipped.Audience[0])
			issuers := []config.Issuer{shipped}
			// The test issuer stands in for the provider: its URL, and its
			// ES256 key where the providers sign with RS256.
			issuers[0].URL, issuers[0].Algorithms = iss.URL, iss.IssuerConfig().Algorithms
			v := identity.NewVerifier(issuers, 100, identity.Options{})
			pol := access.New(cfg.Access)

			for _, c := range tc.cases {
				claims := maps.Clone(tc.claims)
				maps.Copy(claims, c.change)
				tok, err := iss.Mint(identity.MintOptions{Subject: tc.subject, Claims: claims})
				if err != nil {
					t.Fatal(err)
				}
				p, err := v.Verify(context.Background(), tok)
				if err != nil {
					t.Fatalf("%s: verify: %v", c.name, err)
				}
				if p.Issuer != shipped.Name {
					t.Errorf("%s: principal of issuer %q, want %q", c.name, p.Issuer, shipped.Name)
				}
				d := pol.Decide(p, access.Request{Target: c.target, Verb: c.verb, Resource: c.resource})
				if d.Allowed != (c.rule != "") || d.Rule != c.rule {
					t.Errorf("%s: %s %s on %s: allowed %v by %q (%s), want rule %q", c.name, c.verb, c.resource, c.target, d.Allowed, d.Rule, d.Reason, c.rule)
				}
			}
			// The audit row keeps the claims ci_run.sql and principal.sql read.
			tok, _ := iss.Mint(identity.MintOptions{Subject: tc.subject, Claims: tc.claims})
			p, err := v.Verify(context.Background(), tok)
			if err != nil {
				t.Fatal(err)
			}
			runKey := map[string]string{"github": "run_id", "gitlab": "pipeline_id"}[tc.dir]
			if p.Kept[runKey] != tc.claims[runKey] {
				t.Errorf("kept claims %v lack %s", p.Kept, runKey)
			}
			// A token for another audience (another service's) is refused.
			other, _ := iss.Mint(identity.MintOptions{Subject: tc.subject, Claims: tc.claims, Audience: "https://other.example"})
			var te *identity.TokenError
			if _, err := v.Verify(context.Background(), other); !errors.As(err, &te) {
				t.Errorf("a token for another audience: %v, want a TokenError", err)
			}
		})
	}
}

// checkPipeline: the shipped job asks for a token with the audience the
// gateway accepts, the way its provider hands tokens out.
func checkPipeline(t *testing.T, dir, audience string) {
	t.Helper()
	file := map[string]string{"github": "workflow.yml", "gitlab": "gitlab-ci.yml"}[dir]
	b, err := os.ReadFile(filepath.Join(dir, file))
	if err != nil {
		t.Fatal(err)
	}
	want := map[string][]string{
		"github": {"id-token: write", "$ACTIONS_ID_TOKEN_REQUEST_URL", "$ACTIONS_ID_TOKEN_REQUEST_TOKEN", "AUDIENCE: " + audience, "audience=$AUDIENCE", "psql", "curl"},
		"gitlab": {"id_tokens:", "TOLLGATE_TOKEN:", "aud: " + audience, "psql", "curl"},
	}[dir]
	for _, w := range want {
		if !strings.Contains(string(b), w) {
			t.Errorf("%s/%s does not contain %q", dir, file, w)
		}
	}
}

type ruleCase struct {
	name                   string
	change                 map[string]any // claims that differ from the provider's base token
	target, verb, resource string
	rule                   string // the rule that allows it; "" for refused
}

// startIssuer serves the repository's development issuer on loopback.
func startIssuer(t *testing.T, audience string) *identity.DevIssuer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	iss, err := identity.NewDevIssuer(&config.Dev{IssuerListen: ln.Addr().String(), Audience: audience,
		MaxTTL: config.Duration{Duration: time.Hour}}, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: iss.Handler(), ReadHeaderTimeout: 5 * time.Second}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return iss
}
