package detect

import (
	"bytes"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"math"
	"strings"
)

// Every scan function follows the scanner.scan contract: with eof false a
// candidate that runs into the end of b is deferred (hold), with cut true a
// candidate that would look at b[-1] is skipped.

// skipNone returns the first index ≥ i from which b may hold a byte in the
// open range (m, n), skipping 8 bytes at a time (SWAR; m, n ≤ 128).
func skipNone(b []byte, i int, m, n uint64) int {
	const lo, hi = 0x0101010101010101, 0x8080808080808080
	for i+8 <= len(b) {
		x := binary.LittleEndian.Uint64(b[i:])
		if ((lo*(127+n)-(x&(lo*127)))&^x&((x&(lo*127))+lo*(127-m)))&hi != 0 {
			break
		}
		i += 8
	}
	return i
}

// ---- email ----------------------------------------------------------------

const (
	emailMaxLocal  = 64
	emailMaxDomain = 253
)

// scanEmail: local@domain where local is the maximal run of [A-Za-z0-9._%+-]
// (1..64 bytes, not starting or ending with '.') and domain the maximal run of
// [A-Za-z0-9.-] (trailing '.'/'-' trimmed) with at least two labels and an
// alphabetic TLD of two letters or more. A run bordered by another '@' on
// either side ("a@b.c@d") is not an address.
func scanEmail(b []byte, dst []Span, eof, cut bool) ([]Span, int) {
	n := len(b)
	hold := n
	if !eof {
		// A trailing run of local-part bytes may become an address.
		s := n
		for s > 0 && n-s <= emailMaxLocal && has(b[s-1], cLocal) {
			s--
		}
		if n-s <= emailMaxLocal {
			hold = s
		}
	}
	for off := 0; ; {
		i := bytes.IndexByte(b[off:], '@')
		if i < 0 {
			break
		}
		at := off + i
		off = at + 1
		s := at
		for s > 0 && at-s <= emailMaxLocal && has(b[s-1], cLocal) {
			s--
		}
		if s == at || at-s > emailMaxLocal {
			continue
		}
		if s == 0 && cut {
			continue
		}
		if s > 0 && b[s-1] == '@' {
			continue
		}
		if b[s] == '.' || b[at-1] == '.' {
			continue
		}
		e := at + 1
		for e < n && e-at-1 <= emailMaxDomain && has(b[e], cDomain) {
			e++
		}
		if e-at-1 > emailMaxDomain {
			continue
		}
		if e == n && !eof {
			hold = min(hold, s)
			continue
		}
		if e < n && b[e] == '@' {
			continue
		}
		end := e
		for end > at+1 && (b[end-1] == '.' || b[end-1] == '-') {
			end--
		}
		if !validDomain(b[at+1 : end]) {
			continue
		}
		dst = append(dst, Span{s, end, KindEmail})
	}
	return dst, hold
}

func validDomain(d []byte) bool {
	labels := 0
	for len(d) > 0 {
		i := bytes.IndexByte(d, '.')
		last := i < 0
		if last {
			i = len(d)
		}
		l := d[:i]
		if len(l) == 0 || len(l) > 63 || l[0] == '-' || l[len(l)-1] == '-' {
			return false
		}
		labels++
		if last {
			if labels < 2 || len(l) < 2 {
				return false
			}
			for _, c := range l {
				if !has(c, cUpper|cLower) {
					return false
				}
			}
			return true
		}
		d = d[i+1:]
	}
	return false
}

// ---- credit_card ----------------------------------------------------------

