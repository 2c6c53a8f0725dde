package http

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httputil"
	"path"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/tollgate-dev/tollgate/host/event"
	"github.com/tollgate-dev/tollgate/host/gate"
)

// route is one [[listeners.routes]] entry with its proxy.
type route struct {
	cfg   Route
	up    *upstream
	proxy *httputil.ReverseProxy
}

// auditedHeaders are the request headers that go into the event and the
// audit row. Authorization, Cookie and the like never do.
var auditedHeaders = []string{"Content-Type", "Content-Length", "User-Agent", "Accept", "X-Request-Id", "Idempotency-Key", "Upgrade"}

// auditedFields are their event field names ("header.<name>"), built once
// rather than concatenated for every request.
var auditedFields = func() []string {
	f := make([]string, len(auditedHeaders))
	for i, h := range auditedHeaders {
		f[i] = "header." + h
	}
	return f
}()

// exchange is the state of one request as it moves through the gateway.
type exchange struct {
	l        *Listener
	conn     *conn
	dec      *gate.Decision // the chain's decision; its generation also sees the response
	rt       *route
	sess     *session
	fwdPath  string
	ev       *event.Event
	rule     string
	verdict  event.Verdict
	start    time.Time
	reqBody  *countingReader
	status   int
	respSize int64
	errMsg   string
	// needBody is set when the response body must be read: a plugin
	// subscribes to responses, or the target's credential is scrubbed.
	needBody bool
	// wantsResponse: a plugin subscribes to http.response (asked once).
	wantsResponse bool
	// notes are the gateway's own annotations for the row.
	notes []event.Annotation
	// scrubbed counts credential matches blanked in headers, the body
	// and trailers; the streaming scrub adds to body as the body goes out.
	scrubbed struct{ header, body, trailer int }
	// refused says why the response was refused (502), for the client.
	refused string
	// approvalID and approver are set when the request was held.
	approvalID, approver string
	// syncFailed: a synced target's forward row could not be made
	// durable, so the request was refused without being forwarded.
	syncFailed bool
	// kind is the row's kind: http.request, or a git target's git.refs,
	// git.fetch, git.push.
	kind string
	// rowStatus, when set, is the row's status instead of the HTTP
	// status (a push refused in a 200 answer reads "rejected").
	rowStatus string
	// headerSent: a git push answered its status and headers early.
	headerSent bool
	// progress sends a git push's side-band progress message, once the
	// answer has started; nil otherwise.
	progress func(msg string)
}

type exchangeKey struct{}

