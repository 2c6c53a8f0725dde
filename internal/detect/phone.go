package detect

import (
	"bytes"
	"fmt"
	"slices"
	"strings"

	"github.com/nyaruka/phonenumbers"
	"google.golang.org/protobuf/proto"
)

// KindPhone is the kind of the phone detector: telephone numbers that
// libphonenumber (github.com/nyaruka/phonenumbers) holds valid.
const KindPhone = "phone"

const (
	phoneMinDigits = 8  // "+49 30 1234": shorter numbers are too few to tell
	phoneMaxDigits = 17 // the longest E.164 number (15) with an "00" prefix
	// phoneCtx: a start's decision reads the byte before it (or before
	// its '(') and the gap and digit before that byte.
	phoneCtx = 4
)

// Phone returns a phone detector that also accepts numbers written without
// an international prefix when they are valid numbers of one of regions
// (ISO 3166-1 alpha-2 codes, "US", "GB"), as a service whose users share a
// country writes them. Builtin("phone") has no region: it finds only numbers
// in international format ("+44 20 7946 0958", "0044 20 7946 0958"), since
// a bare run of 8 to 17 digits is more often an ID, an amount or a
// timestamp than a phone number. Each region costs a libphonenumber parse
// (tens of µs) per candidate without a '+' or "00".
func Phone(regions ...string) (Detector, error) {
	supported := phonenumbers.GetSupportedRegions()
	var rs []string
	for _, r := range regions {
		u := strings.ToUpper(strings.TrimSpace(r))
		if !supported[u] {
			return nil, fmt.Errorf("detect: phone: unknown region %q (want an ISO 3166 code such as US or GB)", r)
		}
		rs = append(rs, u)
	}
	return &builtin{KindPhone, phoneScanner{rs}.scan, phoneCtx, phoneMinDigits, phoneNeed}, nil
}

func phoneNeed(s summary) bool { return s.digits >= phoneMinDigits }

type phoneScanner struct{ regions []string }

