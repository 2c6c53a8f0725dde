package detect

import (
	"bytes"
	"fmt"
	"slices"
	"strings"
)

// keywordGap is how far after its keyword a match may start: some rules'
// keyword names the secret without being part of it
// (airtableToken="pat…").
const keywordGap = 64

// KindRules is the Kind of a Rules detector; each span it finds carries the
// id of the gitleaks rule that found it ("github-pat", "generic-api-key").
const KindRules = "gitleaks"

// Rules runs gitleaks rules. Every rule has keywords: one pass of a
// case-insensitive keyword automaton over the input finds where a rule may
// match, and the rule's regexp then runs only in a window around each
// keyword occurrence:
//
//	[p+len(keyword)-w, p+len(keyword)+w+keywordGap)
//
// where w is the rule's longest match (at most ruleWindowMax).
//
// A window depends only on where its keyword is, never on where a scan
// began, which is what makes a Stream's output equal the whole text's.
// Within a window the regexp's matches are found anchored at each start
// from the rule's longest lead before its keyword (pre) to keywordGap
// bytes after it, left to right; the secret is the rule's secret group (or the first
// non-empty group), kept when its entropy is above the rule's threshold,
// no allowlist (the rule's or the global one) allows it, and it starts in
// the keyword's run of non-space bytes or after the keyword (no more than
// runBack bytes before it).
type Rules struct {
	rules  []*rule
	kw     *keywordMatcher
	byKw   [][]int // keyword id -> indices in rules
	global []allowlist
	backN  int
	// leading: rules whose secret may start before its keyword.
	leading []*rule
}

// secretMayStart is where, in the run of non-space bytes that ends b, the
// secret of a rule in rs.leading may have begun (its keyword yet to come):
// the leftmost start from which the rest of b is the beginning of one of
// their matches; len(b) if none. Holding only there, and not the whole
// run, lets a shell's typed echo through as it comes.
func (rs *Rules) secretMayStart(b []byte) int {
	n := len(b)
	t := runStart(b, n)
	if t == n || len(rs.leading) == 0 {
		return n
	}
	start := n
	operator := bytes.ContainsAny(b[t:], "=>:|?,")
	for _, r := range rs.leading {
		if r.assign0 && !operator {
			// A key = value rule's secret is the value: it has not
			// begun in a run without an operator.
			continue
		}
		re := r.alive()
		if re == nil {
			return t
		}
		if loc := re.FindIndex(b[t:]); loc != nil && t+loc[0] < start {
			start = t + loc[0]
			if start == t {
				break
			}
		}
	}
	return start
}

// NewRules returns a detector running the named gitleaks rules (ids as in
// RuleIDs); all of them when ids is empty.
func NewRules(ids ...string) (*Rules, error) {
	b, err := gitleaksRules()
	if err != nil {
		return nil, err
	}
	rs := &Rules{global: b.global}
	if len(ids) == 0 {
		rs.rules = slices.Clone(b.rules)
	}
	for _, id := range ids {
		r, ok := b.byID[id]
		if !ok {
			return nil, fmt.Errorf("detect: unknown gitleaks rule %q", id)
		}
		if !slices.Contains(rs.rules, r) {
			rs.rules = append(rs.rules, r)
		}
	}
	var words []string
	index := map[string]int{}
	for i, r := range rs.rules {
		for _, k := range r.keywords {
			id, ok := index[k]
			if !ok {
				id = len(words)
				index[k] = id
				words = append(words, k)
				rs.byKw = append(rs.byKw, nil)
			}
			rs.byKw[id] = append(rs.byKw[id], i)
		}
	}
	rs.kw = newKeywordMatcher(words)
	maxKeyword := 0
	for _, w := range words {
		maxKeyword = max(maxKeyword, len(w))
	}
	// A span re-found by a later scan has its keyword at most a window
	// before it, and that keyword's window reaches a window further back.
	maxWindow := 0
	for _, r := range rs.rules {
		maxWindow = max(maxWindow, r.window)
	}
	for _, r := range rs.rules {
		if r.leadsKeyword() {
			rs.leading = append(rs.leading, r)
		}
	}
	rs.backN = 2*maxWindow + keywordGap + maxKeyword + runBack + 2
	return rs, nil
}

// RuleIDs lists the ids of the gitleaks rules the engine runs (rules that
// match on file paths are left out).
func RuleIDs() ([]string, error) {
	b, err := gitleaksRules()
	if err != nil {
		return nil, err
	}
	out := make([]string, len(b.rules))
	for i, r := range b.rules {
		out[i] = r.id
	}
	return out, nil
}

// Kind is KindRules; the spans carry their rule's id.
func (rs *Rules) Kind() string { return KindRules }

