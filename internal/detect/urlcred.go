package detect

import (
	"bytes"
	"encoding/base64"
	"unicode/utf8"
)

// KindURLCredentials is the kind of the url_credentials detector: the
// password of a URL's userinfo (postgres://user:PASSWORD@host, any scheme)
// and the base64 credential of an HTTP "Basic" authorization. The user and
// host are left readable: they say which account leaked, not how to use it.
const KindURLCredentials = "url_credentials"

const (
	urlUserMax = 128 // bytes of user before the ':'
	urlAuthMax = 512 // bytes of password and host after the ':'
	basicMax   = 512 // bytes of a Basic credential
	// urlCtx: a password's decision reads back to the scheme byte before
	// "://" (the user and ':' between); a Basic credential's to the byte
	// before "Basic" and up to 4 blanks.
	urlCtx = 3 + urlUserMax + 2
)

// scanURLCred finds URL passwords and Basic credentials (see scanURLPass
// and scanBasic).
func scanURLCred(b []byte, dst []Span, eof, cut bool) ([]Span, int) {
	dst, h1 := scanURLPass(b, dst, eof)
	dst, h2 := scanBasic(b, dst, eof, cut)
	return dst, min(h1, h2)
}

// urlStop ends a URL's authority (RFC 3986: '/', '?', '#') or the URL
// itself in text (blanks, quotes, angle brackets).
var urlStop [256]bool

func init() {
	for _, c := range []byte("/?#\\\"'`<> \t\r\n\v\f") {
		urlStop[c] = true
	}
}

// scanURLPass: "://" after a scheme byte ([A-Za-z0-9+.-]), a user of up to
// 128 bytes without ':' or '@', ':', and the rest of the authority (up to
// 512 bytes before '/', '?', '#', a blank, a quote or '<>'): the password
// is what lies between that ':' and the authority's last '@', and is
// reported when non-empty and followed by a host. A password holding '/',
// '?' or '#' must be percent-encoded (as URL parsers require) to be found
// whole; '@' and ':' may appear raw.
func scanURLPass(b []byte, dst []Span, eof bool) ([]Span, int) {
	n := len(b)
	hold := n
	if !eof {
		hold = partialSuffix(b, "://")
	}
	for off := 0; ; {
		i := bytes.Index(b[off:], []byte("://"))
		if i < 0 {
			break
		}
		p := off + i
		off = p + 1
		if p == 0 || !isSchemeByte(b[p-1]) {
			continue
		}
		u := p + 3
		for u < n && u-p-3 <= urlUserMax && b[u] != ':' && b[u] != '@' && !urlStop[b[u]] {
			u++
		}
		if u-p-3 > urlUserMax {
			continue
		}
		if u == n {
			if !eof {
				hold = min(hold, p)
			}
			continue
		}
		if b[u] != ':' {
			continue
		}
		at, k := -1, u+1
		for k < n && k-u <= urlAuthMax && !urlStop[b[k]] {
			if b[k] == '@' {
				at = k
			}
			k++
		}
		if k-u > urlAuthMax {
			continue
		}
		if k == n && !eof {
			hold = min(hold, p)
			continue
		}
		if at > u+1 && at+1 < k {
			dst = append(dst, Span{u + 1, at, KindURLCredentials})
		}
	}
	return dst, hold
}

func isSchemeByte(c byte) bool {
	return has(c, cAlnum) || c == '+' || c == '.' || c == '-'
}

// scanBasic: "Basic" (capitalised, lower or upper case) not preceded by a
// word byte, 1 to 4 blanks, and a run of 4 to 512 base64 bytes (with or
// without '=' padding) not followed by a word byte, that decodes to
// printable UTF-8 holding a ':' (user:password). The whole run is
// reported: it is the password, barely disguised.
func scanBasic(b []byte, dst []Span, eof, cut bool) ([]Span, int) {
	n := len(b)
	hold := n
	if !eof {
		hold = min(partialSuffix(b, "asic "), partialSuffix(b, "ASIC "))
	}
	for _, anchor := range [...]string{"asic", "ASIC"} {
		for off := 1; off < n; {
			i := bytes.Index(b[off:], []byte(anchor))
			if i < 0 {
				break
			}
			bs := off + i - 1 // the 'B'
			off = bs + 2
			if b[bs]|0x20 != 'b' || (anchor == "ASIC" && b[bs] != 'B') {
				continue
			}
			if bs == 0 && cut || bs > 0 && has(b[bs-1], cWord) {
				continue
			}
			j := bs + 5
			k := j
			for k < n && k-j <= 4 && (b[k] == ' ' || b[k] == '\t') {
				k++
			}
			if k == n {
				if !eof {
					hold = min(hold, bs)
				}
				continue
			}
			if k == j || k-j > 4 {
				continue
			}
			s := k
			for k < n && k-s <= basicMax && (has(b[k], cAlnum) || b[k] == '+' || b[k] == '/') {
				k++
			}
			pad := 0
			for k < n && pad < 2 && b[k] == '=' {
				k++
				pad++
			}
			if k-s > basicMax {
				continue
			}
			if k == n && !eof {
				hold = min(hold, s)
				continue
			}
			if k < n && (has(b[k], cWord) || b[k] == '+' || b[k] == '/' || b[k] == '=') {
				continue
			}
			if k-s-pad >= 4 && basicCred(b[s:k-pad]) {
				dst = append(dst, Span{s, k, KindURLCredentials})
			}
		}
	}
	return dst, hold
}

// basicCred reports whether t (unpadded base64) decodes to printable
// UTF-8 with a ':'.
func basicCred(t []byte) bool {
	var buf [basicMax * 3 / 4]byte
	m, err := base64.RawStdEncoding.Decode(buf[:], t)
	if err != nil {
		return false
	}
	d := buf[:m]
	if bytes.IndexByte(d, ':') < 0 || !utf8.Valid(d) {
		return false
	}
	for _, c := range d {
		if c < 0x20 || c == 0x7f {
			return false
		}
	}
	return true
}
