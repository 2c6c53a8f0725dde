package http

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"mime"
	"net"
	"net/http"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/tollgate-dev/tollgate/host/event"
)

// Request bodies for the chain (issue 17, item 9). A plugin that asks for
// them (event.WantsBody: the redact plugin with "body" in its
// request_fields) gets the body of each http.request in the field "body",
// decoded, so that it can mask it in the audit row with a record-only
// change. What the target receives is always the client's bytes as sent:
// they are replayed from the buffer, or, past the cap, streamed.

// wantsRequestBody reports whether the request has a body a plugin asked
// to see. It is asked only for a request with a body, so a GET pays
// nothing, and a chain without such a plugin pays one lookup.
func (x *exchange) wantsRequestBody(r *http.Request) bool {
	return r.Body != nil && r.Body != http.NoBody && x.sess.WantsField(event.WantsBody)
}

// inspectRequestBody reads the request body into the event's "body" field,
// up to the listener's max_inspect_body_bytes once decoded, and leaves
// r.Body to replay the same bytes to the target. A body that cannot be
// inspected (not text or not UTF-8, larger than the cap, encoded in a way
// the gateway cannot decode, corrupt) is not in the event at all, never a part of it:
// a secret across the cap would be cut where no detector sees it. The
// event then says body_inspected=false, and the row's
// http.request_body_not_inspected annotation says why. False means the
// body did not arrive and the client was answered.
func (x *exchange) inspectRequestBody(w http.ResponseWriter, r *http.Request) bool {
	limit := x.l.cfg.MaxInspectBodyBytes
	if limit <= 0 {
		limit = DefaultMaxInspectBodyBytes
	}
	if !textualRequest(r.Header.Get("Content-Type")) {
		x.bodyNotInspected(fmt.Sprintf("content type %q is not text", r.Header.Get("Content-Type")))
		return true
	}
	if r.ContentLength > limit {
		// Known too large: not read here, streamed as it comes.
		x.bodyNotInspected(fmt.Sprintf("larger than max_inspect_body_bytes (%d)", limit))
		return true
	}
	// The body is read before the chain decides, under the same deadline
	// as a forwarded body (and 100-continue is answered now).
	var lift func()
	if d := x.l.cfg.ReadBodyTimeout.Duration; d > 0 {
		rc := http.NewResponseController(w)
		if err := rc.SetReadDeadline(time.Now().Add(d)); err == nil {
			lift = func() { rc.SetReadDeadline(time.Time{}) }
		}
	}
	cr := &countingReader{r: r.Body, onErr: func() {}}
	x.reqBody = cr // the row's size and error if the body fails here
	raw, err := io.ReadAll(io.LimitReader(cr, limit+1))
	if err != nil {
		x.requestBodyFailed(w, err)
		return false
	}
	if int64(len(raw)) > limit {
		// Past the cap: what was read goes first, the rest streams.
		r.Body = readCloser{io.MultiReader(bytes.NewReader(raw), r.Body), r.Body}
		x.bodyNotInspected(fmt.Sprintf("larger than max_inspect_body_bytes (%d)", limit))
		return true
	}
	if lift != nil {
		lift()
	}
	r.Body = readCloser{bytes.NewReader(raw), r.Body}
	text := raw
	if ce := encoded(r.Header.Get("Content-Encoding")); ce != "" {
		b, err := decodeBody(ce, bytes.NewReader(raw), limit)
		switch {
		case errors.Is(err, errUndecodable):
			x.bodyNotInspected(fmt.Sprintf("Content-Encoding %q cannot be decoded", ce))
			return true
		case errors.Is(err, errTooLarge):
			x.bodyNotInspected(fmt.Sprintf("decodes (%s) to more than max_inspect_body_bytes (%d)", ce, limit))
			return true
		case err != nil:
			x.bodyNotInspected(fmt.Sprintf("%s body is corrupt", ce))
			return true
		}
		text = b
		x.note("http.request_decoded", ce)
	}
	if !utf8.Valid(text) {
		// Bytes that only claim to be text (a compressed body without its
		// Content-Encoding, a binary upload) would reach the row whole,
		// with whatever they hide.
		x.bodyNotInspected("not valid UTF-8 text")
		return true
	}
	x.ev.Fields["body"] = string(text)
	x.ev.Fields["body_inspected"] = "true"
	return true
}

// dropUnaskedBody takes the body out of the event, and so out of the row,
// when the chain that decided is not the one asked before the body was
// read (a reload in between) and no plugin of it asked for the body: the
// row of a chain that does not redact bodies must not hold one.
func (x *exchange) dropUnaskedBody() {
	if _, ok := x.ev.Fields["body_inspected"]; ok && !x.dec.WantsField(event.WantsBody) {
		delete(x.ev.Fields, "body")
		delete(x.ev.Fields, "body_inspected")
	}
}

// bodyNotInspected marks a body a plugin asked for and does not get.
func (x *exchange) bodyNotInspected(why string) {
	x.ev.Fields["body_inspected"] = "false"
	x.note("http.request_body_not_inspected", why)
}

// requestBodyFailed answers a request whose body did not arrive while it
// was read for inspection, as proxyError answers one that fails while
// forwarded.
func (x *exchange) requestBodyFailed(w http.ResponseWriter, err error) {
	w.Header().Set("Connection", "close")
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		x.fail(w, http.StatusRequestTimeout, "request_timeout",
			fmt.Sprintf("the request body did not arrive within %s (read_body_timeout)", x.l.cfg.ReadBodyTimeout.Duration))
		return
	}
	x.errMsg = "client: request body: " + err.Error()
	x.status = 499
}

// reviewedBody is the body a reviewer of a held request is shown. When a
// plugin was given the body, it is the body as recorded (masked by a
// record-only change), so that an approval shows no more than the audit
// row, and a body that was not inspected is not shown at all; the
// approval still covers the bytes sent.
func (x *exchange) reviewedBody(raw []byte) []byte {
	switch x.ev.Fields["body_inspected"] {
	case "true":
		return []byte(x.ev.Fields["body"])
	case "false":
		return nil
	}
	return raw
}

// bodyRewritten refuses a request whose body a plugin changed with a
// change that is not record-only: the gateway forwards request bodies only
// as sent, and forwarding one a plugin meant to change would break that
// plugin's promise quietly.
func (x *exchange) bodyRewritten(w http.ResponseWriter) bool {
	if _, ok := x.verdict.Changes["body"]; !ok {
		return false
	}
	reason := "a plugin changed the request body, which the gateway forwards only as sent (mask it record-only: sdk.RecordOnly)"
	x.verdict = event.Verdict{Action: event.Deny, Plugin: x.verdict.Plugin, Reason: reason, Annotations: x.verdict.Annotations}
	x.fail(w, http.StatusForbidden, "denied", reason)
	return true
}

// textualRequest is true for the request bodies the chain is given: JSON,
// forms (multipart included: a file's text too), text and XML.
func textualRequest(ct string) bool {
	// A bad parameter still names the type (ErrInvalidMediaParameter).
	mt, _, _ := mime.ParseMediaType(ct)
	switch {
	case mt == "application/json", mt == "application/x-www-form-urlencoded", mt == "multipart/form-data",
		mt == "application/xml", strings.HasPrefix(mt, "text/"),
		strings.HasSuffix(mt, "+json"), strings.HasSuffix(mt, "+xml"):
		return true
	}
	return false
}
