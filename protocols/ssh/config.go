package ssh

import (
	"fmt"
	"net"
	"regexp"
	"strconv"
	"time"

	"github.com/tollgate-dev/tollgate/host/gate"
)

// The ssh protocol in gateway.toml: a [[listeners]] table with
// protocol = "ssh" and its own keys (listenerConfig), and [[targets]]
// with protocol = "ssh" whose upstream is the server's host:port and
// whose credential is the gateway's key or password for it:
//
//	[[targets]]
//	name = "prod-web"
//	protocol = "ssh"
//	upstream = "10.0.0.5:22"
//	known_hosts = ["10.0.0.5 ssh-ed25519 AAAA..."]
//	[targets.credential]
//	type = "key"              # or "password"
//	username = "deploy"       # the default remote login
//	value = "file:/etc/tollgate/prod-web.key"   # password = "env:..." for type password
func init() {
	gate.Register(gate.Protocol{
		Name:        "ssh",
		NewListener: func() gate.Options { return &listenerConfig{} },
		NewTarget:   func() gate.Options { return &targetConfig{} },
		New:         newService,
		Try: func(l gate.Listener, targets []gate.Target) []string {
			host, port, _ := net.SplitHostPort(l.Listen)
			for _, t := range targets {
				if t.Protocol == "ssh" {
					return []string{fmt.Sprintf("SSH_ASKPASS=examples/ssh/tollgate-askpass SSH_ASKPASS_REQUIRE=force TOLLGATE_TOKEN=$TOKEN ssh -p %s %s@%s -- uname -a", port, t.Name, host)}
				}
			}
			return nil
		},
	})
}

// listenerConfig is an ssh [[listeners]] table's own keys.
type listenerConfig struct {
	// HostKey is the path of the gateway's ed25519 host key, made on
	// first start; default "ssh_host_ed25519_key", relative to the
	// directory the gateway runs in.
	HostKey      string        `toml:"host_key"`
	DefaultLogin string        `toml:"default_login"`
	Targets      []string      `toml:"targets"`
	MaxAuth      int           `toml:"max_auth_failures"`
	AuthWindow   gate.Duration `toml:"auth_failure_window"`
	Handshake    gate.Duration `toml:"handshake_timeout"`
	MaxSessions  int           `toml:"max_sessions"`
	// CAKey is the path of the user CA's ed25519 key, made on first start;
	// default "ssh_user_ca_ed25519_key" (relative: to the working
	// directory, as host_key). RevokedSerials is the revoked serials
	// file; default "ssh_revoked_serials". See ListenerOptions.
	CAKey          string        `toml:"ca_key"`
	RevokedSerials string        `toml:"revoked_serials"`
	MaxCertTTL     gate.Duration `toml:"max_certificate_ttl"`
	Advertise      string        `toml:"advertise"`
	AllowEnv       []string      `toml:"allow_env"`
}

// Check applies the listener's ranges and defaults and checks that its
// targets are ssh targets.
func (o *listenerConfig) Check(t *gate.Table) {
	t.Int("max_auth_failures", &o.MaxAuth, 1, 1_000_000, 10)
	t.Duration("auth_failure_window", &o.AuthWindow, time.Second, 24*time.Hour, time.Minute)
	t.Duration("handshake_timeout", &o.Handshake, time.Second, 10*time.Minute, 30*time.Second)
	t.Int("max_sessions", &o.MaxSessions, 1, 1000, 10)
	if o.HostKey == "" {
		o.HostKey = "ssh_host_ed25519_key"
	}
	t.Duration("max_certificate_ttl", &o.MaxCertTTL, time.Minute, 24*time.Hour, time.Hour)
	if o.CAKey == "" {
		o.CAKey = "ssh_user_ca_ed25519_key"
	}
	if o.RevokedSerials == "" {
		o.RevokedSerials = "ssh_revoked_serials"
	}
	if o.CAKey == o.HostKey {
		t.Problem("ca_key", "the user CA needs a key of its own, not host_key's")
	}
	if o.Advertise != "" {
		if h, p, err := net.SplitHostPort(o.Advertise); err != nil || h == "" || p == "" {
			t.Problem("advertise", "must be host:port, where agents reach this listener (e.g. ssh.example.com:2222)")
		}
	}
	if o.DefaultLogin != "" && !validLogin.MatchString(o.DefaultLogin) {
		t.Problem("default_login", "%q is not a login name", o.DefaultLogin)
	}
	for i, tn := range o.Targets {
		t.TargetRef(fmt.Sprintf("targets[%d]", i), tn)
	}
	checkEnvNames(t, o.AllowEnv)
	if t.Listener().TLSCert != "" || t.Listener().TLSKey != "" {
		t.Problem("tls_cert", "an ssh listener has its own host key (host_key), not a TLS certificate")
	}
}