// scan: a candidate is a '+' or a digit ('(' just before a digit is
// included), then digits where a gap of one separator (' ', '-', '.',
// '(' or ')') or of a parenthesis and a separator (") ", " (") may stand
// between two digits; 8 to 17 digits in all. It is dropped when
//   - a word byte or '+' borders it, or a digit comes right before it
//     through a separator or ',', ':', '/' (part of a longer number), or
//     a '-' joins it to a word (an ID, a UUID);
//   - ',', ':' or '/' and a digit follow it (a decimal, a time, a date);
//   - it holds a date (groups 4-2-2 or 2-2-4 joined by one '-' or '.');
//   - it has '.' separators but fewer than two, or also '-' or a
//     parenthesis (a decimal number), or is four dotted groups of up to
//     three digits (an IPv4 address).
//
// What remains is a phone number if it starts with '+' or "00" and is
// valid for the country code that follows, or without those if it has a
// separator (a bare run of digits is an ID more often than not) and is
// valid in a configured region (see Phone).
func (p phoneScanner) scan(b []byte, dst []Span, eof, cut bool) ([]Span, int) {
	n := len(b)
	hold := n
	var glen [phoneMaxDigits + 1]int // digits of each group
	var gsep [phoneMaxDigits + 1]byte
	if !eof && n > 0 && b[n-1] == '(' {
		hold = n - 1 // a span may start with it
	}
	// Without regions only '+' and "00" start a number: jump between
	// them (np, nz: the next of each at or after i, n if none) rather than
	// stop at every digit of ordinary text.
	intlOnly := len(p.regions) == 0
	np, nz := -1, -1
	for i := 0; i < n; {
		if intlOnly {
			if np < i {
				np = nextByte(b, i, '+')
			}
			for nz < i || nz < n-1 && b[nz+1] != '0' {
				nz = nextByte(b, max(i, nz+1), '0')
			}
			if i = min(np, nz); i == n {
				break
			}
		}
		c := b[i]
		if c != '+' && !has(c, cDigit) {
			i = skipNone(b, i+1, '+'-1, '9'+1)
			continue
		}
		s, j := i, i
		if c == '+' {
			if i+1 == n {
				if !eof {
					hold = min(hold, i)
				}
				break
			}
			if !has(b[i+1], cDigit) {
				i++
				continue
			}
			j++
		}
		nd, ng, touched := 0, 0, false
		for {
			gs := j
			for j < n && has(b[j], cDigit) {
				j++
			}
			nd += j - gs
			if ng < len(glen) {
				glen[ng] = j - gs
			}
			ng++
			end := j
			g := phoneGap(b, j, eof)
			if g < 0 || j == n {
				touched = true
			}
			if g <= 0 || nd > phoneMaxDigits {
				j = end
				break
			}
			if ng < len(gsep) {
				gsep[ng] = 0 // the separator before group ng, 0 if a parenthesis
				if g == 1 && b[j] != '(' && b[j] != ')' {
					gsep[ng] = b[j]
				}
			}
			j += g
		}
		e := j
		i = e
		if nd > phoneMaxDigits {
			continue // decided whatever follows
		}
		k := s
		if c != '+' && s > 0 && b[s-1] == '(' {
			k = s - 1
		}
		if cut && s < phoneCtx {
			continue
		}
		if !phoneStartOK(b, k) {
			continue
		}
		if touched && !eof {
			hold = min(hold, k)
			continue
		}
		if e < n && (has(b[e], cWord) || b[e] == '+') {
			continue
		}
		if e+1 < n && b[e] == '-' && has(b[e+1], cWord) {
			continue
		}
		if e < n && (b[e] == ',' || b[e] == ':' || b[e] == '/') {
			if e+1 == n {
				if !eof {
					hold = min(hold, k)
				}
				continue
			}
			if has(b[e+1], cDigit) {
				continue
			}
		}
		if nd < phoneMinDigits || !phoneShapeOK(glen[:ng], gsep[:ng]) {
			continue
		}
		if p.valid(b[k:e], c == '+') {
			dst = append(dst, Span{k, e, KindPhone})
		}
	}
	return dst, hold
}

func phoneGapByte(c byte) bool {
	return c == ' ' || c == '-' || c == '.' || c == '(' || c == ')'
}

func phoneParen(c byte) bool { return c == '(' || c == ')' }

// phoneGap returns the length of the gap at b[j:] if a digit follows it (1
// or 2), 0 if there is none, -1 if more input could make one.
func phoneGap(b []byte, j int, eof bool) int {
	n := len(b)
	if j >= n {
		return 0
	}
	if !phoneGapByte(b[j]) {
		return 0
	}
	for g := 1; g <= 2; g++ {
		if j+g == n {
			if eof {
				return 0
			}
			return -1
		}
		d := b[j+g]
		if has(d, cDigit) {
			return g
		}
		if g == 2 || !phoneGapByte(d) || phoneParen(d) == phoneParen(b[j]) {
			return 0
		}
	}
	return 0
}

// phoneStartOK reports whether a candidate starting at k is not the tail
// of a longer number: see scan.
func phoneStartOK(b []byte, k int) bool {
	q := k - 1
	if q < 0 {
		return true
	}
	c := b[q]
	if has(c, cWord) || c == '+' {
		return false
	}
	if !phoneGapByte(c) && c != ',' && c != ':' && c != '/' {
		return true
	}
	if q >= 1 && (has(b[q-1], cDigit) || c == '-' && has(b[q-1], cWord)) {
		return false // a longer number, or an ID such as a UUID
	}
	return !(q >= 2 && phoneGapByte(b[q-1]) && has(b[q-2], cDigit))
}

