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
	"time"

	"github.com/tollgate-dev/tollgate/host/config"
)

// upstream is one target: where it is and how the gateway proves itself.
type upstream struct {
	name      string
	url       *url.URL
	cred      config.Credential
	transport *http.Transport
}

func newUpstream(t *config.Target) (*upstream, error) {
	u, err := url.Parse(t.Upstream)
	if err != nil {
		return nil, fmt.Errorf("target %s: upstream: %w", t.Name, err)
	}
	tr := &http.Transport{
		Proxy:                 nil, // never send target traffic through an environment proxy
		DialContext:           (&net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		ForceAttemptHTTP2:     true,
		MaxIdleConns:          1024,
		MaxIdleConnsPerHost:   256, // the default of 2 would redial under any concurrency
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   10 * time.Second,
		ExpectContinueTimeout: time.Second,
	}
	if t.CAFile != "" {
		pem, err := os.ReadFile(t.CAFile)
		if err != nil {
			return nil, fmt.Errorf("target %s: ca_file: %w", t.Name, err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("target %s: ca_file %s holds no PEM certificate", t.Name, t.CAFile)
		}
		tr.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	}
	return &upstream{name: t.Name, url: u, cred: t.Credential, transport: tr}, nil
}

// inject replaces whatever the client said about credentials with the one
// the gateway holds for this target.
func (u *upstream) inject(h http.Header) {
	h.Del("Authorization")
	h.Del("Proxy-Authorization")
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
		// FlushInterval stays 0: ReverseProxy already flushes at once for
		// streaming responses (unknown length, text/event-stream).
	}
}