func cardOK(d []byte) bool {
	n := len(d)
	p2 := int(d[0]-'0')*10 + int(d[1]-'0')
	p3 := p2*10 + int(d[2]-'0')
	p4 := p3*10 + int(d[3]-'0')
	ok := false
	switch {
	case d[0] == '4': // Visa
		ok = n == 13 || n == 16 || n == 19
	case p2 >= 51 && p2 <= 55, p4 >= 2221 && p4 <= 2720: // Mastercard
		ok = n == 16
	case p2 == 34 || p2 == 37: // Amex
		ok = n == 15
	case p3 >= 300 && p3 <= 305, p2 == 36, p2 == 38, p2 == 39: // Diners
		ok = n >= 14
	case p4 >= 3528 && p4 <= 3589, // JCB
		p4 == 6011, p3 >= 644 && p3 <= 649, p2 == 65, // Discover
		p2 == 62: // UnionPay
		ok = n >= 16
	case p2 == 50, p2 >= 56 && p2 <= 58, p2 == 63, p2 == 67: // Maestro
		ok = true
	}
	return ok && luhn(d)
}

func luhn(d []byte) bool {
	sum := 0
	dbl := false
	for i := len(d) - 1; i >= 0; i-- {
		v := int(d[i] - '0')
		if dbl {
			v *= 2
			if v > 9 {
				v -= 9
			}
		}
		sum += v
		dbl = !dbl
	}
	return sum%10 == 0
}

// ---- iban -----------------------------------------------------------------

var ibanLen [26 * 26]uint8

func init() {
	const table = "AD24 AE23 AL28 AT20 AZ28 BA20 BE16 BG22 BH22 BR29 BY28 CH21 CR22 CY28 CZ24 " +
		"DE22 DK18 DO28 EE20 EG29 ES24 FI18 FO18 FR27 GB22 GE22 GI23 GL18 GR27 GT28 " +
		"HR21 HU28 IE22 IL23 IQ23 IS26 IT27 JO30 KW30 KZ20 LB28 LC32 LI21 LT20 LU20 " +
		"LV21 LY25 MC27 MD24 ME22 MK19 MR27 MT31 MU30 NL18 NO15 PK24 PL28 PS29 PT25 " +
		"QA29 RO24 RS22 SA24 SC31 SE24 SI19 SK24 SM27 ST25 SV28 TL23 TN24 TR26 UA29 " +
		"VA22 VG24 XK20"
	for i := 0; i+4 <= len(table); i += 5 {
		ibanLen[int(table[i]-'A')*26+int(table[i+1]-'A')] = (table[i+2]-'0')*10 + table[i+3] - '0'
	}
}

// scanIBAN: a country code with a known IBAN length, two check digits and the
// BBAN in upper case, compact or with single spaces or dashes between
// characters (printed groups of four), bordered by non-alphanumerics, whose
// mod-97 check (ISO 13616) equals 1.
func scanIBAN(b []byte, dst []Span, eof, cut bool) ([]Span, int) {
	n := len(b)
	hold := n
	for i := 0; i < n; i++ {
		if !has(b[i], cUpper) {
			if j := skipNone(b, i+1, 'A'-1, 'Z'+1); j > i+1 {
				i = j - 1
			}
			continue
		}
		if i > 0 && has(b[i-1], cAlnum) {
			continue
		}
		if i == 0 && cut {
			continue
		}
		ok, touched := true, false
		for k, m := range [3]uint16{cUpper, cDigit, cDigit} {
			j := i + 1 + k
			if j >= n {
				touched = true
				break
			}
			if !has(b[j], m) {
				ok = false
				break
			}
		}
		if !ok {
			continue
		}
		if touched {
			if !eof {
				hold = min(hold, i)
			}
			continue
		}
		L := int(ibanLen[int(b[i]-'A')*26+int(b[i+1]-'A')])
		if L == 0 {
			continue
		}
		var v [34]byte
		m, j := 0, i
		for m < L {
			if j == n {
				touched = true
				break
			}
			c := b[j]
			if has(c, cUpper|cDigit) {
				v[m] = c
				m++
				j++
				continue
			}
			if (c == ' ' || c == '-') && m > 0 {
				if j+1 == n {
					touched = true
					break
				}
				if has(b[j+1], cUpper|cDigit) {
					j++
					continue
				}
			}
			break
		}
		if touched || (j == n && !eof) {
			if !eof {
				hold = min(hold, i)
			}
			continue
		}
		if m < L || (j < n && has(b[j], cAlnum)) {
			continue
		}
		if !mod97(v[:L]) {
			continue
		}
		dst = append(dst, Span{i, j, KindIBAN})
	}
	return dst, hold
}