func (l *Listener) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	x := &exchange{l: l, conn: connFrom(r.Context()), start: time.Now()}
	if r.TLS == nil && x.conn != nil && x.conn.tls != nil {
		r.TLS = x.conn.tls()
	}
	// The chain generation that decides the request sees its response
	// too; it is released once the row is recorded.
	defer func() {
		if x.dec != nil {
			x.dec.Done()
		}
	}()
	rec := &statusRecorder{ResponseWriter: w}
	defer x.finish(r, rec)

	if r.Method == http.MethodConnect || !strings.HasPrefix(r.URL.Path, "/") {
		x.fail(rec, http.StatusBadRequest, "bad_request", "CONNECT and non-origin request targets are not served")
		return
	}
	// Go's server drops Content-Length when Transfer-Encoding is also
	// present and frames the body by chunks, and the gateway re-frames every
	// request towards the target, so the target never sees the ambiguity.
	// What is left is the client side: close the connection after any
	// chunked request, so bytes a front proxy framed differently are never
	// parsed as a second request (what HAProxy does). On HTTP/1.0 Go
	// ignores Transfer-Encoding and the connection closes after the answer.
	if len(r.TransferEncoding) > 0 {
		rec.Header().Set("Connection", "close")
	}
	// Before anything is recorded or forwarded: a token in the query would
	// reach the upstream's logs and the audit trail.
	if q, removed := stripQueryTokens(r.URL.RawQuery, bearerOf(r)); len(removed) > 0 {
		r.URL.RawQuery = q
		r.RequestURI = r.URL.RequestURI()
		x.note("http.query_token_removed", strings.Join(removed, ","))
	}
	if p := r.URL.Path; path.Clean(p) != p && path.Clean(p)+"/" != p {
		x.fail(rec, http.StatusBadRequest, "bad_request", "path is not canonical (., .. or // segments)")
		return
	}
	// Before anything else runs (and again in Decide): a full trail
	// refuses the request as the client sent it, at the least cost.
	if err := l.deps.Admit(); err != nil {
		rec.Header().Set("Retry-After", "5")
		x.fail(rec, http.StatusServiceUnavailable, "audit_unavailable", "the audit trail cannot take more rows right now; nothing unaudited is let through")
		return
	}
	rt, fwd := l.match(r)
	if rt == nil {
		x.fail(rec, http.StatusNotFound, "no_route", "no target is routed at this host and path")
		return
	}
	x.rt, x.fwdPath = rt, fwd

	p, err := l.authenticate(r)
	x.sess = x.conn.sessionFor(p, rt.cfg.Target, x.start)
	if err != nil {
		switch kind, reason := gate.AuthFailure(err); kind {
		case gate.AuthNoToken:
			rec.Header().Set("WWW-Authenticate", `Bearer realm="tollgate"`)
			x.fail(rec, http.StatusUnauthorized, "unauthenticated", "an OIDC token is required: Authorization: Bearer <token>")
		case gate.AuthInvalid:
			rec.Header().Set("WWW-Authenticate", `Bearer realm="tollgate", error="invalid_token", error_description=`+strconv.Quote(reason))
			x.fail(rec, http.StatusUnauthorized, "invalid_token", reason)
		default:
			x.sess.Log().Warn("token not verified", "err", err)
			rec.Header().Set("Retry-After", "1")
			x.fail(rec, http.StatusServiceUnavailable, "identity_unavailable", "the token cannot be checked right now: the issuer's keys are unavailable")
		}
		return
	}

	if rt.up.git {
		x.serveGit(rec, r, p)
		return
	}
	d := l.deps.Authorize(p, gate.AccessRequest{Target: rt.cfg.Target, Verb: r.Method, Resource: fwd})
	if !d.Allowed {
		x.fail(rec, http.StatusForbidden, "access_denied", d.Reason)
		return
	}
	x.rule = d.Rule

	x.ev = requestEvent(r, x, p)
	if bad := refusedUpgrade(r.Header, rt.up.upgrades); bad != "" {
		x.fail(rec, http.StatusBadRequest, "upgrade_refused", fmt.Sprintf("upgrade to %q is not allowed on target %s (allowed: %s)",
			bad, rt.cfg.Target, strings.Join(rt.up.upgrades, ", ")))
		return
	}
	if x.wantsRequestBody(r) && !x.inspectRequestBody(rec, r) {
		return
	}
	x.dec = x.sess.Decide(r.Context(), x.ev, func(_ context.Context, _ *event.Event, v event.Verdict) (event.Verdict, bool) {
		return v, x.hold(rec, r, v)
	})
	if x.reqBody != nil {
		x.dropUnaskedBody()
	}
	if !x.allowed(rec, x.dec) || x.bodyRewritten(rec) {
		return
	}
	applyChanges(r, x, x.dec.Verdict.Changes)

	x.wantsResponse = x.dec.Wants("http.response")
	x.needBody = x.wantsResponse || rt.up.scrub.Active()
	ctx, cancel := context.WithCancel(r.Context())
	defer cancel()
	if r.Body != nil && r.Body != http.NoBody {
		x.reqBody = &countingReader{r: r.Body, onErr: cancel}
		if d := l.cfg.ReadBodyTimeout.Duration; d > 0 {
			// A body that trickles in holds a goroutine and an upstream
			// connection; the deadline is lifted once the body is read,
			// so a slow upstream answer is not cut by it.
			rc := http.NewResponseController(rec)
			if err := rc.SetReadDeadline(time.Now().Add(d)); err == nil {
				x.reqBody.onEOF = func() { rc.SetReadDeadline(time.Time{}) }
			}
		}
		r.Body = x.reqBody
	}
	if rt.up.synced {
		if !x.forwardDurable(rec, r) {
			return
		}
		rec.holdEnd()
	}
	ctx = context.WithValue(ctx, exchangeKey{}, x)
	rt.proxy.ServeHTTP(rec, r.WithContext(ctx))
}

// allowed answers the client when the decision refused the request;
// false means it was answered (a hold's refusal, by hold itself).
func (x *exchange) allowed(w http.ResponseWriter, d *gate.Decision) bool {
	x.verdict = d.Verdict
	switch d.Refusal {
	case gate.NotRefused:
		return true
	case gate.RefusedAuditFull:
		w.Header().Set("Retry-After", "5")
		x.fail(w, http.StatusServiceUnavailable, "audit_unavailable", "the audit trail cannot take more rows right now; nothing unaudited is let through")
	case gate.RefusedByHold:
	default:
		x.fail(w, http.StatusForbidden, "denied", d.Reason)
	}
	return false
}

