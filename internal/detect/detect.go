// Package detect is the host-side secret scanner that plugins call instead of
// scanning bytes inside their WebAssembly guest.
//
// A Detector finds spans of one kind in a byte slice; Builtin returns the
// hand-written detectors and Pattern compiles an operator's regexp. A Set runs
// several detectors and merges their spans, Mask rewrites the spans with a
// Strategy, and Stream does the same over a chunked byte stream (SSH output, an
// HTTP body) with output identical to masking the whole text at once.
//
// The builtin detectors never run a regexp: each one looks for a cheap trigger
// first (a byte such as '@', a literal prefix such as "AKIA" found with
// bytes.Index, a digit or a token run) and only then validates the candidate.
// Every decision a builtin makes reads a bounded neighbourhood of its span,
// which is what lets Stream hold back only a few bytes.
package detect

import (
	"fmt"
	"strings"
)

// Span is a half-open byte range [Start, End) of the input holding a secret of
// the given Kind.
type Span struct {
	Start, End int
	Kind       string
}

// Detector finds spans of one kind. Find appends the spans found in b to dst
// and returns the extended slice; spans from one detector may overlap and need
// not be sorted (a Set sorts and merges them).
type Detector interface {
	Kind() string
	Find(b []byte, dst []Span) []Span
}

// Kinds of the builtin detectors (also their names for Builtin).
const (
	KindEmail       = "email"
	KindCreditCard  = "credit_card"
	KindIBAN        = "iban"
	KindAWSAccess   = "aws_access_key"
	KindAWSSecret   = "aws_secret_key"
	KindGitHub      = "github_token"
	KindGitLab      = "gitlab_token"
	KindSlack       = "slack_token"
	KindJWT         = "jwt"
	KindPEM         = "pem_private_key"
	KindPassword    = "password_assignment"
	KindHighEntropy = "high_entropy"
)

// scanner is implemented by the builtin and Pattern detectors. It is the
// streaming form of Find.
type scanner interface {
	Detector
	// scan appends the spans found in b to dst.
	//
	// When eof is false, b may be continued: a candidate whose decision
	// would read past len(b) is not reported, and hold is lowered to the
	// earliest index where such a span could start. Spans reported and
	// spans starting before hold are final whatever is appended.
	//
	// When cut is true, b[0] is not the start of the text: a candidate
	// whose decision would read before b[0] is skipped (its span starts
	// within back() bytes of b[0], where a stream has already decided).
	scan(b []byte, dst []Span, eof, cut bool) (spans []Span, hold int)
	// back is how many bytes before a span's start its decision may read.
	back() int
}

type builtin struct {
	kind string
	fn   func(b []byte, dst []Span, eof, cut bool) ([]Span, int)
	ctx  int
	min  int // shortest span: Find skips shorter inputs (row cells)
	// need is what every span of this kind holds (a byte, a count of
	// digits), checked against a Set's one-pass summary of the whole
	// input before the scanner runs; nil: nothing cheap to check.
	need func(summary) bool
}

// summary is what one pass over an input learns for the builtins' needs:
// most row cells (names, amounts, hashes) lack what most detectors need,
// and one pass is cheaper than a dozen scanners each finding so.
type summary struct {
	has    uint8 // sXxx bits of the bytes present
	digits int
}

const (
	sAt     uint8 = 1 << iota // '@'
	sAssign                   // '=' or ':'
	sDash                     // '-'
	sUnder                    // '_'
	sUpper                    // 'A'..'Z'
	sDot                      // '.'
)

var summaryBits [256]uint8

func init() {
	for c := 'A'; c <= 'Z'; c++ {
		summaryBits[c] = sUpper
	}
	summaryBits['@'] = sAt
	summaryBits['='], summaryBits[':'] = sAssign, sAssign
	summaryBits['-'] = sDash
	summaryBits['_'] = sUnder
	summaryBits['.'] = sDot
}

func summarize(b []byte) summary {
	var s summary
	for _, c := range b {
		s.has |= summaryBits[c]
		if c-'0' <= 9 {
			s.digits++
		}
	}
	return s
}

func needs(bits uint8) func(summary) bool {
	return func(s summary) bool { return s.has&bits == bits }
}

func (d *builtin) Kind() string { return d.kind }

func (d *builtin) Find(b []byte, dst []Span) []Span {
	if len(b) < d.min {
		return dst
	}
	dst, _ = d.fn(b, dst, true, false)
	return dst
}

func (d *builtin) scan(b []byte, dst []Span, eof, cut bool) ([]Span, int) {
	return d.fn(b, dst, eof, cut)
}

func (d *builtin) back() int { return d.ctx }

