package approval

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"unicode/utf8"
)

// The canonical request
//
// An approval covers one request exactly: the protocol, kind, target and
// principal (issuer and subject) of the Request, and its Covered fields,
// which each protocol builds with HTTPCovered or StatementCovered. A retry
// (Resume) or a session grant (Granted) runs only when all of these are
// byte-identical; nothing is normalized, because any normalization is a
// place where two requests the upstream tells apart look the same here
// (reordered or duplicated query parameters, whitespace inside a SQL
// string literal).

// coveredHeaders are the request headers that change what the upstream
// does with the same method, path, query and body. Others (X-Request-Id,
// traceparent...) differ between attempts of one request.
var coveredHeaders = []string{"Content-Type", "Content-Encoding", "X-Http-Method-Override", "X-Http-Method", "X-Method-Override"}

// HTTPCovered is the canonical form of an HTTP request as it will reach
// the upstream: the method, the forwarded path (decoded, as the gateway
// re-encodes it), the raw query, the body's SHA-256 and length, and the
// headers that change its meaning (all their values, in order).
func HTTPCovered(method, path, rawQuery string, h http.Header, body []byte) map[string]string {
	sum := sha256.Sum256(body)
	c := map[string]string{
		"method": method, "path": path, "query": rawQuery,
		"body.sha256": hex.EncodeToString(sum[:]), "body.length": strconv.Itoa(len(body)),
	}
	for _, name := range coveredHeaders {
		if vs := h.Values(name); len(vs) > 0 {
			c["header."+name] = strings.Join(vs, "\n") // no header value holds a newline
		}
	}
	return c
}

// StatementCovered is the canonical form of a PostgreSQL statement from
// its event fields: the SQL as sent (not folded: whitespace inside a
// literal is data), the parameter count and every non-NULL parameter.
func StatementCovered(fields map[string]string) map[string]string {
	c := map[string]string{"sql": fields["sql"]}
	for k, v := range fields {
		if k == "params" || strings.HasPrefix(k, "param.") {
			c[k] = v
		}
	}
	return c
}

// covered is req's canonical fields: Covered, or all its Fields.
func (req *Request) covered() map[string]string {
	if req.Covered != nil {
		return req.Covered
	}
	return req.Fields
}

// CanonicalHash is the hex SHA-256 of req's canonical form.
func CanonicalHash(req Request) string {
	var issuer, subject string
	if p := req.Principal; p != nil {
		issuer, subject = p.Issuer, p.Subject
	}
	return hashStrings(append([]string{"tollgate.approval/1", req.Protocol, req.Kind, req.Target, issuer, subject}, sortedPairs(req.covered())...))
}

func sortedPairs(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	out := make([]string, 0, 2*len(keys))
	for _, k := range keys {
		out = append(out, k, m[k])
	}
	return out
}

// hashStrings hashes ss length-prefixed, so no two lists share a hash.
func hashStrings(ss []string) string {
	h := sha256.New()
	var buf [binary.MaxVarintLen64]byte
	for _, s := range ss {
		n := binary.PutUvarint(buf[:], uint64(len(s)))
		h.Write(buf[:n])
		h.Write([]byte(s))
	}
	return hex.EncodeToString(h.Sum(nil))
}

// Differs names the covered fields in which two canonical forms differ,
// sorted.
func Differs(a, b map[string]string) []string {
	var out []string
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			out = append(out, k)
		}
	}
	for k := range b {
		if _, ok := a[k]; !ok {
			out = append(out, k)
		}
	}
	sort.Strings(out)
	return out
}

// ErrMismatch is the cause of a MismatchError.
var ErrMismatch = errors.New("approval: the request is not the one approved")

// MismatchError is Resume's answer when the request's Idempotency-Key names
// an approval that covers another request: it must not run on it.
type MismatchError struct {
	ID     string   // the approval the key names
	Fields []string // the covered fields that differ
}

func (e *MismatchError) Error() string {
	return fmt.Sprintf("the Idempotency-Key names approval %s, which covers another request: this one differs in %s", e.ID, strings.Join(e.Fields, ", "))
}

func (e *MismatchError) Unwrap() error { return ErrMismatch }

// ErrTooManyPending is Hold's error past max_pending_per_principal or
// max_pending_per_target.
var ErrTooManyPending = errors.New("approval: too many pending approvals")

// bodyPreviewMax is how much of a held body the console and CLI show; past
// it they show this much and the covered hash and length.
const bodyPreviewMax = 1024

// BodyPreview is what a record keeps of a body: all of it up to 1 KiB, else
// its first KiB (cut on a character boundary); bytes that are not UTF-8
// text are kept Go-quoted, and quoted reports so.
func BodyPreview(body []byte) (preview string, quoted bool) {
	b := body
	if len(b) > bodyPreviewMax {
		b = b[:bodyPreviewMax]
		for i := 0; i < utf8.UTFMax && len(b) > 0 && !utf8.Valid(b); i++ {
			b = b[:len(b)-1]
		}
	}
	if utf8.Valid(b) {
		return string(b), false
	}
	return strconv.Quote(string(body[:min(len(body), bodyPreviewMax)])), true
}
