package kube

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/tollgate-dev/tollgate/host/event"
	"github.com/tollgate-dev/tollgate/host/gate"
)

// Event kinds.
const (
	// KindRequest is one API request, decided by the chain before it is
	// forwarded: fields verb, api_group, api_version, resource,
	// subresource, namespace, name, method, path, query.
	KindRequest = "kube.request"
)

// Options configure a Listener.
type Options struct {
	Name, Listen    string
	TLSCert, TLSKey string
	// DevTLS: without TLSCert, serve a self-signed certificate made in
	// memory (serve --dev).
	DevTLS bool
	Target TargetOptions
}

// TargetOptions are the cluster a listener serves.
type TargetOptions struct {
	Name string
	// Upstream is the API server's https:// URL; CAPEM the CA that
	// signed its certificate (nil: the system's roots).
	Upstream string
	CAPEM    []byte
	// Token is the gateway's bearer token for the API server.
	Token string
	// Impersonate sends the principal as Impersonate-User/-Group.
	Impersonate bool
}

// Listener serves one cluster's Kubernetes API to agents.
type Listener struct {
	opts     Options
	deps     gate.Deps
	upstream *url.URL
	proxy    *httputil.ReverseProxy
	tlsConf  *tls.Config
	srv      *http.Server
	ln       net.Listener
	conns    sync.Map // net.Conn → *conn
}

// New prepares a listener; Start serves it.
func New(o Options, deps gate.Deps) (*Listener, error) {
	u, err := url.Parse(o.Target.Upstream)
	if err != nil || u.Scheme != "https" || u.Host == "" {
		return nil, fmt.Errorf("kube: target %s: upstream %q is not an https:// URL", o.Target.Name, o.Target.Upstream)
	}
	if o.Target.Token == "" {
		return nil, fmt.Errorf("kube: target %s: no bearer token", o.Target.Name)
	}
	upTLS := &tls.Config{MinVersion: tls.VersionTLS12}
	if o.Target.CAPEM != nil {
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(o.Target.CAPEM) {
			return nil, fmt.Errorf("kube: target %s: ca_file holds no PEM certificate", o.Target.Name)
		}
		upTLS.RootCAs = pool
	}
	l := &Listener{opts: o, deps: deps, upstream: u}
	switch {
	case o.TLSCert != "":
		cert, err := tls.LoadX509KeyPair(o.TLSCert, o.TLSKey)
		if err != nil {
			return nil, fmt.Errorf("kube: listener %s: tls: %w", o.Name, err)
		}
		l.tlsConf = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	case o.DevTLS:
		cert, err := gate.SelfSigned(o.Listen)
		if err != nil {
			return nil, fmt.Errorf("kube: listener %s: dev certificate: %w", o.Name, err)
		}
		l.tlsConf = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	default:
		return nil, fmt.Errorf("kube: listener %s: no tls_cert: the Kubernetes API is served over HTTPS only", o.Name)
	}
	l.proxy = &httputil.ReverseProxy{
		Rewrite: l.rewrite,
		Transport: &http.Transport{
			TLSClientConfig:     upTLS,
			ForceAttemptHTTP2:   true,
			MaxIdleConnsPerHost: 32,
			IdleConnTimeout:     90 * time.Second,
		},
		// Watches and log streams go out as they come.
		FlushInterval: -1,
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			if rs := stateFrom(r.Context()); rs != nil {
				rs.upstreamErr = err
			}
			writeStatus(w, http.StatusBadGateway, "ServiceUnavailable", "the gateway could not reach the cluster")
		},
		ModifyResponse: func(resp *http.Response) error {
			if rs := stateFrom(resp.Request.Context()); rs != nil {
				rs.status = resp.StatusCode
			}
			return nil
		},
	}
	l.srv = &http.Server{
		Handler:           l,
		TLSConfig:         l.tlsConf,
		ReadHeaderTimeout: 30 * time.Second,
		ConnContext:       l.connContext,
		ConnState:         l.connState,
		// Handshake failures (a client that does not trust the
		// certificate, a port probe) are the client's business: debug.
		ErrorLog: slog.NewLogLogger(deps.Logger().With("listener", o.Name, "protocol", "kube").Handler(), slog.LevelDebug),
	}
	return l, nil
}

// Start binds the listening socket and serves in the background.
func (l *Listener) Start() error {
	ln, err := net.Listen("tcp", l.opts.Listen)
	if err != nil {
		return fmt.Errorf("kube: listener %s: %w", l.opts.Name, err)
	}
	l.ln = ln
	go func() {
		if err := l.srv.ServeTLS(ln, "", ""); err != nil && !errors.Is(err, http.ErrServerClosed) {
			l.deps.Logger().Error("kube: serve", "listener", l.opts.Name, "err", err)
		}
	}()
	return nil
}

