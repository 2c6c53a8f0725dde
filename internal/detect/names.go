package detect

import (
	"fmt"
	"slices"
	"strings"
)

// Groups of detectors an operator can name instead of listing each one.
const (
	// GroupSecrets: every gitleaks rule, and the builtins for what they
	// lack: AWS secret keys without their key id, passwords in
	// assignments and in URLs.
	GroupSecrets = "secrets"
	// GroupPII: personal data (e-mail addresses, card numbers, IBANs,
	// phone numbers).
	GroupPII = "pii"
	// GroupGitleaks: every gitleaks rule, without our builtins.
	GroupGitleaks = "gitleaks"
	// VendorPrefix + a vendor picks the gitleaks rules of one vendor:
	// "vendor:github" is github-pat, github-fine-grained-pat, ...
	VendorPrefix = "vendor:"
)

// builtinSecrets and builtinPII are the builtins each group holds, when
// they exist (a name another build lacks is skipped).
var (
	// Secrets gitleaks has no rule for. Our vendor token builtins
	// (github_token, slack_token, ...) stay out of the group: gitleaks'
	// rules find what they find (TestGitleaksRecall) and flag fewer of
	// gitleaks' false positives (TestGitleaksFalsePositivesNoWorse).
	builtinSecrets = []string{KindAWSSecret, KindPassword, "url_credentials"}
	builtinPII     = []string{KindEmail, KindCreditCard, KindIBAN, "phone"}
)

// Resolve turns detector names into detectors: builtin names (Names),
// gitleaks rule ids (RuleIDs), and the groups secrets, pii, gitleaks and
// vendor:<name>. Every gitleaks rule named, directly or through a group,
// runs in one Rules detector, placed after the builtins (a builtin's kind
// wins a tie). Names are trimmed and may repeat.
func Resolve(names []string) ([]Detector, error) {
	var builtinNames, ruleIDs []string
	ids, err := RuleIDs()
	if err != nil {
		return nil, err
	}
	addBuiltin := func(n string, strict bool) error {
		if _, err := Builtin(n); err != nil {
			if strict {
				return err
			}
			return nil
		}
		if !slices.Contains(builtinNames, n) {
			builtinNames = append(builtinNames, n)
		}
		return nil
	}
	addRules := func(match func(id string) bool) int {
		k := 0
		for _, id := range ids {
			if match(id) {
				k++
				if !slices.Contains(ruleIDs, id) {
					ruleIDs = append(ruleIDs, id)
				}
			}
		}
		return k
	}
	for _, raw := range names {
		n := strings.TrimSpace(raw)
		switch {
		case n == "":
			continue
		case n == GroupSecrets:
			for _, b := range builtinSecrets {
				addBuiltin(b, false)
			}
			addRules(func(string) bool { return true })
		case n == GroupPII:
			for _, b := range builtinPII {
				addBuiltin(b, false)
			}
		case n == GroupGitleaks:
			addRules(func(string) bool { return true })
		case strings.HasPrefix(n, VendorPrefix):
			v := strings.TrimPrefix(n, VendorPrefix)
			if addRules(func(id string) bool { return Vendor(id) == v }) == 0 {
				return nil, fmt.Errorf("detect: no gitleaks rule of vendor %q", v)
			}
		case slices.Contains(ids, n):
			addRules(func(id string) bool { return id == n })
		default:
			if err := addBuiltin(n, true); err != nil {
				return nil, fmt.Errorf("detect: unknown detector %q (a builtin (%s), a gitleaks rule id, or a group: %s, %s, %s, %s<name>)",
					n, strings.Join(Names(), ", "), GroupSecrets, GroupPII, GroupGitleaks, VendorPrefix)
			}
		}
	}
	var ds []Detector
	// Builtins in their own order (Names), whatever order they were named in.
	for _, n := range Names() {
		if slices.Contains(builtinNames, n) {
			d, _ := Builtin(n)
			ds = append(ds, d)
		}
	}
	if len(ruleIDs) > 0 {
		rs, err := NewRules(ruleIDs...)
		if err != nil {
			return nil, err
		}
		ds = append(ds, rs)
	}
	return ds, nil
}
