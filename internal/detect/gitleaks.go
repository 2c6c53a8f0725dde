package detect

import (
	_ "embed"
	"fmt"
	"math"
	"regexp"
	"regexp/syntax"
	"strings"
	"sync"

	"github.com/BurntSushi/toml"
)

// The gitleaks rules: gitleaks/gitleaks.toml is gitleaks' default
// configuration (MIT, gitleaks/LICENSE) at the version go.mod pins,
// copied byte for byte; TestGitleaksConfigPinned fails when the module and
// the copy differ. See RATIONALE.md for why its rules are compiled into this
// engine rather than run through gitleaks' own detect package.
//
//go:embed gitleaks/gitleaks.toml
var gitleaksConfig string

type glAllowlist struct {
	Condition   string   `toml:"condition"`
	RegexTarget string   `toml:"regexTarget"`
	Regexes     []string `toml:"regexes"`
	StopWords   []string `toml:"stopwords"`
	Paths       []string `toml:"paths"`
	Commits     []string `toml:"commits"`
}

type glRule struct {
	ID          string        `toml:"id"`
	Regex       string        `toml:"regex"`
	Path        string        `toml:"path"`
	SecretGroup int           `toml:"secretGroup"`
	Entropy     float64       `toml:"entropy"`
	Keywords    []string      `toml:"keywords"`
	Allowlists  []glAllowlist `toml:"allowlists"`
	SkipReport  bool          `toml:"skipReport"`
}

type glConfig struct {
	Allowlist glAllowlist `toml:"allowlist"`
	Rules     []glRule    `toml:"rules"`
}

// ruleWindowMax bounds how far from its keyword a rule's match may reach
// (and what a Stream holds after a keyword while a match may be under
// way). Rules whose regexp is unbounded (a JWT, a private key) are cut
// there; a match that reaches the cut is masked on to the end of its run
// of non-space bytes, so a longer secret is still masked whole.
const ruleWindowMax = 512

// selectiveWindowMax is ruleWindowMax for rules few bytes can start (a
// JWT's "ey"): they run anchored, and a long window costs them little.
const selectiveWindowMax = 4096

// runBack bounds how far before its keyword a secret may start: a few
// rules' keywords sit inside the secret (OpenAI's "T3BlbkFJ"), so the
// secret may start up to this many bytes earlier, within the same run of
// non-space bytes. A Stream holds back a trailing run of non-space bytes
// of at most this length, which is why the bound is small.
const runBack = 256

// rule is one compiled gitleaks rule.
type rule struct {
	id       string
	keywords []string // lower case
	re       *regexp.Regexp
	ctx      *regexp.Regexp // `\A(?s:.)(re)`: re anchored after one byte of left context
	first    *regexp.Regexp // `\A(re)`: the same groups as ctx, at the start of the text
	ctxU     *regexp.Regexp // `(?s:.)(re)`: unanchored, for rules that may start anywhere
	firstU   *regexp.Regexp // `(re)`
	// alive is `(?:prefixes(re))\z`, compiled on first use (only a
	// Stream deciding a window early needs it; building it is half of
	// the rules' compile time); nil when too large to compile.
	aliveOnce sync.Once
	aliveRE   *regexp.Regexp
	tree      *syntax.Regexp
	// assign: the rule is gitleaks' key = value shape (generic-api-key
	// and its ~95 vendor variants); see assignAfter.
	assign bool
	// leads: the secret may start before its keyword (secretLeads)
	leads bool
	// assign0: the rule has gitleaks' key = value shape, wherever its
	// keyword is (assign requires the keyword in the key).
	assign0 bool
	// selective: few bytes can start a match, so trying each start
	// anchored beats one unanchored search through the window.
	selective bool
	pre       int       // most bytes a match holds before its keyword ends
	firstByte [256]bool // bytes a match can start with
	window    int       // max match length, capped at ruleWindowMax or selectiveWindowMax
	bounded   bool      // window is the true max match length
	group     int       // secret group in re's numbering; 0: first non-empty
	entropy   float64
	allow     []allowlist
	// lineTarget: an allowlist reads the line around a match, which a
	// Stream must then have whole.
	lineTarget bool
}

type allowlist struct {
	and       bool
	target    string // "", "match" or "line"
	regex     *regexp.Regexp
	stopwords []string
}

type ruleBook struct {
	rules  []*rule
	byID   map[string]*rule
	global []allowlist
	err    error
}

