//go:build wasip1

// Command protected-branch is an example Tollgate plugin: it denies every
// request unless the CI job that holds the token runs on a protected
// branch. GitHub Actions puts the branch in the token's ref claim
// (refs/heads/main; a tag is refs/tags/..., a pull request
// refs/pull/N/merge); GitLab puts the bare name in ref, with ref_type
// "branch" and ref_protected "true" when GitLab protects it.
package main

import (
	"path"
	"strings"

	"github.com/tollgate-dev/tollgate/sdk"
)

var cfg struct {
	// Branches are the protected branch names, path.Match globs ("main",
	// "release/*": * does not cross a /).
	Branches []string `json:"branches"`
	// TrustRefProtected also accepts a branch whose ref_protected claim
	// is "true" (GitLab says which branches it protects).
	TrustRefProtected bool     `json:"trust_ref_protected"`
	Kinds             []string `json:"kinds"` // default: every request kind
}

func init() {
	if err := sdk.Config(&cfg); err != nil {
		panic("protected-branch: config: " + err.Error())
	}
	for _, b := range cfg.Branches {
		if _, err := path.Match(b, ""); err != nil {
			panic("protected-branch: branches: " + b + ": " + err.Error())
		}
	}
	if len(cfg.Kinds) == 0 {
		cfg.Kinds = []string{"pg.query", "http.request", "ssh.exec", "kube.exec", "git.push"}
	}
	for _, k := range cfg.Kinds {
		sdk.Subscribe(k)
	}
	sdk.HandleEvent(decide)
}

func decide(ev sdk.Event) sdk.Verdict {
	// The same claims are read for every event: the verdict is cacheable.
	sdk.Cacheable()
	ref, refType, protected := ev.Claim("ref"), ev.Claim("ref_type"), ev.Claim("ref_protected")
	branch, ok := branchOf(ref, refType)
	if !ok {
		return sdk.Deny("this token's CI job does not run on a branch (ref " + quote(ref) + ")")
	}
	if cfg.TrustRefProtected && protected == "true" {
		sdk.Annotate("protected-branch.branch", branch)
		return sdk.Allow()
	}
	for _, b := range cfg.Branches {
		if m, _ := path.Match(b, branch); m {
			sdk.Annotate("protected-branch.branch", branch)
			return sdk.Allow()
		}
	}
	return sdk.Deny("branch " + quote(branch) + " is not protected")
}

// branchOf is the branch a ref names: refs/heads/NAME (GitHub), or a bare
// NAME with ref_type "branch" (GitLab). Anything else, a tag or a pull
// request's merge ref, is no branch.
func branchOf(ref, refType string) (string, bool) {
	if name, ok := strings.CutPrefix(ref, "refs/heads/"); ok {
		return name, name != "" && (refType == "" || refType == "branch")
	}
	if strings.HasPrefix(ref, "refs/") || ref == "" || refType != "branch" {
		return "", false
	}
	return ref, true
}

func quote(s string) string {
	if s == "" {
		return "none"
	}
	return `"` + s + `"`
}

func main() {}
