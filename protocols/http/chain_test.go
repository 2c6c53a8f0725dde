package http_test

import (
	"context"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tollgate-dev/tollgate/host/access"
	"github.com/tollgate-dev/tollgate/host/audit"
	"github.com/tollgate-dev/tollgate/host/audit/audittest"
	"github.com/tollgate-dev/tollgate/host/config"
	"github.com/tollgate-dev/tollgate/host/event"
	"github.com/tollgate-dev/tollgate/host/gate"
	"github.com/tollgate-dev/tollgate/host/identity"
	"github.com/tollgate-dev/tollgate/internal/testenv"
	httpproto "github.com/tollgate-dev/tollgate/protocols/http"
)

// requestRow is the http.request row of session sid.
func requestRow(t *testing.T, rec *testenv.Recorder, sid string) audit.Row {
	t.Helper()
	for _, r := range rec.Rows() {
		if r.SessionID == sid && r.Kind == "http.request" {
			return r
		}
	}
	t.Fatalf("no request row for session %s", sid)
	return audit.Row{}
}

// update rewrites the golden files of audit rows (audittest.Golden).
var update = flag.Bool("update", false, "rewrite testdata's golden audit rows")

// chainFunc is a chain written in Go, standing in for the plugins the
// WebAssembly host will run; the contract under test is the listener's.
type chainFunc func(ev *event.Event) (event.Verdict, error)

func (f chainFunc) Process(_ context.Context, ev *event.Event) (event.Verdict, error) { return f(ev) }

type inproc struct {
	base string // http(s)://addr
	tok  string
	rec  *testenv.Recorder
	up   *testenv.Upstream
	cli  *http.Client
}