// match finds the route for r: the longest path prefix among routes whose
// host matches. It returns the path to forward.
func (l *Listener) match(r *http.Request) (*route, string) {
	host := r.Host
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	var best *route
	bestLen := -1
	for i := range l.routes {
		rt := &l.routes[i]
		if rt.cfg.Host != "" && !strings.EqualFold(rt.cfg.Host, host) {
			continue
		}
		pre := strings.TrimSuffix(rt.cfg.PathPrefix, "/")
		if pre != "" && r.URL.Path != pre && !strings.HasPrefix(r.URL.Path, pre+"/") {
			continue
		}
		if n := len(pre); n > bestLen {
			best, bestLen = rt, n
		}
	}
	if best == nil {
		return nil, ""
	}
	fwd := r.URL.Path[bestLen:]
	if fwd == "" {
		fwd = "/"
	}
	return best, fwd
}

func (l *Listener) authenticate(r *http.Request) (*event.Principal, error) {
	h := r.Header.Get("Authorization")
	scheme, tok, ok := strings.Cut(h, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return l.deps.Verify(r.Context(), "") // gate.ErrNoToken, counted
	}
	return l.deps.Verify(r.Context(), strings.TrimSpace(tok))
}

func requestEvent(r *http.Request, x *exchange, p *event.Principal) *event.Event {
	// Sized for the usual few headers (and a plugin's change or two), so
	// that the map is not grown while it is filled.
	f := make(map[string]string, 8)
	f["method"], f["path"], f["query"], f["host"] = r.Method, x.fwdPath, r.URL.RawQuery, r.Host
	for i, h := range auditedHeaders {
		// The names are canonical: index the map, skip Get's canonicalization.
		if vs := r.Header[h]; len(vs) > 0 && vs[0] != "" {
			f[auditedFields[i]] = vs[0]
		}
	}
	return &event.Event{
		Phase: event.Request, Protocol: "http", Kind: "http.request",
		SessionID: x.sess.ID(), Target: x.rt.cfg.Target, Principal: p, Fields: f,
	}
}

// applyChanges carries a Rewrite verdict into the request. Credentials are
// out of a plugin's reach: the gateway injects them after this.
func applyChanges(r *http.Request, x *exchange, changes map[string]string) {
	for k, v := range changes {
		if !acceptedChange(k, v) {
			continue
		}
		switch {
		case k == "path":
			x.fwdPath = v
		case k == "query":
			r.URL.RawQuery = v
		default: // header.<name>
			name := http.CanonicalHeaderKey(strings.TrimPrefix(k, "header."))
			if v == "" {
				r.Header.Del(name)
			} else {
				r.Header.Set(name, v)
			}
		}
		x.ev.Fields[k] = v
	}
}

// acceptedChange reports whether applyChanges carries the change of field
// k into the request.
func acceptedChange(k, v string) bool {
	switch {
	case k == "path":
		return strings.HasPrefix(v, "/")
	case k == "query":
		return true
	case strings.HasPrefix(k, "header."):
		name := http.CanonicalHeaderKey(strings.TrimPrefix(k, "header."))
		return name != "Authorization" && name != "Proxy-Authorization" && name != "Host"
	}
	return false
}

// rewrite shapes the outgoing request: the target's URL and path, the
// gateway's credential instead of the agent's token.
func (x *exchange) rewrite(pr *httputil.ProxyRequest) {
	pr.SetURL(x.rt.up.url)
	pr.Out.URL.Path = singleJoin(x.rt.up.url.Path, x.fwdPath)
	pr.Out.URL.RawPath = ""
	pr.SetXForwarded()
	x.rt.up.inject(pr.Out.Header)
	if x.needBody {
		// The chain and the scrub read the body; ask for it plain. An
		// upstream that encodes anyway is decoded (modifyResponse).
		pr.Out.Header.Set("Accept-Encoding", "identity")
	}
	pr.Out.Header.Set("X-Tollgate-Session-Id", x.sess.ID())
}

func singleJoin(base, p string) string {
	if base == "" || base == "/" {
		return p
	}
	return strings.TrimSuffix(base, "/") + p
}

// errResponseDenied marks a response the chain refused.
var errResponseDenied = errors.New("response denied by policy")

// errResponseRefused marks a response the gateway cannot inspect and so
// does not pass on; x.refused says why.
var errResponseRefused = errors.New("response refused")