func mod97(v []byte) bool {
	r := 0
	step := func(c byte) {
		if c <= '9' {
			r = (r*10 + int(c-'0')) % 97
		} else {
			r = (r*100 + int(c-'A') + 10) % 97
		}
	}
	for _, c := range v[4:] {
		step(c)
	}
	for _, c := range v[:4] {
		step(c)
	}
	return r == 1
}

// ---- prefixed tokens -------------------------------------------------------

type prefixRule struct {
	prefix   string
	body     uint16 // class of the bytes after the prefix
	min, max int    // length of the body
	pb       []byte // prefix, set by init
}

// scanPrefixed: prefix + body where the prefix is not preceded by a word byte
// and the body is the maximal run of its class, min..max bytes long, not
// followed by a word byte.
func scanPrefixed(kind string, rules []prefixRule, b []byte, dst []Span, eof, cut bool) ([]Span, int) {
	n := len(b)
	hold := n
	for _, r := range rules {
		if !eof {
			hold = min(hold, partialSuffix(b, r.prefix))
		}
		for off := 0; ; {
			i := bytes.Index(b[off:], r.pb)
			if i < 0 {
				break
			}
			s := off + i
			off = s + 1
			if (s == 0 && cut) || (s > 0 && has(b[s-1], cWord)) {
				continue
			}
			j := s + len(r.prefix)
			lim := j + r.max
			for j < n && j <= lim && has(b[j], r.body) {
				j++
			}
			cnt := j - s - len(r.prefix)
			if cnt > r.max {
				continue
			}
			if j == n && !eof {
				hold = min(hold, s)
				continue
			}
			if j < n && has(b[j], cWord|r.body) {
				continue
			}
			if cnt < r.min {
				continue
			}
			dst = append(dst, Span{s, j, kind})
		}
	}
	return dst, hold
}

var (
	awsAccessRules = []prefixRule{
		{"AKIA", cUpper | cDigit, 16, 16, nil},
		{"ASIA", cUpper | cDigit, 16, 16, nil},
	}
	githubRules = []prefixRule{
		{"ghp_", cAlnum, 36, 251, nil},
		{"gho_", cAlnum, 36, 251, nil},
		{"ghu_", cAlnum, 36, 251, nil},
		{"ghs_", cAlnum, 36, 251, nil},
		{"ghr_", cAlnum, 36, 251, nil},
	}
	// Not behind the "gh" gate: "github_pat_" holds no "gh".
	githubPATRules = []prefixRule{
		{"github_pat_", cWord, 22, 244, nil},
	}
	gitlabRules = []prefixRule{
		{"glpat-", cURL, 20, 300, nil}, // routable payloads reach 300
		{"glptt-", cURL, 20, 250, nil},
		{"gldt-", cURL, 20, 250, nil},
		{"glrt-", cURL, 20, 250, nil},
	}
	slackRules = []prefixRule{
		{"xoxa-", cAlnum | cDash, 10, 250, nil},
		{"xoxb-", cAlnum | cDash, 10, 250, nil},
		{"xoxp-", cAlnum | cDash, 10, 250, nil},
		{"xoxo-", cAlnum | cDash, 10, 250, nil},
		{"xoxs-", cAlnum | cDash, 10, 250, nil},
		{"xoxr-", cAlnum | cDash, 10, 250, nil},
		// Rotating tokens: config access and refresh tokens.
		{"xoxe.xoxp-", cAlnum | cDash, 10, 250, nil},
		{"xoxe.xoxb-", cAlnum | cDash, 10, 250, nil},
		{"xoxe-", cAlnum | cDash, 10, 250, nil},
	}
)

func init() {
	for _, rs := range [][]prefixRule{awsAccessRules, githubRules, githubPATRules, gitlabRules, slackRules} {
		for i := range rs {
			rs[i].pb = []byte(rs[i].prefix)
		}
	}
}

