package detect

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strings"
	"unicode/utf8"
)

// Strategy says how Mask rewrites a span.
type Strategy uint8

const (
	// Redact replaces the span with "[REDACTED:<kind>]".
	Redact Strategy = iota
	// Partial keeps the length: every byte is replaced by '*' except the
	// last 4 characters (UTF-8 runes), which are kept when the span has at
	// least 8 runes; shorter spans are all '*'.
	Partial
	// Hash replaces the span with "hash:" and the first 16 hex digits of
	// HMAC-SHA256(key, value): equal values under the same per-deployment
	// key stay equal (joinable), without being readable. The kind is not
	// hashed, so the same value found by two detectors joins too.
	Hash
)

var strategyNames = [...]string{Redact: "redact", Partial: "partial", Hash: "hash"}

func (s Strategy) String() string {
	if int(s) < len(strategyNames) {
		return strategyNames[s]
	}
	return fmt.Sprintf("Strategy(%d)", uint8(s))
}

// ParseStrategy parses "redact", "partial" or "hash" (any case).
func ParseStrategy(s string) (Strategy, error) {
	for i, n := range strategyNames {
		if strings.EqualFold(s, n) {
			return Strategy(i), nil
		}
	}
	return 0, fmt.Errorf("detect: unknown mask strategy %q (have redact, partial, hash)", s)
}

// Mask appends b to dst with each span rewritten by st and returns the
// extended slice. spans must be sorted and non-overlapping, as Set.Find
// returns them (spans out of order or out of bounds are clipped). key is the
// HMAC key of Hash and is ignored otherwise.
func Mask(dst, b []byte, spans []Span, st Strategy, key []byte) []byte {
	return maskSpans(dst, b, spans, st, key, false, false)
}

// maskSpans is Mask where the first span (fragHead) or the last (fragTail)
// may be a fragment of a span a Stream had to split; fragments never reveal
// bytes.
func maskSpans(dst, b []byte, spans []Span, st Strategy, key []byte, fragHead, fragTail bool) []byte {
	prev := 0
	for i, sp := range spans {
		s, e := max(sp.Start, prev), min(sp.End, len(b))
		if s >= e {
			continue
		}
		dst = append(dst, b[prev:s]...)
		frag := (fragHead && i == 0) || (fragTail && i == len(spans)-1)
		dst = maskOne(dst, b[s:e], sp.Kind, st, key, frag)
		prev = e
	}
	return append(dst, b[prev:]...)
}

func maskOne(dst, v []byte, kind string, st Strategy, key []byte, frag bool) []byte {
	switch st {
	case Partial:
		keep := len(v)
		if !frag && utf8.RuneCount(v) >= 8 {
			for r := 0; r < 4; r++ {
				_, size := utf8.DecodeLastRune(v[:keep])
				keep -= size
			}
		}
		for range keep {
			dst = append(dst, '*')
		}
		return append(dst, v[keep:]...)
	case Hash:
		m := hmac.New(sha256.New, key)
		m.Write(v)
		var sum [sha256.Size]byte
		var hx [16]byte
		hex.Encode(hx[:], m.Sum(sum[:0])[:8])
		dst = append(dst, "hash:"...)
		return append(dst, hx[:]...)
	default:
		dst = append(dst, "[REDACTED:"...)
		dst = append(dst, kind...)
		return append(dst, ']')
	}
}
