package ssh

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	xssh "golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"

	"github.com/tollgate-dev/tollgate/host/gate"
)

// target is a TargetOptions made ready: its credential parsed and its
// known_hosts compiled.
type target struct {
	name  string
	opts  TargetOptions
	auth  []xssh.AuthMethod
	known xssh.HostKeyCallback
	algos []string                      // host key algorithms known_hosts has keys of
	scrub atomic.Pointer[gate.Scrubber] // the password, blanked in output (a test swaps it while serving)
}

func newTarget(name string, o TargetOptions) (*target, error) {
	t := &target{name: name, opts: o}
	if o.Address == "" {
		return nil, fmt.Errorf("target %s: address is required", name)
	}
	if _, _, err := net.SplitHostPort(o.Address); err != nil {
		return nil, fmt.Errorf("target %s: address %q: %w", name, o.Address, err)
	}
	if o.Login != "" && !validLogin.MatchString(o.Login) {
		return nil, fmt.Errorf("target %s: login %q is not a valid login", name, o.Login)
	}
	switch {
	case o.Key.IsSet() && o.Password.IsSet():
		return nil, fmt.Errorf("target %s: set key or password, not both", name)
	case o.Key.IsSet():
		if o.Key.Value() == "" {
			return nil, fmt.Errorf("target %s: key %s is not resolved", name, o.Key.Ref)
		}
		signer, err := xssh.ParsePrivateKey([]byte(o.Key.Value()))
		if err != nil {
			// The parser's error does not quote the key.
			return nil, fmt.Errorf("target %s: key %s: %w", name, o.Key.Ref, err)
		}
		t.auth = []xssh.AuthMethod{xssh.PublicKeys(signer)}
	case o.Password.IsSet():
		if o.Password.Value() == "" {
			return nil, fmt.Errorf("target %s: password %s is not resolved", name, o.Password.Ref)
		}
		pw := o.Password.Value()
		t.scrub.Store(gate.NewScrubber([]string{pw}))
		t.auth = []xssh.AuthMethod{xssh.Password(pw), xssh.KeyboardInteractive(func(_, _ string, qs []string, _ []bool) ([]string, error) {
			ans := make([]string, len(qs))
			for i := range ans {
				ans[i] = pw
			}
			return ans, nil
		})}
	default:
		return nil, fmt.Errorf("target %s: a key or a password is required", name)
	}
	if o.InsecureIgnoreHostKey {
		return t, nil
	}
	if len(o.KnownHosts) == 0 {
		return nil, fmt.Errorf("target %s: known_hosts lines are required (or insecure_ignore_host_key = true)", name)
	}
	known, algos, err := compileKnownHosts(o.KnownHosts)
	if err != nil {
		return nil, fmt.Errorf("target %s: known_hosts: %w", name, err)
	}
	t.known, t.algos = known, algos
	return t, nil
}

// compileKnownHosts builds knownhosts' matcher (host patterns, hashed
// names, markers) from lines: it reads only files, so the lines go
// through a temporary file that is removed at once.
func compileKnownHosts(lines []string) (xssh.HostKeyCallback, []string, error) {
	var buf bytes.Buffer
	algos := map[string]bool{}
	for i, l := range lines {
		l = strings.TrimSpace(l)
		if l == "" || strings.HasPrefix(l, "#") {
			continue
		}
		_, _, key, _, _, err := xssh.ParseKnownHosts([]byte(l))
		if err != nil {
			return nil, nil, fmt.Errorf("line %d: %w", i+1, err)
		}
		algos[key.Type()] = true
		buf.WriteString(l)
		buf.WriteByte('\n')
	}
	f, err := os.CreateTemp("", "tollgate-known-hosts-")
	if err != nil {
		return nil, nil, err
	}
	defer os.Remove(f.Name())
	_, err = f.Write(buf.Bytes())
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return nil, nil, err
	}
	cb, err := knownhosts.New(f.Name())
	if err != nil {
		return nil, nil, err
	}
	var list []string
	for a := range algos {
		list = append(list, hostKeyAlgos(a)...)
	}
	return cb, list, nil
}

// hostKeyAlgos are the negotiation names of a key type (an RSA key is
// offered with SHA-2 signatures).
func hostKeyAlgos(keyType string) []string {
	if keyType == xssh.KeyAlgoRSA {
		return []string{xssh.KeyAlgoRSASHA512, xssh.KeyAlgoRSASHA256, xssh.KeyAlgoRSA}
	}
	return []string{keyType}
}