func scanAWSAccess(b []byte, dst []Span, eof, cut bool) ([]Span, int) {
	return scanPrefixed(KindAWSAccess, awsAccessRules, b, dst, eof, cut)
}

// gated runs rules only when b holds gate, which every prefix starts with:
// one bytes.Index instead of one per prefix on the common no-token path.
func gated(kind, gate string, rules []prefixRule, b []byte, dst []Span, eof, cut bool) ([]Span, int) {
	hold := len(b)
	if !eof {
		hold = partialSuffix(b, gate)
	}
	if bytes.Index(b, []byte(gate)) < 0 {
		return dst, hold
	}
	dst, h := scanPrefixed(kind, rules, b, dst, eof, cut)
	return dst, min(hold, h)
}

func scanGitHub(b []byte, dst []Span, eof, cut bool) ([]Span, int) {
	dst, h1 := gated(KindGitHub, "gh", githubRules, b, dst, eof, cut)
	dst, h2 := scanPrefixed(KindGitHub, githubPATRules, b, dst, eof, cut)
	return dst, min(h1, h2)
}

// scanGitLab also masks the ".<part>" suffixes of routable tokens
// (glpat-<payload>.<version><crc>): the prefix rules stop at the first '.'.
func scanGitLab(b []byte, dst []Span, eof, cut bool) ([]Span, int) {
	base := len(dst)
	dst, hold := gated(KindGitLab, "gl", gitlabRules, b, dst, eof, cut)
	k := base
	for _, sp := range dst[base:] {
		e, wait := dotParts(b, sp.End, eof)
		if wait {
			hold = min(hold, sp.Start)
			continue
		}
		sp.End = e
		dst[k] = sp
		k++
	}
	return dst[:k], hold
}

// dotTailMax bounds the ".<part>" suffixes dotParts adds to a token.
const dotTailMax = 64

// dotParts returns the end of the ".<part>" runs ([A-Za-z0-9_-]) that
// follow a token ending at e, at most dotTailMax bytes of them; wait is
// true when more input could extend them.
func dotParts(b []byte, e int, eof bool) (end int, wait bool) {
	n := len(b)
	k := e
	for k < n && b[k] == '.' {
		if k+1 == n {
			return k, !eof
		}
		if !has(b[k+1], cURL) {
			break
		}
		m := k + 1
		for m < n && m-e <= dotTailMax && has(b[m], cURL) {
			m++
		}
		if m-e > dotTailMax {
			break
		}
		if m == n && !eof {
			return m, true
		}
		k = m
	}
	return k, false
}

func scanSlack(b []byte, dst []Span, eof, cut bool) ([]Span, int) {
	return gated(KindSlack, "xox", slackRules, b, dst, eof, cut)
}

// ---- jwt ------------------------------------------------------------------

const jwtMax = 4096

// scanJWT: a maximal run of [A-Za-z0-9_-.] starting with "eyJ", at most 4096
// bytes, with exactly two dots once trailing extra dots are dropped (header ≥
// 10 bytes, payload ≥ 2, signature possibly empty for alg "none"), whose
// header base64url-decodes to a JSON object with an "alg" member.
func scanJWT(b []byte, dst []Span, eof, cut bool) ([]Span, int) {
	n := len(b)
	hold := n
	if !eof {
		hold = partialSuffix(b, "eyJ")
	}
	isJ := func(c byte) bool { return has(c, cURL) || c == '.' }
	for off := 1; off < n; {
		i := bytes.Index(b[off:], []byte("yJ")) // 'y' is rarer than 'e'
		if i < 0 {
			break
		}
		s := off + i - 1
		off = s + 2
		if b[s] != 'e' {
			continue
		}
		if (s == 0 && cut) || (s > 0 && isJ(b[s-1])) {
			continue
		}
		j := s
		for j < n && j-s <= jwtMax && isJ(b[j]) {
			j++
		}
		if j-s > jwtMax {
			continue
		}
		if j == n && !eof {
			hold = min(hold, s)
			continue
		}
		e := j
		dots := bytes.Count(b[s:e], []byte{'.'})
		for dots > 2 && b[e-1] == '.' {
			e--
			dots--
		}
		if dots != 2 {
			continue
		}
		d1 := s + bytes.IndexByte(b[s:e], '.')
		d2 := d1 + 1 + bytes.IndexByte(b[d1+1:e], '.')
		if d1-s < 10 || d2-d1-1 < 2 || !jwtHeaderOK(b[s:d1]) {
			continue
		}
		dst = append(dst, Span{s, e, KindJWT})
		off = max(off, e)
	}
	return dst, hold
}