// startInProcess runs one listener in this process in front of upstream
// (a URL), with the given chain and extra target/listener settings.
func startInProcess(t testing.TB, chain event.Chain, upstream string, target func(*config.Target), listener func(*config.Listener)) *inproc {
	t.Helper()
	issLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	iss, err := identity.NewDevIssuer(&config.Dev{IssuerListen: issLn.Addr().String(), Audience: "tollgate"}, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	issSrv := &http.Server{Handler: iss.Handler()}
	go issSrv.Serve(issLn)
	t.Cleanup(func() { issSrv.Close() })
	tok, err := iss.Mint(identity.MintOptions{Subject: "agent", Claims: map[string]any{"repository": "acme/app"}})
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Parse("t.toml", []byte(fmt.Sprintf(`
[[targets]]
name = "t"
protocol = "http"
upstream = %q
[[listeners]]
name = "l"
protocol = "http"
listen = "127.0.0.1:0"
[[listeners.routes]]
target = "t"
[[access]]
name = "all"
targets = ["t"]
`, upstream)), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if target != nil {
		target(&cfg.Targets[0])
	}
	if listener != nil {
		listener(&cfg.Listeners[0])
	}
	rec := &testenv.Recorder{}
	l, err := httpproto.New(cfg.Listeners[0], map[string]*config.Target{"t": &cfg.Targets[0]}, gate.Deps{
		GatewayID: "test",
		Auth:      identity.NewVerifier([]config.Issuer{iss.IssuerConfig()}, 10, identity.Options{}),
		Policy:    access.New(cfg.Access), Chain: chain, Recorder: rec,
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := l.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Shutdown(context.Background()) })
	scheme := "http"
	if cfg.Listeners[0].TLSCert != "" {
		scheme = "https"
	}
	return &inproc{base: scheme + "://" + l.Addr().String(), tok: tok, rec: rec, cli: http.DefaultClient}
}

func (p *inproc) get(t *testing.T, path string) (*http.Response, errorBody, string) {
	t.Helper()
	req, _ := http.NewRequest("GET", p.base+path, nil)
	req.Header.Set("Authorization", "Bearer "+p.tok)
	resp, err := p.cli.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var eb errorBody
	json.Unmarshal(b, &eb)
	return resp, eb, string(b)
}

func TestChainVerdicts(t *testing.T) {
	up := testenv.StartUpstream(t, nil)
	chain := chainFunc(func(ev *event.Event) (event.Verdict, error) {
		path := ev.Fields["path"]
		switch {
		case ev.Phase == event.Request && path == "/deny":
			return event.Verdict{Action: event.Deny, Plugin: "guard", Reason: "DROP is not allowed here"}, nil
		case ev.Phase == event.Request && path == "/hold":
			return event.Verdict{Action: event.Hold, Plugin: "approve", Reason: "writes need a human"}, nil
		case ev.Phase == event.Request && path == "/broken":
			return event.Verdict{}, errors.New("plugin trapped")
		case ev.Phase == event.Response && path == "/secret-answer":
			return event.Verdict{Action: event.Deny, Plugin: "mask", Reason: "the answer holds a secret"}, nil
		case ev.Phase == event.Request && path == "/rewrite":
			return event.Verdict{Action: event.Rewrite, Plugin: "guard", Changes: map[string]string{
				"path": "/rewritten", "header.X-Added": "yes", "header.Authorization": "Bearer stolen"},
				Annotations: []event.Annotation{{Key: "rewrote", Value: "path"}}}, nil
		case ev.Phase == event.Request:
			if ev.Principal == nil || ev.Principal.Subject != "agent" || ev.Fields["header.Authorization"] != "" {
				return event.Verdict{}, fmt.Errorf("bad event: %+v", ev)
			}
			return event.Verdict{Action: event.Allow, Annotations: []event.Annotation{{Key: "seen_by", Value: "chain"}}}, nil
		}
		return event.Verdict{Action: event.Allow}, nil
	})
	p := startInProcess(t, chain, up.URL, nil, nil)

	for _, tc := range []struct{ path, reason string }{
		{"/deny", "DROP is not allowed here"},
		{"/hold", "writes need a human"},
		{"/broken", "policy chain failed"},
		{"/secret-answer", "the answer holds a secret"},
	} {
		resp, eb, body := p.get(t, tc.path)
		if resp.StatusCode != 403 || eb.Error != "denied" || !strings.Contains(eb.Reason, tc.reason) {
			t.Fatalf("%s: %d %s", tc.path, resp.StatusCode, body)
		}
		if row := requestRow(t, p.rec, eb.SessionID); row.Status != "403" || row.Error == "" {
			t.Fatalf("%s: row status %q error %q", tc.path, row.Status, row.Error)
		}
	}
	// Only the response-phase deny reached the upstream.
	if seen := up.Seen(); len(seen) != 1 || seen[0].Path != "/secret-answer" {
		t.Fatalf("upstream saw %+v", seen)
	}

	resp, _, body := p.get(t, "/rewrite")
	if resp.StatusCode != 200 {
		t.Fatalf("rewrite: %d %s", resp.StatusCode, body)
	}
	last := up.Seen()[len(up.Seen())-1]
	if last.Path != "/rewritten" || last.Header.Get("X-Added") != "yes" || last.Header.Get("Authorization") == "Bearer stolen" {
		t.Fatalf("rewrite reached the upstream as %s %v", last.Path, last.Header)
	}

	resp, _, _ = p.get(t, "/ok")
	if resp.StatusCode != 200 {
		t.Fatalf("allow: %d", resp.StatusCode)
	}
	// Every verdict is in its row: the plugin, the reason, the annotations.
	byPath := map[string]audit.Row{}
	for _, r := range p.rec.Rows() {
		if r.Kind == "http.request" {
			byPath[r.Request["path"]] = r
		}
	}
	want := map[string][3]string{
		"/deny":          {"deny", "guard", "DROP is not allowed here"},
		"/hold":          {"hold", "approve", "writes need a human"},
		"/broken":        {"error", "", "policy chain failed"},
		"/secret-answer": {"deny", "mask", "the answer holds a secret"},
		"/rewritten":     {"rewrite", "guard", ""},
		"/ok":            {"allow", "", ""},
	}
	for path, w := range want {
		r, ok := byPath[path]
		if !ok {
			t.Errorf("no row for %s", path)
			continue
		}
		if r.Verdict != w[0] || r.Plugin != w[1] || r.Reason != w[2] {
			t.Errorf("%s: verdict %q plugin %q reason %q, want %v", path, r.Verdict, r.Plugin, r.Reason, w)
		}
	}
	if byPath["/rewritten"].Annotations["rewrote"] != "path" || byPath["/ok"].Annotations["seen_by"] != "chain" {
		t.Errorf("annotations missing: %v %v", byPath["/rewritten"].Annotations, byPath["/ok"].Annotations)
	}
	if byPath["/rewritten"].Request["header.Authorization"] != "" {
		t.Error("a rewrite of the Authorization header landed in the audit row")
	}
	// What HTTP records, whole: a change shows as a diff in review.
	audittest.Golden(t, "testdata/chain_verdicts.json", p.rec.Rows(), strings.TrimPrefix(p.base, "http://"), "GATEWAY")
}

// writeCert stores a test server's certificate as a PEM CA file.
func writeCert(t *testing.T, srv *httptest.Server) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "ca.pem")
	der := srv.Certificate().Raw
	if err := os.WriteFile(p, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestUpstreamTLS(t *testing.T) {
	up := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "over tls")
	}))
	defer up.Close()
	ca := writeCert(t, up)

	p := startInProcess(t, chainFunc(func(*event.Event) (event.Verdict, error) { return event.Verdict{}, nil }),
		up.URL, func(tg *config.Target) { tg.CAFile = ca }, nil)
	resp, _, body := p.get(t, "/x")
	if resp.StatusCode != 200 || body != "over tls" {
		t.Fatalf("with the CA: %d %s", resp.StatusCode, body)
	}

	// Without the CA the upstream's certificate is not trusted: 502, and
	// the TLS error stays in the audit row, not in the answer.
	p = startInProcess(t, chainFunc(func(*event.Event) (event.Verdict, error) { return event.Verdict{}, nil }),
		up.URL, nil, nil)
	resp, eb, body := p.get(t, "/x")
	if resp.StatusCode != 502 || strings.Contains(body, "x509") {
		t.Fatalf("untrusted upstream: %d %s", resp.StatusCode, body)
	}
	if row := requestRow(t, p.rec, eb.SessionID); !strings.Contains(row.Error, "certificate") {
		t.Errorf("audit error = %q, want the certificate problem", row.Error)
	}
}

