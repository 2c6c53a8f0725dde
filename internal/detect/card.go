package detect

const (
	// cardRunMax bounds the digit runs split into card numbers (five
	// 19-digit cards in groups of four); a longer run is no card list.
	cardRunMax = 128
	// cardKwWindow is how far before a run a card keyword is looked for.
	cardKwWindow = 32
	// cardCtx: a card's decision reads back to its run's start, then the
	// keyword window and two bytes of border.
	cardCtx = cardRunMax + cardKwWindow + 2
)

// scanCard: a maximal run of digits where single ' ' or '-' separate groups
// of digits, at most 128 bytes long, bordered by non-word bytes and not part
// of a decimal number ("0.4111…", "4111….50"). The run is split at its
// separators into card candidates, left to right, each the longest sequence
// of whole groups with 13..19 digits, a known IIN prefix and length and a
// valid Luhn check digit (so cards listed with single spaces between them
// are found one by one).
//
// A candidate is reported only with card-like context, because one in ten
// random numbers passes Luhn and most have a known IIN: it is printed in
// groups (three or more, the first of four digits: "4111 1111 1111 1111",
// "3782 822463 10005"), or its run holds two or more candidates (a list of
// cards), or a keyword ("card", "visa", "amex", "credit", "cc", …, see
// cardKeywords) ends within 32 bytes before the run. A compact number
// alone, without a keyword, is taken for an order number or an ID: mask a
// column of bare card numbers by its name (Whole).
func scanCard(b []byte, dst []Span, eof, cut bool) ([]Span, int) {
	n := len(b)
	hold := n
	var groups [cardRunMax/2 + 1][2]int // digit groups of a run: [start, end)
	for i := 0; i < n; {
		if !has(b[i], cDigit) {
			i = skipNone(b, i+1, '0'-1, '9'+1)
			for i < n && !has(b[i], cDigit) {
				i++
			}
			continue
		}
		start := i
		ng, j := 0, i
		touched := false
		for {
			gs := j
			for j < n && has(b[j], cDigit) {
				j++
			}
			if ng < len(groups) {
				groups[ng] = [2]int{gs, j}
			}
			ng++
			if j == n {
				touched = true
				break
			}
			if b[j] == ' ' || b[j] == '-' {
				if j+1 == n {
					touched = true
					break
				}
				if has(b[j+1], cDigit) {
					j++
					continue
				}
			}
			break
		}
		i = j
		if ng > len(groups) || groups[ng-1][1]-start > cardRunMax {
			continue // decided whatever follows
		}
		end := groups[ng-1][1]
		if start > 0 {
			p := b[start-1]
			if has(p, cWord) {
				continue
			}
			if p == '.' && start >= 2 && has(b[start-2], cDigit) {
				continue
			}
		}
		if cut && start < cardKwWindow+2 {
			continue
		}
		if touched {
			if !eof {
				hold = min(hold, start)
				continue
			}
		} else if end < n {
			c := b[end]
			if has(c, cWord) {
				continue
			}
			if c == '.' {
				if end+1 == n {
					if !eof {
						hold = min(hold, start)
						continue
					}
				} else if has(b[end+1], cDigit) {
					continue
				}
			}
		}
		if end-start-(ng-1) >= 13 {
			dst = cardCandidates(b, groups[:ng], start, dst)
		}
	}
	return dst, hold
}

// cardCandidates appends the cards of a run's groups (see scanCard).
func cardCandidates(b []byte, groups [][2]int, start int, dst []Span) []Span {
	var found [cardRunMax / 13][2]int // [first, last] group of each candidate
	nf := 0
	glen := func(k int) int { return groups[k][1] - groups[k][0] }
	for g := 0; g < len(groups); {
		last, tot := g-1, 0
		for k := g; k < len(groups) && tot+glen(k) <= 19; k++ {
			tot += glen(k)
			last = k
		}
		ok := false
		for j := last; j >= g && tot >= 13; j-- {
			var d [19]byte
			m := 0
			for k := g; k <= j; k++ {
				m += copy(d[m:], b[groups[k][0]:groups[k][1]])
			}
			if cardOK(d[:m]) {
				if nf < len(found) {
					found[nf] = [2]int{g, j}
					nf++
				}
				g, ok = j+1, true
				break
			}
			tot -= glen(j)
		}
		if !ok {
			g++
		}
	}
	kw := -1 // the keyword is looked for once, if needed
	for _, f := range found[:nf] {
		grouped := f[1]-f[0] >= 2 && glen(f[0]) == 4
		if !grouped && nf < 2 && kw < 0 {
			kw = 0
			if cardKeyword(b, start) {
				kw = 1
			}
		}
		if grouped || kw == 1 || nf >= 2 {
			dst = append(dst, Span{groups[f[0]][0], groups[f[1]][1], KindCreditCard})
		}
	}
	return dst
}

// cardKeywords mark a number as a card when one ends within cardKwWindow
// bytes before it (any ASCII case; "cc" only as a word of its own).
var cardKeywords = []string{"card", "karte", "carte", "tarjeta", "visa", "amex", "american express",
	"mastercard", "discover", "diners", "jcb", "maestro", "unionpay", "credit", "debit", "cc"}

func cardKeyword(b []byte, start int) bool {
	w := b[max(0, start-cardKwWindow):start]
	for i := range w {
		if !has(w[i], cUpper|cLower) {
			continue
		}
		for _, k := range cardKeywords {
			if !hasFoldAt(w, i, k) {
				continue
			}
			if k == "cc" && (i > 0 && has(w[i-1], cUpper|cLower) || i+2 < len(w) && has(w[i+2], cUpper|cLower)) {
				continue
			}
			return true
		}
	}
	return false
}