// IDs lists the rules this detector runs.
func (rs *Rules) IDs() []string {
	out := make([]string, len(rs.rules))
	for i, r := range rs.rules {
		out[i] = r.id
	}
	return out
}

func (rs *Rules) Find(b []byte, dst []Span) []Span {
	dst, _ = rs.scan(b, dst, true, false)
	return dst
}

func (rs *Rules) back() int { return rs.backN }

func isSpace(c byte) bool {
	return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f'
}

// runStart is where the run of non-space bytes holding b[p] begins, but
// no earlier than p-runBack.
func runStart(b []byte, p int) int {
	s := p
	for s > 0 && p-s < runBack && !isSpace(b[s-1]) {
		s--
	}
	return s
}

// endsSecret: where a secret cut by its window is taken to end.
func endsSecret(c byte) bool {
	return isSpace(c) || c == '"' || c == '\'' || c == '`' || c == '<' || c == '>'
}

func (rs *Rules) scan(b []byte, dst []Span, eof, cut bool) ([]Span, int) {
	return rs.scanFrom(b, dst, eof, cut, 0, true, nil, 0)
}

// scanFrom is scan for a Stream that has returned b[:from] already:
// occurrences whose spans would all start before from are not run. early:
// try to decide a window before all of it has arrived (see occurrence);
// a Stream asks only after a small chunk, when the rest may be slow to
// come (an interactive session), since the check costs a regexp run.
//
// memo, when not nil, keeps the windows decided by earlier scans of the
// same Stream (b[0] is at offset base of the stream).
func (rs *Rules) scanFrom(b []byte, dst []Span, eof, cut bool, from int, early bool, memo *Memo, base int) ([]Span, int) {
	n := len(b)
	hold := n
	if memo != nil {
		memo.forget(base)
	}
	if len(rs.rules) == 0 {
		return dst, hold
	}
	partial := rs.kw.find(b, func(p, kw int) {
		kl := len(rs.kw.words[kw])
		for _, ri := range rs.byKw[kw] {
			r := rs.rules[ri]
			if p+kl+keywordGap+r.window < from {
				continue
			}
			if memo != nil {
				if spans, ok := memo.done[memoKey{base + p, r}]; ok {
					for _, sp := range spans {
						dst = append(dst, Span{sp.Start - base, sp.End - base, sp.Kind})
					}
					continue
				}
			}
			before := len(dst)
			var h int
			var decided bool
			dst, h, decided = rs.occurrence(r, b, p, kl, dst, eof, cut, early)
			hold = min(hold, h)
			if decided && memo != nil {
				spans := make([]Span, 0, len(dst)-before)
				for _, sp := range dst[before:] {
					spans = append(spans, Span{sp.Start + base, sp.End + base, sp.Kind})
				}
				memo.done[memoKey{base + p, r}] = spans
			}
		}
	})
	if !eof {
		// A keyword may complete, and a secret may have begun earlier
		// in the run of non-space bytes it will sit in.
		hold = min(hold, n-partial, rs.secretMayStart(b))
	}
	return dst, hold
}

