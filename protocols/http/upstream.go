package http

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"strings"
	"sync"

	"github.com/tollgate-dev/tollgate/host/gate"
)

// upstream is one target: where it is and how the gateway proves itself.
type upstream struct {
	name      string
	url       *url.URL
	cred      gate.Credential
	transport *h1Transport
	// scrub blanks cred wherever it comes back in a response.
	scrub *gate.Scrubber
	// upgrades are the protocols a client may switch to (lower case).
	upgrades []string
	// synced: the target's rows are fsynced before its requests go out
	// and before its answers are released (durable.go).
	synced bool
	// git: a Git smart HTTP target; gitScan: its pushes are scanned for
	// secrets; gitMaxPush bounds a pushed pack.
	git, gitScan bool
	gitMaxPush   int64
}

func newUpstream(t *gate.Target) (*upstream, error) {
	u, err := url.Parse(t.Upstream)
	if err != nil {
		return nil, fmt.Errorf("target %s: upstream: %w", t.Name, err)
	}
	var tlsCfg *tls.Config
	if u.Scheme == "https" {
		tlsCfg = &tls.Config{ServerName: u.Hostname(), MinVersion: tls.VersionTLS12, NextProtos: []string{"http/1.1"}}
		if t.CAFile != "" {
			pem, err := os.ReadFile(t.CAFile)
			if err != nil {
				return nil, fmt.Errorf("target %s: ca_file: %w", t.Name, err)
			}
			pool := x509.NewCertPool()
			if !pool.AppendCertsFromPEM(pem) {
				return nil, fmt.Errorf("target %s: ca_file %s holds no PEM certificate", t.Name, t.CAFile)
			}
			tlsCfg.RootCAs = pool
		}
	}
	addr := u.Host
	if u.Port() == "" {
		port := "80"
		if u.Scheme == "https" {
			port = "443"
		}
		addr = net.JoinHostPort(u.Hostname(), port)
	}
	tr := newH1Transport(addr, tlsCfg)
	ups := make([]string, len(targetOptions(t).Upgrades))
	for i, p := range targetOptions(t).Upgrades {
		ups[i] = strings.ToLower(p)
	}
	o := targetOptions(t)
	return &upstream{name: t.Name, url: u, cred: t.Credential, transport: tr, scrub: newScrubber(t.Credential), upgrades: ups,
		synced: t.Synced(), git: o.Git, gitScan: o.GitSecretScan, gitMaxPush: o.GitMaxPushBytes}, nil
}

// inject replaces whatever the client said about credentials with the one
// the gateway holds for this target.
func (u *upstream) inject(h http.Header) {
	h.Del("Authorization")
	h.Del("Proxy-Authorization")
	h.Del("Cookie") // only the gateway's credential reaches the target
	switch u.cred.Type {
	case "bearer":
		h.Set("Authorization", "Bearer "+u.cred.Token.Value())
	case "basic":
		r := http.Request{Header: h}
		r.SetBasicAuth(u.cred.Username, u.cred.Password.Value())
	case "header":
		h.Set(u.cred.Header, u.cred.Value.Value())
	}
}

// proxy builds the reverse proxy for this upstream; hooks come from the
// handler so the proxy itself stays free of policy.
func (u *upstream) proxy(rewrite func(*httputil.ProxyRequest), modify func(*http.Response) error, fail func(http.ResponseWriter, *http.Request, error)) *httputil.ReverseProxy {
	return &httputil.ReverseProxy{
		Rewrite:        rewrite,
		Transport:      u.transport,
		ModifyResponse: modify,
		ErrorHandler:   fail,
		BufferPool:     copyBuffers,
		// FlushInterval stays 0: ReverseProxy already flushes at once for
		// streaming responses (unknown length, text/event-stream).
	}
}

// copyBuffers recycles the 32 KiB buffers ReverseProxy copies bodies with;
// without it every response allocates one and the GC runs far more often.
var copyBuffers = &bufferPool{}

type bufferPool struct{ p sync.Pool }

func (b *bufferPool) Get() []byte {
	if v, ok := b.p.Get().(*[]byte); ok {
		return *v
	}
	return make([]byte, 32<<10)
}

func (b *bufferPool) Put(buf []byte) { b.p.Put(&buf) }