// Addr is the bound address (after Start).
func (l *Listener) Addr() net.Addr { return l.ln.Addr() }

// Shutdown stops accepting and lets requests in flight finish until ctx
// ends; the sessions close with their connections.
func (l *Listener) Shutdown(ctx context.Context) error {
	err := l.srv.Shutdown(ctx)
	if err != nil {
		l.srv.Close()
	}
	l.conns.Range(func(k, v any) bool {
		v.(*conn).close()
		l.conns.Delete(k)
		return true
	})
	if err != nil {
		return fmt.Errorf("kube: listener %s: shutdown: %w", l.opts.Name, err)
	}
	return nil
}

// ServeHTTP authenticates, resolves, authorizes and decides one API
// request, forwards it, and records its row.
func (l *Listener) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	c := connFrom(r.Context())
	if c == nil {
		writeStatus(w, http.StatusInternalServerError, "InternalError", "no connection state")
		return
	}
	tok, ok := bearer(r)
	if !ok {
		c.refuse(r, gate.ErrNoToken, w)
		return
	}
	p, err := l.deps.Verify(r.Context(), tok)
	if err != nil {
		c.refuse(r, err, w)
		return
	}
	s := c.sessionFor(p)
	row := s.Row(KindRequest)
	row.RequestBytes = max(r.ContentLength, 0)
	fields := map[string]string{"method": r.Method, "path": r.URL.Path, "query": r.URL.RawQuery}
	row.Request = fields
	defer func() {
		row.DurationMicro = time.Since(start).Microseconds()
		if _, err := s.Record(row); err != nil {
			s.Log().Error("kube: record request row", "err", err)
		}
	}()
	refuse := func(code int, reason, msg string) {
		row.Status, row.Error = strconv.Itoa(code), msg
		if row.Verdict == "" {
			row.Verdict = "deny"
		}
		writeStatus(w, code, reason, msg)
	}

	ri, err := ParseRequestInfo(r.Method, r.URL)
	if err != nil {
		refuse(http.StatusBadRequest, "BadRequest", "kube: "+err.Error())
		return
	}
	maps(fields, ri)
	if ri.Verb == "" {
		refuse(http.StatusMethodNotAllowed, "MethodNotAllowed", "method "+r.Method+" is not a Kubernetes API verb")
		return
	}
	// Streaming subresources are terminated by the gateway in a later
	// version; until then they are refused rather than passed unchecked.
	if isUpgrade(r) || streaming(ri) {
		refuse(http.StatusForbidden, "Forbidden", fmt.Sprintf("%s through the gateway is not supported yet", describe(ri)))
		return
	}
	// A Secret's values would reach the agent unmasked: refused until
	// the response path masks them.
	if ri.IsResourceRequest && ri.APIGroup == "" && ri.Resource == "secrets" {
		refuse(http.StatusForbidden, "Forbidden", "secrets through the gateway are not supported yet (their values would not be masked)")
		return
	}
	res := ResourcePath(ri)
	ad := l.deps.Authorize(p, gate.AccessRequest{Target: l.opts.Target.Name, Verb: strings.ToUpper(ri.Verb), Resource: res})
	row.AccessRule = ad.Rule
	if !ad.Allowed {
		refuse(http.StatusForbidden, "Forbidden", "access denied: "+ad.Reason)
		return
	}
	if err := l.deps.Admit(); err != nil {
		refuse(http.StatusServiceUnavailable, "ServiceUnavailable", "the audit trail cannot take the request's row")
		return
	}
	ev := &event.Event{Phase: event.Request, Protocol: "kube", Kind: KindRequest, SessionID: s.ID(),
		Target: l.opts.Target.Name, Principal: p, Fields: fields}
	dec := s.Decide(r.Context(), ev, nil)
	defer dec.Done()
	row.SetVerdict(dec.Verdict)
	if !dec.Allowed {
		refuse(http.StatusForbidden, "Forbidden", "denied: "+dec.Reason)
		return
	}

	rs := &reqState{principal: p}
	cw := &countingWriter{ResponseWriter: w}
	l.proxy.ServeHTTP(cw, r.WithContext(context.WithValue(r.Context(), stateKey{}, rs)))
	row.ResponseBytes = cw.n
	row.Status = strconv.Itoa(rs.status)
	if rs.upstreamErr != nil {
		row.Status = strconv.Itoa(http.StatusBadGateway)
		row.Error = "upstream: " + rs.upstreamErr.Error()
		s.Log().Warn("kube: upstream", "err", rs.upstreamErr)
	}
}