// The needs follow from each scanner's doc: "-----BEGIN ", "eyJ" with
// two dots, "AKIA"/"ASIA", "gh…_", "gl…-", "xox…-", 13 digits, a country
// code and check digits, '@', '=' or ':'. TestNeedsNeverHideASpan and
// FuzzNeeds hold the Set to what the scanners alone find.
var builtins = []*builtin{
	{KindPEM, scanPEM, 0, 27, needs(sDash | sUpper)},
	{KindJWT, scanJWT, 1, 14, needs(sDot | sUpper)},
	{KindAWSAccess, scanAWSAccess, 1, 20, needs(sUpper)},
	{KindAWSSecret, scanAWSSecret, awsHintDist + 6 + 1, 43, nil},
	{KindGitHub, scanGitHub, 1, 33, needs(sUnder)},
	{KindGitLab, scanGitLab, 1, 25, needs(sDash)},
	{KindSlack, scanSlack, 1, 15, needs(sDash)},
	{KindCreditCard, scanCard, cardCtx, 13, func(s summary) bool { return s.digits >= 13 }},
	{KindIBAN, scanIBAN, 1, 15, func(s summary) bool { return s.has&sUpper != 0 && s.digits >= 2 }},
	{KindPhone, phoneScanner{}.scan, phoneCtx, phoneMinDigits, phoneNeed},
	{KindURLCredentials, scanURLCred, urlCtx, 8, nil},
	{KindEmail, scanEmail, 1, 6, needs(sAt)},
	{KindPassword, scanPassword, pwMaxPrefix, 5, needs(sAssign)},
	{KindHighEntropy, scanEntropy, entropyCtx, entropyMinLen, nil},
}

// Names lists the builtin detector names, specific kinds first and
// high_entropy last (the order a Set uses to pick the kind of two spans with
// the same extent).
func Names() []string {
	out := make([]string, len(builtins))
	for i, d := range builtins {
		out[i] = d.kind
	}
	return out
}

// Builtin returns the builtin detector with the given name (see Names).
// Detectors are stateless and safe for concurrent use. The "phone" builtin
// finds numbers in international format only; Phone adds national ones.
func Builtin(name string) (Detector, error) {
	for _, d := range builtins {
		if d.kind == name {
			return d, nil
		}
	}
	return nil, fmt.Errorf("detect: unknown detector %q (have %s)", name, strings.Join(Names(), ", "))
}

// Character classes.
const (
	cDigit uint16 = 1 << iota
	cUpper
	cLower
	cUnder  // '_'
	cLocal  // email local part: [A-Za-z0-9._%+-]
	cDomain // email domain: [A-Za-z0-9.-]
	cTok    // high_entropy token: [A-Za-z0-9+/_-]
	cAWS    // AWS secret: [A-Za-z0-9/+]
	cURL    // base64url: [A-Za-z0-9_-]
	cHex    // [0-9a-fA-F-]
	cPwStop // ends an unquoted password value
	cDash   // '-'

	cAlnum = cDigit | cUpper | cLower
	cWord  = cAlnum | cUnder
)

var class [256]uint16

func init() {
	for c := 0; c < 256; c++ {
		var m uint16
		switch {
		case c >= '0' && c <= '9':
			m |= cDigit | cHex
		case c >= 'A' && c <= 'Z':
			m |= cUpper
			if c <= 'F' {
				m |= cHex
			}
		case c >= 'a' && c <= 'z':
			m |= cLower
			if c <= 'f' {
				m |= cHex
			}
		}
		if m&cAlnum != 0 {
			m |= cLocal | cDomain | cTok | cAWS | cURL
		}
		class[c] = m
	}
	add := func(chars string, m uint16) {
		for i := 0; i < len(chars); i++ {
			class[chars[i]] |= m
		}
	}
	add("_", cUnder|cLocal|cTok|cURL)
	add(".%+-", cLocal)
	add(".-", cDomain)
	add("+/-", cTok)
	add("/+", cAWS)
	add("-", cURL|cHex|cDash)
	add(" \t\r\n\v\f\"'`,;&)}]<>", cPwStop)
}

func has(c byte, m uint16) bool { return class[c]&m != 0 }

// partialSuffix returns the earliest index i such that b[i:] is a non-empty
// proper prefix of p, or len(b): where a span starting with p may begin once
// more bytes arrive.
func partialSuffix(b []byte, p string) int {
	k := len(p) - 1
	if k > len(b) {
		k = len(b)
	}
	for ; k > 0; k-- {
		if string(b[len(b)-k:]) == p[:k] {
			return len(b) - k
		}
	}
	return len(b)
}

func hasPrefixAt(b []byte, i int, p string) bool {
	return i >= 0 && len(b)-i >= len(p) && string(b[i:i+len(p)]) == p
}

// hasFoldAt reports whether b[i:] starts with the lower-case ASCII word p,
// ignoring ASCII case.
func hasFoldAt(b []byte, i int, p string) bool {
	if i < 0 || len(b)-i < len(p) {
		return false
	}
	for k := 0; k < len(p); k++ {
		if b[i+k]|0x20 != p[k] {
			return false
		}
	}
	return true
}