func jwtHeaderOK(h []byte) bool {
	if len(h) > 1024 || bytes.IndexByte(h, '.') >= 0 {
		return false
	}
	var buf [768]byte
	n, err := base64.RawURLEncoding.Decode(buf[:], h)
	if err != nil {
		return false
	}
	d := bytes.TrimSpace(buf[:n])
	if len(d) == 0 || d[0] != '{' || !bytes.Contains(d, []byte(`"alg"`)) {
		return false
	}
	var m map[string]json.RawMessage
	if json.Unmarshal(d, &m) != nil {
		return false
	}
	_, ok := m["alg"]
	return ok
}

// ---- pem_private_key ------------------------------------------------------

// pemMax caps a PEM span (and so the stream's hold-back); an 8192-bit RSA key
// is about 6.5 KiB.
const pemMax = MaxHold

// scanPEM: "-----BEGIN <label>-----" whose label (≤ 64 bytes of [A-Z0-9 ])
// ends in "PRIVATE KEY" or "PRIVATE KEY BLOCK", through the end of the next
// "-----END <label>-----" line. Without an END within pemMax bytes of BEGIN the
// span is the first pemMax bytes (or up to the end of the text): a truncated
// key is masked rather than leaked.
func scanPEM(b []byte, dst []Span, eof, _ bool) ([]Span, int) {
	const begin, end, dashes = "-----BEGIN ", "-----END ", "-----"
	n := len(b)
	hold := n
	if !eof {
		hold = partialSuffix(b, begin)
	}
	endAt := -1 // first "-----END " at or after the last body searched, n if none
	for off := 0; ; {
		i := bytes.Index(b[off:], []byte(begin))
		if i < 0 {
			break
		}
		s := off + i
		off = s + 1
		ls := s + len(begin)
		k := ls
		for k < n && k-ls <= 64 && (has(b[k], cUpper|cDigit) || b[k] == ' ') {
			k++
		}
		if k-ls > 64 {
			continue
		}
		if !hasPrefixAt(b, k, dashes) {
			if !eof && n-k < len(dashes) && string(b[k:]) == dashes[:n-k] {
				hold = min(hold, s)
			}
			continue
		}
		label := bytes.TrimRight(b[ls:k], " ")
		if !bytes.HasSuffix(label, []byte("PRIVATE KEY")) && !bytes.HasSuffix(label, []byte("PRIVATE KEY BLOCK")) {
			continue
		}
		body := k + len(dashes)
		limit := s + pemMax
		if endAt != -1 && endAt < body {
			endAt = -1 // BEGINs come in order: search again only past body
		}
		if endAt == -1 {
			endAt = n
			if x := bytes.Index(b[body:], []byte(end)); x >= 0 {
				endAt = body + x
			}
		}
		e := -1
		if endAt+len(end) <= min(n, limit) {
			ep := endAt + len(end)
			lim2 := min(ep+70, limit)
			if y := bytes.Index(b[ep:min(n, lim2)], []byte(dashes)); y >= 0 {
				e = ep + y + len(dashes)
			} else if lim2 <= n || eof {
				e = min(ep, n)
			}
		} else if limit <= n {
			e = limit
		} else if eof {
			e = n
		}
		if e < 0 {
			hold = min(hold, s)
			continue
		}
		dst = append(dst, Span{s, e, KindPEM})
	}
	return dst, hold
}