// UpstreamError is why the upstream could not be reached; Message is
// safe to show the client (it names the target, never the credential
// or the upstream's address).
type UpstreamError struct {
	Message string
	Err     error
}

func (e *UpstreamError) Error() string { return e.Message + ": " + e.Err.Error() }
func (e *UpstreamError) Unwrap() error { return e.Err }

// dial connects and authenticates to the target as login.
func (t *target) dial(ctx context.Context, login string, log *slog.Logger) (*xssh.Client, error) {
	timeout := t.opts.ConnectTimeout
	if timeout <= 0 {
		timeout = 10 * time.Second
	}
	var hostKeyErr error
	cfg := &xssh.ClientConfig{
		User:    login,
		Auth:    t.auth,
		Timeout: timeout,
		HostKeyCallback: func(host string, remote net.Addr, key xssh.PublicKey) error {
			if t.opts.InsecureIgnoreHostKey {
				log.Warn("upstream host key NOT verified: insecure_ignore_host_key is set for this target",
					"target", t.name, "host_key", xssh.FingerprintSHA256(key))
				return nil
			}
			hostKeyErr = t.checkHostKey(host, remote, key)
			return hostKeyErr
		},
		HostKeyAlgorithms: t.algos,
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	nc, err := (&net.Dialer{}).DialContext(ctx, "tcp", t.opts.Address)
	if err != nil {
		return nil, &UpstreamError{Message: "target " + t.name + " is unreachable (" + dialReason(err) + ")", Err: err}
	}
	nc.SetDeadline(time.Now().Add(timeout))
	stop := context.AfterFunc(ctx, func() { nc.SetDeadline(time.Now()) })
	c, chans, reqs, err := xssh.NewClientConn(nc, t.opts.Address, cfg)
	stop()
	if err != nil {
		nc.Close()
		var he *hostKeyError
		switch {
		case errors.As(hostKeyErr, &he):
			return nil, &UpstreamError{Message: he.message, Err: err}
		case strings.Contains(err.Error(), "unable to authenticate"):
			return nil, &UpstreamError{Message: "target " + t.name + " refused the gateway's credential for login " + login, Err: err}
		}
		return nil, &UpstreamError{Message: "target " + t.name + ": SSH handshake failed", Err: err}
	}
	nc.SetDeadline(time.Time{})
	return xssh.NewClient(c, chans, reqs), nil
}

type hostKeyError struct{ message string }

func (e *hostKeyError) Error() string { return e.message }

// checkHostKey matches the upstream's key against known_hosts.
func (t *target) checkHostKey(host string, remote net.Addr, key xssh.PublicKey) error {
	err := t.known(host, remote, key)
	if err == nil {
		return nil
	}
	got := key.Type() + " " + xssh.FingerprintSHA256(key)
	var ke *knownhosts.KeyError
	var re *knownhosts.RevokedError
	switch {
	case errors.As(err, &re):
		return &hostKeyError{"target " + t.name + ": the upstream's host key " + got + " is revoked in known_hosts; refusing to connect"}
	case errors.As(err, &ke) && len(ke.Want) == 0:
		return &hostKeyError{"target " + t.name + ": the upstream's host key " + got + " is not in the target's known_hosts; refusing to connect"}
	case errors.As(err, &ke):
		var want []string
		for _, k := range ke.Want {
			want = append(want, k.Key.Type()+" "+xssh.FingerprintSHA256(k.Key))
		}
		return &hostKeyError{"target " + t.name + ": the upstream's host key CHANGED: it presented " + got +
			", known_hosts has " + strings.Join(want, ", ") + "; refusing to connect (someone may be intercepting, or the server was reinstalled)"}
	}
	return &hostKeyError{"target " + t.name + ": host key check failed: " + err.Error()}
}

func dialReason(err error) string {
	switch {
	case errors.Is(err, syscall.ECONNREFUSED):
		return "connection refused"
	case errors.Is(err, context.DeadlineExceeded), os.IsTimeout(err):
		return "connection timed out"
	case errors.Is(err, syscall.EHOSTUNREACH), errors.Is(err, syscall.ENETUNREACH):
		return "no route to host"
	}
	var dnsErr *net.DNSError
	if errors.As(err, &dnsErr) {
		return "its host name does not resolve"
	}
	return "connection failed"
}