// rewrite points the request at the API server with the gateway's
// credential. Whatever identity headers the client sent are dropped: the
// agent must not act as anyone with the gateway's credential.
func (l *Listener) rewrite(pr *httputil.ProxyRequest) {
	pr.SetURL(l.upstream)
	// SetURL joins paths; the API path goes out exactly as it was resolved.
	pr.Out.URL.Path, pr.Out.URL.RawPath = pr.In.URL.Path, ""
	pr.Out.Host = l.upstream.Host
	h := pr.Out.Header
	h.Del("Authorization")
	h.Del("Proxy-Authorization")
	for k := range h {
		if strings.HasPrefix(strings.ToLower(k), "impersonate-") {
			h.Del(k)
		}
	}
	h.Set("Authorization", "Bearer "+l.opts.Target.Token)
	if rs := stateFrom(pr.In.Context()); rs != nil && l.opts.Target.Impersonate {
		h.Set("Impersonate-User", rs.principal.Subject)
		for _, g := range rs.principal.Groups {
			h.Add("Impersonate-Group", g)
		}
	}
}

// ResourcePath is the resource the access rules see (their paths match it
// by prefix on segment boundaries): /namespaces/NS/RESOURCE[.GROUP]/NAME/SUBRESOURCE
// for a namespaced request, /cluster/RESOURCE[.GROUP]/NAME/SUBRESOURCE for
// a cluster-wide one (a list across every namespace included), and
// /nonresource/PATH for a URL that is no resource (discovery, /version).
func ResourcePath(ri RequestInfo) string {
	if !ri.IsResourceRequest {
		return "/nonresource" + ri.Path
	}
	res := ri.Resource
	if ri.APIGroup != "" {
		res += "." + ri.APIGroup
	}
	var b strings.Builder
	if ri.Namespace != "" {
		b.WriteString("/namespaces/" + ri.Namespace)
	} else {
		b.WriteString("/cluster")
	}
	b.WriteString("/" + res)
	if ri.Name != "" {
		b.WriteString("/" + ri.Name)
		if ri.Subresource != "" {
			b.WriteString("/" + ri.Subresource)
		}
	}
	return b.String()
}

// maps copies the resolved request into the event's fields.
func maps(f map[string]string, ri RequestInfo) {
	f["verb"] = ri.Verb
	if !ri.IsResourceRequest {
		return
	}
	f["api_group"] = ri.APIGroup
	f["api_version"] = ri.APIVersion
	f["resource"] = ri.Resource
	f["subresource"] = ri.Subresource
	f["namespace"] = ri.Namespace
	f["name"] = ri.Name
}

// streaming reports the subresources that stream both ways or tunnel.
func streaming(ri RequestInfo) bool {
	if ri.Verb == verbProxy {
		return true
	}
	switch ri.Subresource {
	case "exec", "attach", "portforward", "proxy":
		return true
	}
	return false
}

func isUpgrade(r *http.Request) bool {
	return r.Header.Get("Upgrade") != "" || strings.Contains(strings.ToLower(r.Header.Get("Connection")), "upgrade")
}

func describe(ri RequestInfo) string {
	if ri.Subresource != "" {
		return ri.Resource + "/" + ri.Subresource
	}
	if ri.Verb == verbProxy {
		return "proxy"
	}
	return "a connection upgrade"
}

// bearer is the request's bearer token.
func bearer(r *http.Request) (string, bool) {
	h := r.Header.Get("Authorization")
	scheme, tok, ok := strings.Cut(h, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", false
	}
	tok = strings.TrimSpace(tok)
	return tok, tok != ""
}

// writeStatus answers with a Kubernetes Status object, which kubectl
// prints as "Error from server (Reason): message".
func writeStatus(w http.ResponseWriter, code int, reason, msg string) {
	b, _ := json.Marshal(map[string]any{
		"kind": "Status", "apiVersion": "v1", "metadata": map[string]any{},
		"status": "Failure", "message": msg, "reason": reason, "code": code,
	})
	w.Header().Set("Content-Type", "application/json")
	if code == http.StatusUnauthorized {
		w.Header().Set("WWW-Authenticate", `Bearer realm="tollgate"`)
	}
	w.WriteHeader(code)
	w.Write(b)
}

// reqState carries what the proxy learns of one request back to its row.
type reqState struct {
	principal   *event.Principal
	status      int
	upstreamErr error
}

type stateKey struct{}

func stateFrom(ctx context.Context) *reqState {
	s, _ := ctx.Value(stateKey{}).(*reqState)
	return s
}

// countingWriter counts the response bytes; it passes Flush through, so
// that watches stream.
type countingWriter struct {
	http.ResponseWriter
	n int64
}

func (c *countingWriter) Write(b []byte) (int, error) {
	n, err := c.ResponseWriter.Write(b)
	c.n += int64(n)
	return n, err
}

func (c *countingWriter) Flush() {
	if f, ok := c.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

func (c *countingWriter) Unwrap() http.ResponseWriter { return c.ResponseWriter }

var _ io.Writer = (*countingWriter)(nil)