// ---- aws_secret_key -------------------------------------------------------

const awsHintDist = 64

// awsHints are found by an anchor (rarer than the hint's first byte) at
// offset off in the hint.
var awsHints = []struct {
	anchor string
	off    int
	hints  []string
}{
	{"ws", 1, []string{"aws", "Aws"}},
	{"WS", 1, []string{"AWS"}},
	{"cre", 2, []string{"secret", "Secret"}},
	{"CRE", 2, []string{"SECRET"}},
}

// scanAWSSecret: a maximal run of exactly 40 bytes of [A-Za-z0-9/+] (not
// followed by '=' padding) holding an upper-case letter, a lower-case
// letter and a digit, starting at most 64 bytes after a hint: "aws", "AWS",
// "Aws", "secret", "Secret" or "SECRET" (aws_secret_access_key=…,
// "SecretAccessKey": "…"). The hint must come before the key.
func scanAWSSecret(b []byte, dst []Span, eof, _ bool) ([]Span, int) {
	n := len(b)
	hold := n
	for _, a := range awsHints {
		for off := 0; ; {
			i := bytes.Index(b[off:], []byte(a.anchor))
			if i < 0 {
				break
			}
			hs := off + i - a.off
			off += i + 1
			he := -1
			for _, h := range a.hints {
				if hasPrefixAt(b, hs, h) {
					he = hs + len(h)
				}
			}
			if he < 0 {
				continue
			}
			p := he
			if p < n && has(b[p-1], cAWS) {
				for p < n && p <= he+awsHintDist && has(b[p], cAWS) {
					p++
				}
			}
			for p < n && p <= he+awsHintDist {
				if !has(b[p], cAWS) {
					p++
					continue
				}
				rs := p
				for p < n && p-rs <= 40 && has(b[p], cAWS) {
					p++
				}
				if p-rs > 40 {
					for p < n && p <= he+awsHintDist && has(b[p], cAWS) {
						p++
					}
					continue
				}
				if p == n && !eof {
					hold = min(hold, rs)
					break
				}
				if p-rs == 40 && (p == n || b[p] != '=') && awsSecretShape(b[rs:p]) {
					dst = append(dst, Span{rs, p, KindAWSSecret})
				}
			}
		}
	}
	return dst, hold
}

func awsSecretShape(t []byte) bool {
	var m uint16
	for _, c := range t {
		m |= class[c]
	}
	return m&cUpper != 0 && m&cLower != 0 && m&cDigit != 0
}

// ---- password_assignment ----------------------------------------------------

// pwMaxPrefix bounds the bytes between a key's start and its value's start:
// "passphrase" + quote + 4 blanks + ":=" + 4 blanks + quote.
const (
	pwMaxPrefix = 10 + 1 + 4 + 2 + 4 + 1 + 1
	pwMaxValue  = 256
)

// scanPassword: a key "password", "passwd", "passphrase" or "pwd" in any ASCII
// case that is all-lower, all-upper or capitalised for the first byte
// ("db_password", "PGPASSWORD", "Pwd" match: any bytes may come before the
// key), then an optional closing quote, up to 4 blanks, '=' or ':' or ":="
// (not "=="), up to 4 blanks, and the value: either quoted ('…' or "…", no
// newline, closing quote within 256 bytes; the span is inside the quotes) or
// the run of bytes up to whitespace or one of "'`,;&)}]<> (at most the first
// 256 bytes are masked). Only the value is reported.
func scanPassword(b []byte, dst []Span, eof, _ bool) ([]Span, int) {
	n := len(b)
	hold := n
	// Anchors: the 'w' of "password"/"passwd"/"pwd" (4 or 1 bytes in) and
	// the "phr" of "passphrase" (4 bytes in); 'w' is rarer than 'a' or 's'.
	for _, a := range [...]struct {
		anchor string
		offs   []int
	}{{"w", []int{4, 1}}, {"W", []int{4, 1}}, {"phr", []int{4}}, {"PHR", []int{4}}} {
		for off := 0; ; {
			i := bytes.Index(b[off:], []byte(a.anchor))
			if i < 0 {
				break
			}
			at := off + i
			off = at + 1
			for _, o := range a.offs {
				ks, ke := at-o, -1
				if o == 1 {
					if hasFoldAt(b, ks, "pwd") {
						ke = ks + 3
					}
				} else {
					for _, k := range [...]string{"password", "passwd", "passphrase"} {
						if hasFoldAt(b, ks, k) {
							ke = ks + len(k)
							break
						}
					}
				}
				if ke < 0 {
					continue
				}
				var h int
				dst, h = passwordValue(b, ke, dst, eof)
				hold = min(hold, h)
			}
		}
	}
	return dst, hold
}