// phoneShapeOK rejects dates, decimals and IPv4 addresses (see scan).
// glen[i] is the digits of group i, sep[i] the one-byte separator before
// it (0 if the gap held a parenthesis).
func phoneShapeOK(glen []int, sep []byte) bool {
	dots := 0
	for i := 1; i < len(sep); i++ {
		if sep[i] == '.' {
			dots++
		}
	}
	if dots > 0 && (dots < 2 || slices.Contains(sep[1:], '-') || slices.Contains(sep[1:], 0)) {
		return false
	}
	if dots == 3 && len(glen) == 4 && glen[0] <= 3 && glen[1] <= 3 && glen[2] <= 3 && glen[3] <= 3 {
		return false
	}
	for i := 0; i+2 < len(glen); i++ {
		s := sep[i+1]
		if (s == '-' || s == '.') && sep[i+2] == s {
			a, b, c := glen[i], glen[i+1], glen[i+2]
			if a == 4 && b == 2 && c == 2 || a == 2 && b == 2 && c == 4 {
				return false
			}
		}
	}
	return true
}

// valid reports whether t (a candidate, '+' first if plus) is a valid
// number: an international one, or a national one of p's regions.
func (p phoneScanner) valid(t []byte, plus bool) (ok bool) {
	defer func() {
		if recover() != nil {
			ok = false // a library bug is no reason to fail a scan
		}
	}()
	var d [phoneMaxDigits]byte
	nd := 0
	for _, c := range t {
		if has(c, cDigit) {
			d[nd] = c
			nd++
		}
	}
	digits := d[:nd]
	if !plus && nd >= 2 && digits[0] == '0' && digits[1] == '0' {
		digits, plus = digits[2:], true
	}
	if plus {
		return len(digits) >= phoneMinDigits && validIntl(digits, bytes.Contains(t, []byte("(0)")))
	}
	if bytes.IndexFunc(bytes.TrimPrefix(t, []byte("(")), func(r rune) bool { return r > '9' || r < '0' }) < 0 {
		return false // a bare run of digits is more often an ID or an amount
	}
	for _, r := range p.regions {
		if num, err := phonenumbers.Parse(string(t), r); err == nil && phonenumbers.IsValidNumberForRegion(num, r) {
			return true
		}
	}
	return false
}

// validIntl checks a country code and national number without the cost of
// phonenumbers.Parse (which runs several regexps over the text). trunk0
// says the text has a "(0)" trunk prefix ("+44 (0)20 …"), which is no part
// of the number.
func validIntl(digits []byte, trunk0 bool) bool {
	for l := 1; l <= 3 && l < len(digits); l++ {
		cc := 0
		for _, c := range digits[:l] {
			cc = cc*10 + int(c-'0')
		}
		if phonenumbers.GetRegionCodeForCountryCode(cc) == phonenumbers.UNKNOWN_REGION {
			continue
		}
		nat := digits[l:]
		if trunk0 && len(nat) > 1 && nat[0] == '0' {
			nat = nat[1:]
		}
		return phonenumbers.IsValidNumber(phoneNumber(int32(cc), nat))
	}
	return false
}

// phoneNumber builds what phonenumbers.Parse would for country code cc and
// national number nat, leading zeros (Italy, …) included.
func phoneNumber(cc int32, nat []byte) *phonenumbers.PhoneNumber {
	var v uint64
	for _, c := range nat {
		v = v*10 + uint64(c-'0')
	}
	num := &phonenumbers.PhoneNumber{CountryCode: proto.Int32(cc), NationalNumber: proto.Uint64(v)}
	z := 0
	for z < len(nat)-1 && nat[z] == '0' {
		z++
	}
	if z > 0 {
		num.ItalianLeadingZero = proto.Bool(true)
		if z > 1 {
			num.NumberOfLeadingZeros = proto.Int32(int32(z))
		}
	}
	return num
}

// nextByte returns the index of the first c in b at or after i, or len(b).
func nextByte(b []byte, i int, c byte) int {
	if k := bytes.IndexByte(b[i:], c); k >= 0 {
		return i + k
	}
	return len(b)
}