// occurrence runs r at the keyword b[p:p+kl]: a match may start from
// r.pre bytes before the keyword to keywordGap bytes after it, and is
// found anchored at each such start, left to right, the next start after
// the end of a match. It returns the extended dst and a hold: len(b) when
// decided, else where the first span it may still report could start.
func (rs *Rules) occurrence(r *rule, b []byte, p, kl int, dst []Span, eof, cut, early bool) ([]Span, int, bool) {
	n := len(b)
	back := max(r.pre-kl, 0)
	if cut && p <= max(back, runBack, lineBack) {
		// It reads before b: a Stream decided it earlier.
		return dst, n, false
	}
	lo, hi := max(p-back, 0), p+kl+keywordGap
	rs0 := runStart(b, p)
	if r.assign {
		found, undecided := assignAfter(b, p+kl, eof)
		if undecided {
			return dst, rs0, false
		}
		if !found {
			return dst, n, true
		}
		// The match starts where the key's name does: in the run of
		// [A-Za-z0-9_.-] before the keyword (the rule's [\w.-]{0,50}?),
		// at the leftmost start that matches.
		lo, hi = keyStart(b, p, lo), p
	}
	if hi >= n && !eof {
		return dst, rs0, false
	}
	hi = min(hi, n-1)
	we := hi + r.window // where an unbounded rule's match is cut
	end := min(we, n)
	whole := we <= n || eof
	if !whole {
		// Decided only if no match from a start in [lo, hi] can be under
		// way at the end of what is here.
		if !early || r.alive() == nil {
			return dst, rs0, false
		}
		if loc := r.alive().FindIndex(b[lo:]); loc != nil && lo+loc[0] <= hi {
			return dst, rs0, false
		}
	}
	base := len(dst)
	for s := lo; s <= hi; s++ {
		var m []int
		off := 0
		if r.selective || r.assign {
			if !r.firstByte[b[s]] {
				continue
			}
			if s == 0 {
				m = r.first.FindSubmatchIndex(b[:end])
			} else {
				off = s - 1
				m = r.ctx.FindSubmatchIndex(b[off:end])
			}
		} else {
			// The leftmost match from s is the first start with an
			// anchored match, and the same match.
			if s == 0 {
				m = r.firstU.FindSubmatchIndex(b[:end])
			} else {
				off = s - 1
				m = r.ctxU.FindSubmatchIndex(b[off:end])
			}
			if m != nil && m[2]+off > hi {
				m = nil
			}
		}
		if m == nil {
			if r.selective || r.assign {
				continue
			}
			break
		}
		// Group 1 is the rule's whole match; the rule's groups follow.
		ms, me := m[2]+off, m[3]+off
		s = max(s, me-1, ms)
		ss, se := ms, me
		if len(m) > 4 {
			g := r.group
			if g == 0 {
				for k := 2; 2*k+1 < len(m); k++ {
					if m[2*k] >= 0 && m[2*k+1] > m[2*k] {
						g = k - 1
						break
					}
				}
			}
			if g > 0 && 2*(g+1)+1 < len(m) && m[2*(g+1)] >= 0 {
				ss, se = m[2*(g+1)]+off, m[2*(g+1)+1]+off
			}
		}
		if se <= ss || ss < rs0 {
			continue
		}
		secret := b[ss:se]
		if r.entropy != 0 && shannon(secret) <= r.entropy {
			continue
		}
		if !r.bounded && me == we {
			// Cut by the window: the secret runs on to its end.
			for se < n && !endsSecret(b[se]) {
				se++
			}
			if se == n && !eof {
				return dst[:base], rs0, false
			}
		}
		var line []byte
		if r.lineTarget {
			ls, le, ok := lineAround(b, ms, me, max(0, p-lineBack), end, !whole)
			if !ok {
				return dst[:base], rs0, false
			}
			line = b[ls:le]
		}
		if rs.allowed(r, b[ss:se], b[ms:me], line) {
			continue
		}
		dst = append(dst, Span{ss, se, r.id})
	}
	return dst, n, true
}

// Memo keeps, for one Stream, the spans of the keyword windows already
// decided, at their offsets in the stream: a decided window gives the same
// spans whenever it runs again, and a Stream fed small chunks would
// otherwise run every window near its end again on every Write.
type Memo struct {
	done map[memoKey][]Span
}

type memoKey struct {
	at int // stream offset of the keyword
	r  *rule
}

// NewMemo returns an empty Memo.
func NewMemo() *Memo { return &Memo{done: map[memoKey][]Span{}} }

// forget drops the windows of keywords before base: the stream no longer
// holds them.
func (m *Memo) forget(base int) {
	for k := range m.done {
		if k.at < base {
			delete(m.done, k)
		}
	}
}

// keyStart is where a key's name holding the keyword at p can start: back
// over [A-Za-z0-9_.-] at most 50 bytes, not before lo.
func keyStart(b []byte, p, lo int) int {
	s := p
	for s > lo && p-s < 50 && (has(b[s-1], cWord) || b[s-1] == '.' || b[s-1] == '-') {
		s--
	}
	return s
}

// lineBack bounds how far before its keyword the line of a match is read
// (an allowlist on the line: `import { ... } from '...'`).
const lineBack = 512

// lineAround is the line holding [ms, me) within [ws, end).
// When the window was decided before it all arrived (early), a line that
// runs to the end of what is here is not known yet.
func lineAround(b []byte, ms, me, ws, end int, early bool) (int, int, bool) {
	ls := ms
	for ls > ws && b[ls-1] != '\n' {
		ls--
	}
	le := me
	for le < end && b[le] != '\n' {
		le++
	}
	if le == end && early {
		return 0, 0, false
	}
	return ls, le, true
}

func (rs *Rules) allowed(r *rule, secret, match, line []byte) bool {
	for i := range rs.global {
		if rs.global[i].allowed(secret, match, line) {
			return true
		}
	}
	for i := range r.allow {
		if r.allow[i].allowed(secret, match, line) {
			return true
		}
	}
	return false
}

// Vendor is the vendor part of a rule id: "github" for "github-pat".
func Vendor(id string) string {
	v, _, _ := strings.Cut(id, "-")
	return v
}