func passwordValue(b []byte, j int, dst []Span, eof bool) ([]Span, int) {
	n := len(b)
	if j < n && (b[j] == '"' || b[j] == '\'') {
		j++
	}
	blanks := func() bool {
		for k := 0; j < n && (b[j] == ' ' || b[j] == '\t'); k++ {
			if k == 4 {
				return false
			}
			j++
		}
		return true
	}
	if !blanks() || j == n {
		return dst, n
	}
	switch b[j] {
	case '=':
		j++
		if j < n && b[j] == '=' {
			return dst, n // a comparison
		}
		if j < n && b[j] == '>' {
			j++ // "password" => "…"
		}
	case ':':
		j++
		if j < n && b[j] == '=' {
			j++
		}
	default:
		return dst, n
	}
	if !blanks() || j == n {
		return dst, n
	}
	if q := b[j]; q == '"' || q == '\'' {
		vs := j + 1
		for k := vs; ; k++ {
			if k == n {
				if eof {
					return dst, n
				}
				return dst, vs
			}
			if b[k] == '\n' || k-vs >= pwMaxValue {
				return dst, n
			}
			if b[k] == q {
				if k > vs {
					dst = append(dst, Span{vs, k, KindPassword})
				}
				return dst, n
			}
		}
	}
	vs := j
	for j < n && j-vs < pwMaxValue {
		c := b[j]
		if !has(c, cPwStop) {
			j++
			continue
		}
		// Whitespace and quotes end a value. Other stops end it only
		// where they separate: "&user=", ";Host=", ", next=" before a
		// key, or a closing bracket before the end of the text, a blank
		// or more punctuation; elsewhere they are part of the password
		// ("p@ss,w0rd)x"), which must be masked whole.
		end, decided := pwValueEnds(b, j, eof)
		if !decided {
			return dst, vs
		}
		if end {
			break
		}
		j++
	}
	if j == n && j-vs < pwMaxValue && !eof {
		return dst, vs
	}
	if j > vs && !settingValue(b[vs:j]) {
		dst = append(dst, Span{vs, j, KindPassword})
	}
	return dst, n
}

// pwKeyMax bounds the key a separator in a password value may be followed
// by ("&user=").
const pwKeyMax = 32

// pwValueEnds decides whether the stop byte b[j] ends an unquoted password
// value; decided is false when that depends on bytes not yet received.
func pwValueEnds(b []byte, j int, eof bool) (end, decided bool) {
	switch c := b[j]; c {
	case ' ', '\t', '\r', '\n', '\v', '\f', '"', '\'', '`', '<', '>':
		return true, true
	case '&', ';', ',':
		// At the end, or before a blank: a terminator ("pwd=x;").
		if j+1 == len(b) {
			return eof, eof
		}
		if isSpace(b[j+1]) && c != ',' {
			return true, true
		}
		// A key and '=' follow: the next parameter.
		k := j + 1
		for k < len(b) && k-j <= pwKeyMax+1 && (has(b[k], cWord) || b[k] == '.' || b[k] == '-' || (c == ',' && b[k] == ' ' && k == j+1)) {
			k++
		}
		if k == len(b) && k-j <= pwKeyMax+1 {
			return eof, eof
		}
		return k < len(b) && k > j+1 && b[k] == '=', true
	default: // ')', '}', ']'
		if j+1 == len(b) {
			return eof, eof
		}
		n := b[j+1]
		return isSpace(n) || has(n, cPwStop), true
	}
}