// note adds one of the gateway's own annotations to the request's row.
func (x *exchange) note(k, v string) {
	x.notes = append(x.notes, event.Annotation{Key: k, Value: v})
}

// filterHeader applies the response header rules to h, the headers or,
// once the body is read, the trailers: a trailer is a header that comes
// late, and gets no more trust.
func (x *exchange) filterHeader(h http.Header) int {
	// A cookie the upstream sets is a session of the gateway's credential:
	// handed to the agent, it would reach the target without the gateway.
	h.Del("Set-Cookie")
	return scrubHeader(x.rt.up.scrub, h)
}

// modifyResponse decodes, scrubs and runs the response through the chain.
func (x *exchange) modifyResponse(resp *http.Response) error {
	if resp.StatusCode == http.StatusSwitchingProtocols {
		// ReverseProxy writes a 101 on the hijacked connection, past the
		// status recorder.
		x.status = resp.StatusCode
	}
	x.scrubbed.header += x.filterHeader(resp.Header)
	for k := range resp.Trailer {
		if http.CanonicalHeaderKey(k) == "Set-Cookie" {
			delete(resp.Trailer, k) // not even announced
		}
	}
	if resp.StatusCode == http.StatusSwitchingProtocols {
		return nil
	}
	if bodiless(resp) {
		// HEAD, 204, 304: the headers describe a body that is not here;
		// there is nothing to decode, scrub or mask.
		return nil
	}
	if !x.needBody {
		x.streamBody(resp, resp.Body) // for the trailers
		return nil
	}
	limit := x.l.cfg.MaxInspectBodyBytes
	if limit <= 0 {
		limit = DefaultMaxInspectBodyBytes
	}
	// body is set once the whole body is held in memory.
	var body []byte
	if ce := encoded(resp.Header.Get("Content-Encoding")); ce != "" {
		// Asked for identity, the upstream encoded anyway. Decode it whole
		// or refuse it: an encoded body cannot be scrubbed or masked as
		// it streams, and passing it on unread is what this prevents.
		b, err := decodeBody(ce, resp.Body, limit)
		if err != nil {
			switch {
			case errors.Is(err, errUndecodable):
				x.refused = fmt.Sprintf("the target answered with Content-Encoding %q, which the gateway cannot decode to inspect", ce)
			case errors.Is(err, errTooLarge):
				x.refused = fmt.Sprintf("the target's %s response decodes to more than %d bytes, the most the gateway inspects", ce, limit)
			default:
				x.refused = fmt.Sprintf("the target's %s response could not be decoded", ce)
			}
			x.errMsg = "response: " + err.Error()
			return errResponseRefused
		}
		resp.Body.Close()
		body = b
		x.note("http.decoded", ce)
		resp.Header.Del("Content-Encoding")
		resp.Header.Del("Etag") // the ETag named the encoded bytes
		setLength(resp, len(b))
	}
	wants := x.wantsResponse
	if wants && body == nil && inspectable(resp, limit) {
		b, err := io.ReadAll(io.LimitReader(resp.Body, limit+1))
		if err != nil {
			return fmt.Errorf("read response body: %w", err)
		}
		if int64(len(b)) <= limit {
			resp.Body.Close()
			body = b
		} else {
			// Past the limit: put back what was read, stream the rest.
			resp.Body = readCloser{io.MultiReader(bytes.NewReader(b), resp.Body), resp.Body}
		}
	}
	if body == nil {
		// Streamed: scrubbed on the way out, trailers filtered at the end.
		x.streamBody(resp, resp.Body)
		if wants {
			return x.runResponseChain(resp, nil)
		}
		return nil
	}
	x.scrubbed.body += x.rt.up.scrub.Scrub(body)
	if wants {
		if err := x.runResponseChain(resp, body); err != nil {
			return err
		}
		if resp.Body != nil {
			return nil // the chain rewrote the body
		}
	}
	x.streamBody(resp, io.NopCloser(bytes.NewReader(body)))
	return nil
}

