package kube

import (
	"context"
	"fmt"
	"net"
	"net/url"
	"os"

	"github.com/tollgate-dev/tollgate/host/gate"
)

// The kube protocol in gateway.toml: a [[listeners]] table with
// protocol = "kube" serves one cluster target's API over HTTPS, and a
// [[targets]] table with protocol = "kube" is the cluster: its API
// server's URL, the CA that signed its serving certificate, and the
// gateway's bearer token for it.
//
//	[[listeners]]
//	name = "prod-cluster"
//	protocol = "kube"
//	listen = "127.0.0.1:8443"
//	tls_cert = "/etc/tollgate/kube.crt"
//	tls_key = "/etc/tollgate/kube.key"
//	target = "prod"
//
//	[[targets]]
//	name = "prod"
//	protocol = "kube"
//	upstream = "https://10.0.0.1:6443"
//	ca_file = "/etc/tollgate/prod-ca.crt"
//	impersonate = true        # Impersonate-User: the principal; -Group: its groups
//	[targets.credential]
//	type = "bearer"
//	token = "file:/etc/tollgate/prod-token"
//
// Access rules see the RBAC verb in upper case (GET, LIST, WATCH, CREATE,
// UPDATE, PATCH, DELETE, DELETECOLLECTION) as the method, and a resource
// path (ResourcePath) as the path:
//
//	[[access]]
//	targets = ["prod"]
//	methods = ["GET", "LIST", "WATCH"]
//	paths = ["/namespaces/default", "/nonresource/"]
func init() {
	gate.Register(gate.Protocol{
		Name:        "kube",
		NewListener: func() gate.Options { return &listenerConfig{} },
		NewTarget:   func() gate.Options { return &targetConfig{} },
		Serve: func(t *gate.Table, dev bool) {
			l := t.Listener()
			if !dev && l.TLSCert == "" {
				t.Problem("tls_cert", "a kube listener serves HTTPS: set tls_cert and tls_key (serve --dev makes a certificate in memory)")
			}
		},
		New: newService,
		Try: func(l gate.Listener, _ []gate.Target) []string {
			// serve --dev's certificate is made in memory: nothing to trust.
			tls := ""
			if l.TLSCert == "" {
				tls = " --insecure-skip-tls-verify"
			}
			return []string{fmt.Sprintf("kubectl --server https://%s%s --token \"$TOKEN\" get pods", l.Listen, tls)}
		},
	})
}

// listenerConfig is a kube [[listeners]] table's own keys.
type listenerConfig struct {
	// Target is the cluster the listener serves.
	Target string `toml:"target"`
}

// Check requires a kube target.
func (o *listenerConfig) Check(t *gate.Table) {
	if tg := t.TargetRef("target", o.Target); tg != nil && tg.Protocol != "kube" {
		t.Problem("target", "%q is a %s target; a kube listener serves a kube target", o.Target, tg.Protocol)
	}
	l := t.Listener()
	if (l.TLSCert == "") != (l.TLSKey == "") {
		t.Problem("tls_key", "tls_cert and tls_key go together")
	}
}

// targetConfig is a kube [[targets]] table's own keys.
type targetConfig struct {
	// Impersonate sends the principal as Impersonate-User (its subject)
	// and Impersonate-Group (its groups), so that the cluster's RBAC and
	// audit log see who it was; the credential then needs the impersonate
	// verb.
	Impersonate bool `toml:"impersonate"`
}

// Check checks the upstream URL and the credential.
func (o *targetConfig) Check(t *gate.Table) {
	tg := t.Self()
	u, err := url.Parse(tg.Upstream)
	if err != nil || u.Scheme != "https" || u.Host == "" || (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.User != nil {
		t.Problem("upstream", "must be the API server's https://host:port URL")
	}
	switch tg.Credential.Type {
	case "bearer":
		t.RequireSecret("credential.token", tg.Credential.Token)
	default:
		t.Problem("credential.type", "must be bearer (the gateway's token for the API server, in token) for a kube target")
	}
}

// newService builds a kube listener from its tables, with the targets'
// secrets resolved.
func newService(l gate.Listener, targets map[string]*gate.Target, deps gate.Deps) (gate.Service, error) {
	o, ok := l.Options.(*listenerConfig)
	if !ok {
		return nil, fmt.Errorf("kube: listener %s: no kube options", l.Name)
	}
	tg := targets[o.Target]
	if tg == nil {
		return nil, fmt.Errorf("kube: listener %s: no target %q", l.Name, o.Target)
	}
	to, _ := tg.Options.(*targetConfig)
	opts := Options{
		Name: l.Name, Listen: l.Listen, TLSCert: l.TLSCert, TLSKey: l.TLSKey, DevTLS: deps.DevTLS,
		Target: TargetOptions{Name: tg.Name, Upstream: tg.Upstream, Token: tg.Credential.Token.Value()},
	}
	if to != nil {
		opts.Target.Impersonate = to.Impersonate
	}
	if tg.CAFile != "" {
		pem, err := os.ReadFile(tg.CAFile)
		if err != nil {
			return nil, fmt.Errorf("kube: target %s: ca_file: %w", tg.Name, err)
		}
		opts.Target.CAPEM = pem
	}
	ln, err := New(opts, deps)
	if err != nil {
		return nil, err
	}
	return &service{ln}, nil
}

// service is a Listener as gate.Service.
type service struct{ *Listener }

func (s *service) Name() string                       { return s.opts.Name }
func (s *service) Addr() net.Addr                     { return s.ln.Addr() }
func (s *service) Shutdown(ctx context.Context) error { return s.Listener.Shutdown(ctx) }