// settingValue: an unquoted value that is a setting, not a password
// ("PuttyPassword=0", "require_password=true"), as gitleaks' global
// allowlist also decides.
func settingValue(v []byte) bool {
	if len(v) == 1 {
		return true
	}
	switch strings.ToLower(string(v)) {
	case "true", "false", "null", "none", "yes", "no", "on", "off":
		return true
	}
	return false
}

// ---- high_entropy ---------------------------------------------------------

const (
	entropyMinLen = 20
	entropyMaxLen = 256
	// entropyFactor: a token is flagged when its Shannon entropy (bits per
	// byte) is at least min(entropyFactor × log2(len), entropyCap); log2(len)
	// is the most a token of that length can reach.
	entropyFactor = 0.8
	entropyCap    = 5.3 // bits; random base64 of 100+ bytes averages 5.5+
	// entropyMaxRun is the largest mean length of the runs of one class
	// (upper, lower, digit, other) a token may have.
	entropyMaxRun = 2.5
)

// scanEntropy: maximal runs of [A-Za-z0-9+/_-] of 20..256 bytes that contain
// an upper-case letter, a lower-case letter and a digit, are not made only of
// hex digits and '-' (git SHAs, SHA-256 sums, UUIDs are left alone on
// purpose), and whose Shannon entropy reaches entropyFactor of the maximum for
// their length. Longer runs (inline images, blobs) are not flagged.
func scanEntropy(b []byte, dst []Span, eof, cut bool) ([]Span, int) {
	n := len(b)
	hold := n
	for i := 0; i < n; {
		if !has(b[i], cTok) {
			i++
			continue
		}
		s := i
		for i < n && has(b[i], cTok) {
			i++
		}
		L := i - s
		if (L < entropyMinLen && i < n) || L > entropyMaxLen || (s < entropyCtx && cut) {
			continue
		}
		// The payload of a data: URI ("data:image/png;base64,iVBOR…")
		// is an encoded file, not a secret: small images were 4% of
		// false positives on lookalikes.
		if s >= len(base64Marker) && string(b[s-len(base64Marker):s]) == base64Marker {
			continue
		}
		if i == n && !eof {
			hold = min(hold, s)
			continue
		}
		if L >= entropyMinLen && highEntropy(b[s:i]) {
			dst = append(dst, Span{s, i, KindHighEntropy})
		}
	}
	return dst, hold
}

// base64Marker ends the header of a base64 data: URI.
const base64Marker = ";base64,"

// entropyCtx is how far before a token scanEntropy reads: the marker and
// the byte before the token.
const entropyCtx = len(base64Marker) + 1

func highEntropy(t []byte) bool {
	var m, hex uint16 = 0, cHex
	for _, c := range t {
		m |= class[c]
		hex &= class[c]
	}
	if hex != 0 || m&cUpper == 0 || m&cLower == 0 || m&cDigit == 0 {
		return false
	}
	// Words: identifiers such as "AbstractSingletonProxyFactoryBean2" have
	// long runs of one character class; random base64 switches class
	// about every 1.5 bytes.
	runs := 1
	for i := 1; i < len(t); i++ {
		if class[t[i]]&(cUpper|cLower|cDigit) != class[t[i-1]]&(cUpper|cLower|cDigit) {
			runs++
		}
	}
	if float64(len(t)) > entropyMaxRun*float64(runs) {
		return false
	}
	return entropy(t) >= min(entropyFactor*math.Log2(float64(len(t))), entropyCap)
}

func entropy(t []byte) float64 {
	var cnt [128]uint16
	for _, c := range t {
		cnt[c&0x7f]++
	}
	n := float64(len(t))
	h := 0.0
	for _, c := range cnt {
		if c != 0 {
			p := float64(c) / n
			h -= p * math.Log2(p)
		}
	}
	return h
}