// runResponseChain asks the chain about the response; body is nil when it
// is not inspected. A rewritten body replaces resp.Body; otherwise
// resp.Body is left nil for the caller to set.
func (x *exchange) runResponseChain(resp *http.Response, body []byte) error {
	ev := &event.Event{
		Phase: event.Response, Protocol: "http", Kind: "http.response",
		SessionID: x.sess.ID(), Target: x.rt.cfg.Target, Principal: x.ev.Principal,
		Fields: map[string]string{
			"method": x.ev.Fields["method"], "path": x.ev.Fields["path"],
			"status": strconv.Itoa(resp.StatusCode), "header.Content-Type": resp.Header.Get("Content-Type"),
		},
	}
	inspected := body != nil && textual(resp)
	if inspected {
		ev.Fields["body"] = string(body)
	}
	v := x.dec.Process(resp.Request.Context(), ev)
	if v.Action == event.Deny || v.Action == event.Hold {
		x.verdict = v
		return errResponseDenied
	}
	x.verdict.Annotations = append(x.verdict.Annotations, v.Annotations...)
	if body == nil {
		return nil
	}
	resp.Body = nil
	if nb, ok := v.Changes["body"]; ok && inspected {
		b := []byte(nb)
		x.scrubbed.body += x.rt.up.scrub.Scrub(b)
		x.streamBody(resp, io.NopCloser(bytes.NewReader(b)))
		setLength(resp, len(b))
		resp.Header.Del("Etag")
		if x.verdict.Action == event.Allow {
			x.verdict.Action, x.verdict.Plugin = event.Rewrite, v.Plugin
		}
	}
	return nil
}

// streamBody sets resp's body to rc, scrubbed as it streams when the
// target has a credential, with the trailers filtered once it ends.
func (x *exchange) streamBody(resp *http.Response, rc io.ReadCloser) {
	if x.rt.up.scrub.Active() {
		rc = x.rt.up.scrub.Reader(rc, &x.scrubbed.body)
	}
	resp.Body = &trailerFilter{ReadCloser: rc, done: func() {
		// resp.Trailer is filled when the upstream body ends, which is
		// before ReverseProxy copies it out (it closes the body first).
		x.scrubbed.trailer += x.filterHeader(resp.Trailer)
	}}
}

// trailerFilter calls done once the body is finished, at EOF or Close.
type trailerFilter struct {
	io.ReadCloser
	once sync.Once
	done func()
}

func (t *trailerFilter) Read(p []byte) (int, error) {
	n, err := t.ReadCloser.Read(p)
	if err == io.EOF {
		t.once.Do(t.done)
	}
	return n, err
}

func (t *trailerFilter) Close() error {
	err := t.ReadCloser.Close()
	t.once.Do(t.done)
	return err
}

func bodiless(resp *http.Response) bool {
	return resp.Request.Method == http.MethodHead || resp.StatusCode == http.StatusNoContent ||
		resp.StatusCode == http.StatusNotModified || resp.ContentLength == 0
}

func setLength(resp *http.Response, n int) {
	resp.ContentLength = int64(n)
	resp.Header.Set("Content-Length", strconv.Itoa(n))
	resp.TransferEncoding = nil
}

// inspectable is true for text and JSON bodies of a size that can be
// known or bounded.
func inspectable(resp *http.Response, limit int64) bool {
	return resp.ContentLength <= limit && textual(resp)
}

func textual(resp *http.Response) bool {
	ct := resp.Header.Get("Content-Type")
	return strings.HasPrefix(ct, "application/json") || strings.HasPrefix(ct, "text/") ||
		strings.HasSuffix(strings.SplitN(ct, ";", 2)[0], "+json")
}

type readCloser struct {
	io.Reader
	io.Closer
}

// proxyError answers for a failed round trip.
func (x *exchange) proxyError(w http.ResponseWriter, r *http.Request, err error) {
	if errors.Is(err, errResponseDenied) {
		x.fail(w, http.StatusForbidden, "denied", x.verdict.Reason)
		return
	}
	if errors.Is(err, errResponseRefused) {
		detail := x.errMsg
		x.fail(w, http.StatusBadGateway, "response_refused", x.refused)
		x.errMsg += " (" + detail + ")"
		return
	}
	if x.reqBody != nil && x.reqBody.err != nil {
		var ne net.Error
		w.Header().Set("Connection", "close")
		if errors.As(x.reqBody.err, &ne) && ne.Timeout() {
			x.fail(w, http.StatusRequestTimeout, "request_timeout",
				fmt.Sprintf("the request body did not arrive within %s (read_body_timeout)", x.l.cfg.ReadBodyTimeout.Duration))
			return
		}
		x.errMsg = "client: request body: " + x.reqBody.err.Error()
		x.status = 499
		return
	}
	if errors.Is(err, context.Canceled) && r.Context().Err() != nil {
		x.errMsg = "client went away"
		x.status = 499 // nginx's code for a client that closed the request
		return
	}
	x.sess.Log().Warn("upstream request failed", "target", x.rt.cfg.Target, "err", err)
	x.sess.UpstreamError(err)
	x.fail(w, http.StatusBadGateway, "upstream_unavailable", "the target did not answer")
	x.errMsg = "upstream: " + err.Error() // keep the detail for the audit row, not the client
}