var (
	bookOnce sync.Once
	book     ruleBook
)

// gitleaksRules compiles the embedded configuration once per process.
func gitleaksRules() (*ruleBook, error) {
	bookOnce.Do(func() { book = compileBook(gitleaksConfig) })
	return &book, book.err
}

func compileBook(text string) ruleBook {
	var cfg glConfig
	if _, err := toml.Decode(text, &cfg); err != nil {
		return ruleBook{err: fmt.Errorf("detect: gitleaks rules: %w", err)}
	}
	b := ruleBook{byID: map[string]*rule{}}
	g, err := compileAllowlist(cfg.Allowlist)
	if err != nil {
		return ruleBook{err: err}
	}
	if g != nil {
		b.global = append(b.global, *g)
	}
	for _, r := range cfg.Rules {
		// Rules that look at file paths, or report nothing on their own,
		// have no meaning for a value in a row or a stream.
		if r.Path != "" || r.Regex == "" || r.SkipReport || len(r.Keywords) == 0 {
			continue
		}
		cr, err := compileRule(r)
		if err != nil {
			return ruleBook{err: err}
		}
		b.rules = append(b.rules, cr)
		b.byID[cr.id] = cr
	}
	return b
}

func compileRule(r glRule) (*rule, error) {
	re, err := regexp.Compile(r.Regex)
	if err != nil {
		return nil, fmt.Errorf("detect: gitleaks rule %s: %w", r.ID, err)
	}
	cr := &rule{id: r.ID, re: re, group: r.SecretGroup, entropy: r.Entropy}
	if cr.ctx, err = regexp.Compile(`\A(?s:.)(` + r.Regex + `)`); err != nil {
		return nil, fmt.Errorf("detect: gitleaks rule %s: %w", r.ID, err)
	}
	if cr.first, err = regexp.Compile(`\A(` + r.Regex + `)`); err != nil {
		return nil, fmt.Errorf("detect: gitleaks rule %s: %w", r.ID, err)
	}
	if cr.ctxU, err = regexp.Compile(`(?s:.)(` + r.Regex + `)`); err != nil {
		return nil, fmt.Errorf("detect: gitleaks rule %s: %w", r.ID, err)
	}
	if cr.firstU, err = regexp.Compile(`(` + r.Regex + `)`); err != nil {
		return nil, fmt.Errorf("detect: gitleaks rule %s: %w", r.ID, err)
	}
	tree, err := syntax.Parse(r.Regex, syntax.Perl)
	if err != nil {
		return nil, fmt.Errorf("detect: gitleaks rule %s: %w", r.ID, err)
	}
	tree = tree.Simplify()
	cr.tree = tree
	cr.leads = secretLeads(tree, r.SecretGroup, lowerKeywords(r.Keywords))
	cr.firstByte = firstBytes(tree)
	starts := 0
	for _, ok := range cr.firstByte {
		if ok {
			starts++
		}
	}
	cr.selective = starts <= 16
	// A rule tried anchored at few starts pays little for a long window;
	// one searched through its window pays for every byte of it.
	limit := ruleWindowMax
	if cr.selective {
		limit = selectiveWindowMax
	}
	if n := maxMatchLen(tree); n >= 0 && n <= limit {
		cr.window, cr.bounded = n, true
	} else {
		cr.window = limit
	}
	seen := map[string]bool{}
	for _, k := range r.Keywords {
		k = strings.ToLower(k)
		if k != "" && !seen[k] {
			seen[k] = true
			cr.keywords = append(cr.keywords, k)
		}
	}
	cr.pre = lead(tree, cr.keywords, cr.window)
	// Only where the keyword is the key's name: some rules' keywords
	// are in the value ("test_" of lob-api-key).
	cr.assign0 = strings.Contains(r.Regex, assignShape)
	cr.assign = cr.assign0 && cr.pre < cr.window
	for _, a := range r.Allowlists {
		ca, err := compileAllowlist(a)
		if err != nil {
			return nil, fmt.Errorf("detect: gitleaks rule %s: %w", r.ID, err)
		}
		if ca != nil {
			cr.allow = append(cr.allow, *ca)
			cr.lineTarget = cr.lineTarget || ca.target == "line"
		}
	}
	return cr, nil
}

// assignShape is what gitleaks' key = value rules put between the key and
// the value.
const assignShape = `(?:[ \t\w.-]{0,20})[\s'"]{0,3}(?:=|>|:{1,3}=|\|\||:|=>|\?=|,)`