// targetConfig is an ssh [[targets]] table's own keys.
type targetConfig struct {
	KnownHosts            []string      `toml:"known_hosts"`
	InsecureIgnoreHostKey bool          `toml:"insecure_ignore_host_key"`
	ConnectTimeout        gate.Duration `toml:"connect_timeout"`
	AllowEnv              []string      `toml:"allow_env"`
	SFTP                  bool          `toml:"sftp"`
	SFTPMask              bool          `toml:"sftp_mask"`
}

// Check checks the upstream address, the credential, and that the
// upstream's host key is pinned (or insecurity asked for by name).
func (o *targetConfig) Check(t *gate.Table) {
	t.Duration("connect_timeout", &o.ConnectTimeout, 100*time.Millisecond, 10*time.Minute, 10*time.Second)
	tg := t.Self()
	host, port, err := net.SplitHostPort(tg.Upstream)
	if _, perr := strconv.ParseUint(port, 10, 16); err != nil || host == "" || perr != nil {
		t.Problem("upstream", "must be host:port for an ssh target (e.g. 10.0.0.5:22)")
	}
	if tg.CAFile != "" {
		t.Problem("ca_file", "an ssh target pins its host key with known_hosts, not a CA file")
	}
	if len(o.KnownHosts) == 0 && !o.InsecureIgnoreHostKey {
		t.Problem("known_hosts", "list the upstream's host key (a known_hosts line; ssh-keyscan prints them), or set insecure_ignore_host_key = true for a throwaway target")
	}
	checkEnvNames(t, o.AllowEnv)
	if o.SFTPMask && !o.SFTP {
		t.Problem("sftp_mask", "masks what sftp reads: set sftp = true as well")
	}
	cr := tg.Credential
	if cr.Username != "" && !validLogin.MatchString(cr.Username) {
		t.Problem("credential.username", "%q is not a login name", cr.Username)
	}
	switch cr.Type {
	case "key":
		t.RequireSecret("credential.value", cr.Value)
	case "password":
		t.RequireSecret("credential.password", cr.Password)
	default:
		t.Problem("credential.type", "must be key (the private key in value) or password for an ssh target")
	}
}

// checkEnvNames checks allow_env: variable names, * as a glob.
func checkEnvNames(t *gate.Table, names []string) {
	for i, n := range names {
		if !validEnvGlob.MatchString(n) {
			t.Problem(fmt.Sprintf("allow_env[%d]", i), "%q is not a variable name (letters, digits, _, and * as a glob)", n)
		}
	}
}

var validEnvGlob = regexp.MustCompile(`^[A-Za-z_*][A-Za-z0-9_*]*$`)

// newService builds an ssh listener from its tables, with the targets'
// secrets resolved.
func newService(l gate.Listener, targets map[string]*gate.Target, deps gate.Deps) (gate.Service, error) {
	o, ok := l.Options.(*listenerConfig)
	if !ok {
		return nil, fmt.Errorf("ssh: listener %s: no ssh options", l.Name)
	}
	opts := ListenerOptions{Listen: l.Listen, HostKey: o.HostKey, DefaultLogin: o.DefaultLogin, Targets: o.Targets,
		MaxAuthFailures: o.MaxAuth, AuthFailureWindow: o.AuthWindow.Duration, HandshakeTimeout: o.Handshake.Duration, MaxSessions: o.MaxSessions,
		CAKey: o.CAKey, RevokedSerials: o.RevokedSerials, MaxCertTTL: o.MaxCertTTL.Duration, Advertise: o.Advertise, AllowEnv: o.AllowEnv}
	tos := map[string]TargetOptions{}
	for name, t := range targets {
		if t.Protocol != "ssh" {
			continue
		}
		tc, _ := t.Options.(*targetConfig)
		if tc == nil {
			tc = &targetConfig{}
		}
		to := TargetOptions{Address: t.Upstream, Login: t.Credential.Username, KnownHosts: tc.KnownHosts,
			InsecureIgnoreHostKey: tc.InsecureIgnoreHostKey, ConnectTimeout: tc.ConnectTimeout.Duration, AllowEnv: tc.AllowEnv, SFTP: tc.SFTP, SFTPMask: tc.SFTPMask}
		switch t.Credential.Type {
		case "key":
			to.Key = SecretValue(t.Credential.Value.Ref, t.Credential.Value.Value())
		case "password":
			to.Password = SecretValue(t.Credential.Password.Ref, t.Credential.Password.Value())
		}
		tos[name] = to
	}
	lis, err := New(l.Name, opts, tos, deps)
	if err != nil {
		return nil, err
	}
	return lis, nil
}