// finish writes the request's audit row.
func (x *exchange) finish(r *http.Request, rec *statusRecorder) {
	if x.sess == nil {
		x.sess = x.conn.sessionFor(nil, "", x.start)
	}
	kind := x.kind
	if kind == "" {
		kind = "http.request"
	}
	row := sessionRow(x.sess, kind, "")
	if x.rt != nil {
		row.Target = x.rt.cfg.Target
	}
	row.Time = x.start
	row.AccessRule = x.rule
	if x.ev != nil {
		row.Request = x.ev.Fields
	} else {
		// Refused before the chain: record the path as it would have been
		// forwarded when a route matched, so rows compare with allowed ones.
		p := r.URL.Path
		if x.rt != nil {
			p = x.fwdPath
		}
		row.Request = map[string]string{"method": r.Method, "path": p, "query": r.URL.RawQuery}
	}
	if x.ev != nil || x.verdict.Action != event.Allow {
		row.SetVerdict(x.verdict)
	}
	status := rec.status
	if x.status != 0 {
		status = x.status
	}
	if status == 0 {
		status = http.StatusOK
	}
	row.Status = strconv.Itoa(status)
	if x.rowStatus != "" {
		row.Status = x.rowStatus
	}
	row.ResponseBytes = rec.bytes
	if x.reqBody != nil {
		row.RequestBytes = x.reqBody.n
	}
	row.DurationMicro = time.Since(x.start).Microseconds()
	row.Error = x.errMsg
	row.ApprovalID, row.Approver = x.approvalID, x.approver
	if sc := x.scrubbed; sc.header+sc.body+sc.trailer > 0 {
		x.note("http.credential_scrubbed", fmt.Sprintf("header=%d body=%d trailer=%d", sc.header, sc.body, sc.trailer))
	}
	for _, a := range x.notes {
		if row.Annotations == nil {
			row.Annotations = map[string]string{}
		}
		row.Annotations[a.Key] = a.Value
	}
	synced := x.rt != nil && x.rt.up.synced && status != http.StatusSwitchingProtocols && !x.syncFailed
	t, err := x.sess.RecordSynced(row, synced)
	if status == http.StatusSwitchingProtocols {
		// The upgraded connection was hijacked and has now ended; the
		// server will never report it closed.
		x.conn.closeSession()
	}
	if synced {
		x.resultDurable(r, rec, t, err)
	}
}

// countingReader counts the request body and reports how it ended: a
// failed read cancels the upstream request at once (else the upstream
// waits for bytes that will never come, and so does the gateway).
type countingReader struct {
	r     io.ReadCloser
	n     int64
	err   error
	onErr func()
	onEOF func()
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	switch {
	case err == io.EOF:
		if c.onEOF != nil {
			c.onEOF()
			c.onEOF = nil
		}
	case err != nil && c.err == nil:
		c.err = err
		c.onErr()
	}
	return n, err
}

func (c *countingReader) Close() error { return c.r.Close() }

// statusRecorder notes the status and body size sent to the client. It
// unwraps for http.ResponseController, which ReverseProxy uses to flush
// and to hijack for WebSocket upgrades.
type statusRecorder struct {
	http.ResponseWriter
	status int
	bytes  int64
	// hold, left, held: a synced target's answer keeps its last byte
	// back until the result row is durable (durable.go).
	hold bool
	left int64
	held []byte
}

func (s *statusRecorder) WriteHeader(code int) {
	if s.status == 0 || (s.status >= 100 && s.status < 200 && code != http.StatusSwitchingProtocols) {
		s.status = code
	}
	s.ResponseWriter.WriteHeader(code)
}

func (s *statusRecorder) Write(b []byte) (int, error) {
	if s.status == 0 {
		s.status = http.StatusOK
	}
	var n int
	var err error
	if s.hold {
		n, err = s.heldWrite(b)
	} else {
		n, err = s.ResponseWriter.Write(b)
	}
	s.bytes += int64(n)
	return n, err
}

func (s *statusRecorder) Flush() { http.NewResponseController(s.ResponseWriter).Flush() }

func (s *statusRecorder) Unwrap() http.ResponseWriter { return s.ResponseWriter }