func TestListenerTLS(t *testing.T) {
	// Borrow httptest's certificate for 127.0.0.1 as the listener's.
	donor := httptest.NewTLSServer(http.NotFoundHandler())
	donor.Close()
	dir := t.TempDir()
	cert := donor.TLS.Certificates[0]
	certPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Certificate[0]})
	keyDER, err := marshalKey(cert.PrivateKey)
	if err != nil {
		t.Fatal(err)
	}
	keyPEM := pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER})
	os.WriteFile(filepath.Join(dir, "c.pem"), certPEM, 0o600)
	os.WriteFile(filepath.Join(dir, "k.pem"), keyPEM, 0o600)

	up := testenv.StartUpstream(t, nil)
	p := startInProcess(t, chainFunc(func(*event.Event) (event.Verdict, error) { return event.Verdict{}, nil }),
		up.URL, nil, func(l *config.Listener) {
			l.TLSCert, l.TLSKey = filepath.Join(dir, "c.pem"), filepath.Join(dir, "k.pem")
		})
	p.cli = donor.Client()
	p.cli.Timeout = 10 * time.Second
	resp, _, body := p.get(t, "/x")
	if resp.StatusCode != 200 || resp.TLS == nil {
		t.Fatalf("over TLS: %d %s", resp.StatusCode, body)
	}
	// The listener wraps each connection (to record the server's own
	// refusals), which hides the *tls.Conn from net/http; the handler
	// must still know the request came over TLS.
	if got := up.Seen()[0].Header.Get("X-Forwarded-Proto"); got != "https" {
		t.Errorf("upstream saw X-Forwarded-Proto %q, want https", got)
	}
}

func marshalKey(k any) ([]byte, error) { return x509.MarshalPKCS8PrivateKey(k) }