// assignGap bounds the bytes between a keyword's end and the operator of
// a key = value rule: the rest of the key's name, then the shape's 20 and 3.
const assignGap = 64 + 3

// assignAfter reports whether an assignment operator of assignShape can
// follow b[q:]: bytes of [\s\w.'"-] up to assignGap, then one of = > : | ? ,.
// It is a necessary condition for a key = value match whose key holds the
// keyword ending at q, checked before the regexp runs: the keywords of
// generic-api-key ("key", "api", "token", "auth") are common words, and
// Go's NFA around each costs 1.5 s of CPU per MiB of logs. undecided: the
// input ends first and may go on.
func assignAfter(b []byte, q int, eof bool) (found, undecided bool) {
	for i := q; i < len(b) && i-q <= assignGap; i++ {
		switch c := b[i]; {
		case c == '=' || c == '>' || c == ':' || c == '|' || c == '?' || c == ',':
			return true, false
		case isSpace(c) || has(c, cWord) || c == '.' || c == '-' || c == '\'' || c == '"':
		default:
			return false, false
		}
	}
	if len(b)-q <= assignGap && !eof {
		return false, true
	}
	return false, false
}

// leadsKeyword reports whether a secret of r may start before the keyword
// that triggers it (see secretLeads).
func (r *rule) leadsKeyword() bool { return r.leads }

func lowerKeywords(ks []string) []string {
	out := make([]string, len(ks))
	for i, k := range ks {
		out[i] = strings.ToLower(k)
	}
	return out
}

// alive returns the rule's prefix expression (see prefixes), or nil.
func (r *rule) alive() *regexp.Regexp {
	r.aliveOnce.Do(func() {
		// A prefix expression too large to compile only means the
		// Stream waits for the whole window after a keyword.
		r.aliveRE, _ = regexp.Compile(`(?:` + prefixes(r.tree).String() + `)\z`)
	})
	return r.aliveRE
}

// compileAllowlist keeps the checks that apply to a value (regexes and
// stop words); an allowlist of paths or commits only is dropped.
func compileAllowlist(a glAllowlist) (*allowlist, error) {
	if len(a.Regexes) == 0 && len(a.StopWords) == 0 {
		return nil, nil
	}
	out := &allowlist{and: strings.EqualFold(a.Condition, "AND"), target: a.RegexTarget}
	if out.and && (len(a.Paths) > 0 || len(a.Commits) > 0) {
		return nil, nil // can never hold without a path or commit
	}
	if len(a.Regexes) > 0 {
		re, err := regexp.Compile(`(?:` + strings.Join(a.Regexes, `)|(?:`) + `)`)
		if err != nil {
			return nil, fmt.Errorf("allowlist: %w", err)
		}
		out.regex = re
	}
	for _, w := range a.StopWords {
		out.stopwords = append(out.stopwords, strings.ToLower(w))
	}
	return out, nil
}

// allowed reports whether a finding is allowlisted, as gitleaks decides:
// a regex on the secret (or the match, or the line), or a stop word in the
// secret; an AND allowlist needs both.
func (a *allowlist) allowed(secret, match, line []byte) bool {
	var checks [2]bool
	n := 0
	if a.regex != nil {
		t := secret
		switch a.target {
		case "match":
			t = match
		case "line":
			t = line
		}
		checks[n] = len(t) > 0 && a.regex.Match(t)
		n++
	}
	if len(a.stopwords) > 0 {
		low := strings.ToLower(string(secret))
		hit := false
		for _, w := range a.stopwords {
			if strings.Contains(low, w) {
				hit = true
				break
			}
		}
		checks[n] = hit
		n++
	}
	if a.and {
		for _, c := range checks[:n] {
			if !c {
				return false
			}
		}
		return n > 0
	}
	for _, c := range checks[:n] {
		if c {
			return true
		}
	}
	return false
}

// shannon is the Shannon entropy of b in bits per byte, as gitleaks
// computes it.
func shannon(b []byte) float64 {
	if len(b) == 0 {
		return 0
	}
	var counts [256]int
	for _, c := range b {
		counts[c]++
	}
	var e float64
	n := float64(len(b))
	for _, c := range counts {
		if c > 0 {
			p := float64(c) / n
			e -= p * math.Log2(p)
		}
	}
	return e
}
