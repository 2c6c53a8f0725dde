package ssh

import (
	"fmt"
	"log/slog"
	"regexp"
	"strings"
	"time"
)

// ListenerOptions configure one SSH listener ([[listeners]] with
// protocol = "ssh" in gateway.toml; config.go maps the tables to these).
type ListenerOptions struct {
	// Listen is the address to listen on, e.g. "0.0.0.0:2222".
	Listen string `toml:"listen"`
	// HostKey is the path of the gateway's ed25519 host key (OpenSSH
	// format). It is generated on first start and kept; agents pin it in
	// their known_hosts.
	HostKey string `toml:"host_key"`
	// DefaultLogin is the remote login used when the SSH user names only
	// the target and the target has no login of its own.
	DefaultLogin string `toml:"default_login"`
	// Targets lists the targets reachable through this listener; empty:
	// every target given to New.
	Targets []string `toml:"targets"`
	// MaxAuthFailures failed authentications from one source address
	// within AuthFailureWindow make the next attempts from that address
	// fail at once until the window passes. Defaults: 10 per 1 minute.
	MaxAuthFailures   int           `toml:"max_auth_failures"`
	AuthFailureWindow time.Duration `toml:"auth_failure_window"`
	// HandshakeTimeout bounds the SSH handshake and authentication of one
	// connection; default 30 s.
	HandshakeTimeout time.Duration `toml:"handshake_timeout"`
	// MaxSessions bounds the session channels open at once on one
	// connection (OpenSSH's MaxSessions); default 10.
	MaxSessions int `toml:"max_sessions"`
	// CAKey is the path of the gateway's SSH user CA key (ed25519,
	// OpenSSH format), made on first start like the host key. It signs
	// the short-lived certificates the API issues (`gateway ssh login`),
	// and the listener accepts publickey logins with them. Empty:
	// certificates are off.
	CAKey string `toml:"ca_key"`
	// RevokedSerials is the path of the revoked certificate serials, one
	// decimal serial per line, read again whenever it changes; a missing
	// file revokes nothing.
	RevokedSerials string `toml:"revoked_serials"`
	// MaxCertTTL bounds a certificate's validity; it never outlives the
	// token it was issued for. Default 1 hour.
	MaxCertTTL time.Duration `toml:"max_certificate_ttl"`
	// Advertise is the host:port agents reach this listener at, for the
	// ssh_config `gateway ssh login` writes. Default: the listen address,
	// whose unspecified host (0.0.0.0, ::) the client replaces with the
	// API's host.
	Advertise string `toml:"advertise"`
	// AllowEnv are the environment variable names (globs: "LC_*") a
	// client may pass on (ssh -o SendEnv, SetEnv) to every target of the
	// listener; others are refused without a word, as OpenSSH does, and
	// logged. The target's sshd must accept them too (AcceptEnv).
	AllowEnv []string `toml:"allow_env"`
}

// TargetOptions describe one SSH server behind the gateway.
type TargetOptions struct {
	// Address is the upstream host:port.
	Address string `toml:"address"`
	// Login is this target's default remote login (before the listener's
	// DefaultLogin).
	Login string `toml:"login"`
	// Key is the gateway's private key for the target (OpenSSH or PEM
	// format, unencrypted), as a file: or env: reference; Password is the
	// alternative. One of the two is required.
	Key      Secret `toml:"key"`
	Password Secret `toml:"password"`
	// KnownHosts are known_hosts lines for the upstream's host key
	// ("[host]:2222 ssh-ed25519 AAAA...", hashed names and
	// @cert-authority and @revoked markers work). A key they do not list is
	// refused.
	KnownHosts []string `toml:"known_hosts"`
	// InsecureIgnoreHostKey accepts any upstream host key; the gateway
	// warns about it on every connection. Only for throwaway targets.
	InsecureIgnoreHostKey bool `toml:"insecure_ignore_host_key"`
	// ConnectTimeout bounds the TCP connect and SSH handshake towards the
	// upstream; default 10 s.
	ConnectTimeout time.Duration `toml:"connect_timeout"`
	// AllowEnv are more variable names (globs) for this target, beside
	// the listener's.
	AllowEnv []string `toml:"allow_env"`
	// SFTP serves the sftp subsystem (sftp, scp -s) to principals granted
	// the verb "sftp"; each file operation is a row. Default: refused.
	SFTP bool `toml:"sftp"`
	// SFTPMask passes file contents read over sftp through the chain
	// (as "ssh.output" events with fd "sftp"): each value the chain
	// changes reaches the client as '*' bytes of its own length, so
	// offsets stay true (sftpmask.go). Uploads pass unchanged.
	SFTPMask bool `toml:"sftp_mask"`
}

// Secret is a credential in gateway.toml: Ref is its reference
// ("file:PATH" or "env:NAME"), never the value; whoever loads the config
// resolves it (Resolve) before New. It prints and logs as its reference.
type Secret struct {
	Ref   string
	value string
}

// SecretValue is a resolved secret (ref is what it prints as).
func SecretValue(ref, value string) Secret { return Secret{Ref: ref, value: value} }

func (s *Secret) UnmarshalText(b []byte) error { s.Ref = string(b); return nil }
func (s Secret) MarshalText() ([]byte, error)  { return []byte(s.Ref), nil }
func (s Secret) String() string                { return s.Ref }
func (s Secret) LogValue() slog.Value          { return slog.StringValue(s.Ref) }

// IsSet reports whether the secret is configured.
func (s Secret) IsSet() bool { return s.Ref != "" || s.value != "" }

// Value is the resolved value ("" before Resolve).
func (s Secret) Value() string { return s.value }

// Resolve sets the value from the reference with resolve (host/config's
// resolver when the gateway loads gateway.toml).
func (s *Secret) Resolve(resolve func(ref string) (string, error)) error {
	if s.Ref == "" {
		return nil
	}
	v, err := resolve(s.Ref)
	if err != nil {
		return fmt.Errorf("secret %s: %w", s.Ref, err)
	}
	s.value = v
	return nil
}

// validLogin is what the gateway accepts as a remote login: a POSIX user
// name, so that nothing else reaches the upstream's user field.
var validLogin = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_.-]{0,31}$`)

// validTarget is a target name.
var validTarget = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$`)

// ParseUser splits the SSH user name into the remote login and the
// target: "login@target", or "target" alone with defaultLogin (which
// the caller picks: the target's Login, else the listener's DefaultLogin).
func ParseUser(user string, defaultLogin func(target string) string) (login, target string, err error) {
	if i := strings.LastIndexByte(user, '@'); i >= 0 {
		login, target = user[:i], user[i+1:]
	} else {
		target = user
	}
	if !validTarget.MatchString(target) {
		return "", "", fmt.Errorf("the SSH user must be login@target or target; %q is not a target name", target)
	}
	if login == "" && defaultLogin != nil {
		login = defaultLogin(target)
	}
	if login == "" {
		return "", target, fmt.Errorf("no login for target %s: connect as login@%s", target, target)
	}
	if !validLogin.MatchString(login) {
		return "", target, fmt.Errorf("%q is not a valid login", login)
	}
	return login, target, nil
}
