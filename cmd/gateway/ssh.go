package main

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"encoding/pem"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	xssh "golang.org/x/crypto/ssh"

	tssh "github.com/tollgate-dev/tollgate/protocols/ssh"
)

const sshUsage = `Usage: gateway ssh <login|config|ca|revoke> [flags]

Short-lived SSH certificates, so that plain 'ssh TARGET -- CMD' works in a CI
step without the token as a keyboard-interactive answer:

  gateway ssh login [--target T]... [--login L] [--token-env VAR | --token-file F] [--gateway URL]
      exchanges the OIDC token, through the gateway's API, for a certificate
      signed by the SSH listener's CA (valid no longer than the token), for a
      new ed25519 key (or --key), and writes key, certificate, known_hosts and
      an ssh_config under --dir (default ~/.tollgate/ssh). Then:
        ssh -F ~/.tollgate/ssh/config TARGET -- CMD
  gateway ssh config [--dir DIR]
      prints that ssh_config snippet (a Host per target: the gateway's address,
      User login@target, IdentityFile, CertificateFile, and the gateway's host
      key pinned through UserKnownHostsFile), e.g. to append to ~/.ssh/config.
  gateway ssh ca [--gateway URL]
      prints the listener's CA public key.
  gateway ssh revoke SERIAL... [--gateway URL] [--token T]
      revokes certificates by serial (a token in one of [admin] groups): the
      serial is appended to the listener's revoked_serials file, read again at
      the next login.

The gateway's API is the admin listener: --gateway, else $TOLLGATE_GATEWAY,
else http://<[admin] listen> of -c gateway.toml.`

func cmdSSH(args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprintln(stderr, sshUsage)
		return errUsage
	}
	switch args[0] {
	case "login":
		return cmdSSHLogin(args[1:], stdout, stderr)
	case "config":
		return cmdSSHConfig(args[1:], stdout, stderr)
	case "ca":
		return cmdSSHCA(args[1:], stdout, stderr)
	case "revoke":
		return cmdSSHRevoke(args[1:], stdout, stderr)
	case "-h", "--help", "help":
		fmt.Fprintln(stdout, sshUsage)
		return nil
	}
	fmt.Fprintf(stderr, "gateway ssh: unknown command %q\n\n%s\n", args[0], sshUsage)
	return errUsage
}

// sshAPI is the flags every ssh subcommand that calls the API shares.
type sshAPI struct {
	fs       *flag.FlagSet
	config   *string
	gateway  *string
	listener *string
}

func newSSHAPI(fs *flag.FlagSet) *sshAPI {
	return &sshAPI{fs: fs, config: configFlag(fs),
		gateway:  fs.String("gateway", "", "the gateway's API URL (default: $TOLLGATE_GATEWAY, else http://<[admin] listen> of -c)"),
		listener: fs.String("listener", "ssh", "the name of the SSH listener ([[listeners]] name)")}
}

// url is the API's base URL.
func (a *sshAPI) url() (string, error) {
	u := *a.gateway
	if u == "" {
		u = os.Getenv("TOLLGATE_GATEWAY")
	}
	if u == "" {
		cfg, err := loadConfig(a.fs, *a.config)
		if err != nil {
			return "", fmt.Errorf("no --gateway and no config to find the API in: %w", err)
		}
		if cfg.Admin.Listen == "" {
			return "", errors.New("no --gateway, and the config has no [admin] listen (the API that issues certificates)")
		}
		u = "http://" + cfg.Admin.Listen
	}
	if _, err := url.Parse(u); err != nil {
		return "", fmt.Errorf("--gateway %q: %w", u, err)
	}
	return strings.TrimSuffix(u, "/"), nil
}

// call does one API request; a non-2xx answer is an error with the
// gateway's reason.
func (a *sshAPI) call(method, path, token string, body, out any) error {
	base, err := a.url()
	if err != nil {
		return err
	}
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(b)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, base+"/v1/ssh/"+url.PathEscape(*a.listener)+path, rd)
	if err != nil {
		return err
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("gateway API: %w", err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return fmt.Errorf("gateway API: %w", err)
	}
	if resp.StatusCode/100 != 2 {
		var e struct{ Error, Reason string }
		if json.Unmarshal(b, &e) == nil && e.Reason != "" {
			return fmt.Errorf("refused (%s): %s", resp.Status, e.Reason)
		}
		if resp.StatusCode == http.StatusNotFound {
			return fmt.Errorf("refused (%s): no SSH listener %q issues certificates on %s (--listener)", resp.Status, *a.listener, base)
		}
		return fmt.Errorf("refused (%s)", resp.Status)
	}
	if s, ok := out.(*string); ok {
		*s = string(b)
		return nil
	}
	return json.Unmarshal(b, out)
}

// sshState is what `ssh login` keeps in DIR/tollgate.json for `ssh config`.
type sshState struct {
	tssh.CertResponse
	Gateway  string `json:"gateway"` // the API URL it came from
	Key      string `json:"key"`     // the private key's path
	CertFile string `json:"cert_file"`
	Known    string `json:"known_hosts"`
}

func defaultSSHDir() string {
	home, err := os.UserHomeDir()
	if err != nil {
		return filepath.Join(".tollgate", "ssh")
	}
	return filepath.Join(home, ".tollgate", "ssh")
}

func cmdSSHLogin(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("ssh login", sshUsage, stderr)
	api := newSSHAPI(fs)
	var targets listFlag
	fs.Var(&targets, "target", "a target the certificate reaches (repeatable; default: every target the access rules grant)")
	login := fs.String("login", "", "the one remote login the certificate allows (default: each target's default login, and any the rules allow)")
	tokenEnv := fs.String("token-env", "TOLLGATE_TOKEN", "the environment variable holding the OIDC token")
	tokenFile := fs.String("token-file", "", "a file holding the OIDC token (instead of --token-env)")
	dir := fs.String("dir", defaultSSHDir(), "where key, certificate, known_hosts and config are written")
	keyPath := fs.String("key", "", "an existing private key to certify (default: a new ed25519 key, DIR/id_ed25519)")
	if err := parse(fs, args); err != nil {
		return err
	}
	token, err := readToken(fs, *tokenEnv, *tokenFile)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(*dir, 0o700); err != nil {
		return fmt.Errorf("login: %w", err)
	}
	abs, err := filepath.Abs(*dir)
	if err != nil {
		return fmt.Errorf("login: %w", err)
	}
	pub, key, err := loginKey(abs, *keyPath)
	if err != nil {
		return fmt.Errorf("login: %w", err)
	}
	var cr tssh.CertResponse
	if err := api.call("POST", "/certificate", token, tssh.CertRequest{PublicKey: string(xssh.MarshalAuthorizedKey(pub)), Targets: targets, Login: *login}, &cr); err != nil {
		return fmt.Errorf("login: %w", err)
	}
	base, _ := api.url()
	st := sshState{CertResponse: cr, Gateway: base, Key: key, CertFile: key + "-cert.pub", Known: filepath.Join(abs, "known_hosts")}
	if st.Host == "" {
		u, _ := url.Parse(base)
		st.Host = u.Hostname()
	}
	if err := writeFileAtomic(st.CertFile, []byte(cr.Certificate+"\n"), 0o644); err != nil {
		return fmt.Errorf("login: %w", err)
	}
	if err := writeFileAtomic(st.Known, []byte(cr.HostKeyAlias+" "+cr.HostKey+"\n"), 0o644); err != nil {
		return fmt.Errorf("login: %w", err)
	}
	b, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return err
	}
	if err := writeFileAtomic(filepath.Join(abs, "tollgate.json"), b, 0o600); err != nil {
		return fmt.Errorf("login: %w", err)
	}
	conf, err := sshConfigText(st)
	if err != nil {
		return fmt.Errorf("login: %w", err)
	}
	if err := writeFileAtomic(filepath.Join(abs, "config"), []byte(conf), 0o600); err != nil {
		return fmt.Errorf("login: %w", err)
	}
	names := make([]string, len(cr.Targets))
	for i, t := range cr.Targets {
		names[i] = t.Name
	}
	fmt.Fprintf(stdout, "certificate serial %s for %s, valid until %s, targets: %s\n", cr.Serial, cr.Subject, cr.ValidBefore.Format(time.RFC3339), strings.Join(names, ", "))
	fmt.Fprintf(stdout, "written: %s, %s, %s\n", st.CertFile, st.Known, filepath.Join(abs, "config"))
	if len(names) > 0 {
		fmt.Fprintf(stdout, "try: ssh -F %s %s -- uname -a\n", filepath.Join(abs, "config"), names[0])
	}
	return nil
}

// readToken reads the OIDC token from a file or an environment variable
// (never from the command line, where other users of the machine see it).
func readToken(fs *flag.FlagSet, env, file string) (string, error) {
	envSet := false
	fs.Visit(func(f *flag.Flag) { envSet = envSet || f.Name == "token-env" })
	if file != "" && envSet {
		return "", errors.New("--token-env and --token-file: give one")
	}
	if file != "" {
		b, err := os.ReadFile(file)
		if err != nil {
			return "", fmt.Errorf("--token-file: %w", err)
		}
		if t := strings.TrimSpace(string(b)); t != "" {
			return t, nil
		}
		return "", fmt.Errorf("--token-file %s is empty", file)
	}
	if t := strings.TrimSpace(os.Getenv(env)); t != "" {
		return t, nil
	}
	return "", fmt.Errorf("no OIDC token: $%s is empty (--token-env VAR or --token-file F; in --dev: export %s=$(gateway token --sub you@example.com))", env, env)
}

// loginKey returns the public key to certify and its private key's
// path: the given one, or a new ed25519 key at DIR/id_ed25519 (a fresh
// key each login, as the certificate is).
func loginKey(dir, given string) (xssh.PublicKey, string, error) {
	if given != "" {
		b, err := os.ReadFile(given)
		if err != nil {
			return nil, "", err
		}
		s, err := xssh.ParsePrivateKey(b)
		if err != nil {
			return nil, "", fmt.Errorf("--key %s: %w (an unencrypted private key)", given, err)
		}
		abs, err := filepath.Abs(given)
		if err != nil {
			return nil, "", err
		}
		return s.PublicKey(), abs, nil
	}
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, "", err
	}
	blk, err := xssh.MarshalPrivateKey(priv, "tollgate ssh login")
	if err != nil {
		return nil, "", err
	}
	sp, err := xssh.NewPublicKey(pub)
	if err != nil {
		return nil, "", err
	}
	path := filepath.Join(dir, "id_ed25519")
	if err := writeFileAtomic(path, pem.EncodeToMemory(blk), 0o600); err != nil {
		return nil, "", err
	}
	if err := writeFileAtomic(path+".pub", xssh.MarshalAuthorizedKey(sp), 0o644); err != nil {
		return nil, "", err
	}
	return sp, path, nil
}

// writeFileAtomic writes through a temp file and a rename: ssh never
// reads half a key or certificate.
func writeFileAtomic(path string, b []byte, mode os.FileMode) error {
	f, err := os.CreateTemp(filepath.Dir(path), ".tmp-"+filepath.Base(path))
	if err != nil {
		return err
	}
	defer os.Remove(f.Name())
	if _, err := f.Write(b); err != nil {
		f.Close()
		return err
	}
	if err := f.Chmod(mode); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(f.Name(), path)
}

// sshConfigText is the ssh_config for a login's state: a Host per
// target, publickey only with the certificate, the gateway's host key
// pinned under an alias (so the check does not depend on the address).
func sshConfigText(st sshState) (string, error) {
	for _, p := range []string{st.Key, st.CertFile, st.Known} {
		if strings.ContainsAny(p, "\"\n") {
			return "", fmt.Errorf("path %q cannot be written into an ssh_config", p)
		}
	}
	if st.Host == "" || strings.ContainsAny(st.Host, " \t\n\"") || st.Port <= 0 {
		return "", fmt.Errorf("no usable gateway address (%q port %d)", st.Host, st.Port)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "# Tollgate: written by `gateway ssh login` for %s from %s\n", st.Subject, st.Gateway)
	fmt.Fprintf(&b, "# certificate serial %s (key id %q), valid until %s\n", st.Serial, st.KeyID, st.ValidBefore.Format(time.RFC3339))
	fmt.Fprintf(&b, "# the gateway's SSH CA: %s\n", st.CA)
	targets := slices.Clone(st.Targets)
	slices.SortFunc(targets, func(a, b tssh.CertTarget) int { return strings.Compare(a.Name, b.Name) })
	for _, t := range targets {
		if strings.ContainsAny(t.Name+t.Login, " \t\n\"*?!") {
			continue
		}
		fmt.Fprintf(&b, "\nHost %s\n", t.Name)
		fmt.Fprintf(&b, "  HostName %s\n  Port %s\n  User %s@%s\n", st.Host, strconv.Itoa(st.Port), t.Login, t.Name)
		fmt.Fprintf(&b, "  IdentityFile \"%s\"\n  CertificateFile \"%s\"\n  IdentitiesOnly yes\n  IdentityAgent none\n", st.Key, st.CertFile)
		fmt.Fprintf(&b, "  PreferredAuthentications publickey\n  BatchMode yes\n")
		fmt.Fprintf(&b, "  HostKeyAlias %s\n  UserKnownHostsFile \"%s\"\n  StrictHostKeyChecking yes\n", st.HostKeyAlias, st.Known)
	}
	return b.String(), nil
}

func cmdSSHConfig(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("ssh config", sshUsage, stderr)
	dir := fs.String("dir", defaultSSHDir(), "the directory `gateway ssh login` wrote to")
	if err := parse(fs, args); err != nil {
		return err
	}
	b, err := os.ReadFile(filepath.Join(*dir, "tollgate.json"))
	if errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("config: nothing in %s: run `gateway ssh login` first", *dir)
	}
	if err != nil {
		return fmt.Errorf("config: %w", err)
	}
	var st sshState
	if err := json.Unmarshal(b, &st); err != nil {
		return fmt.Errorf("config: %s: %w", filepath.Join(*dir, "tollgate.json"), err)
	}
	conf, err := sshConfigText(st)
	if err != nil {
		return fmt.Errorf("config: %w", err)
	}
	if time.Now().After(st.ValidBefore) {
		fmt.Fprintf(stderr, "gateway ssh config: the certificate expired at %s: run `gateway ssh login` again\n", st.ValidBefore.Format(time.RFC3339))
	}
	fmt.Fprint(stdout, conf)
	return nil
}

func cmdSSHCA(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("ssh ca", sshUsage, stderr)
	api := newSSHAPI(fs)
	if err := parse(fs, args); err != nil {
		return err
	}
	var ca string
	if err := api.call("GET", "/ca", "", nil, &ca); err != nil {
		return fmt.Errorf("ca: %w", err)
	}
	if _, _, _, _, err := xssh.ParseAuthorizedKey([]byte(ca)); err != nil {
		return fmt.Errorf("ca: the gateway answered no public key: %w", err)
	}
	fmt.Fprint(stdout, ca)
	return nil
}

func cmdSSHRevoke(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("ssh revoke", sshUsage, stderr)
	api := newSSHAPI(fs)
	token := fs.String("token", "", "an OIDC token in one of [admin] groups (default: $TOLLGATE_TOKEN)")
	reason := fs.String("reason", "", "why, for the audit row")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return errUsage
	}
	if fs.NArg() == 0 {
		fmt.Fprintln(stderr, "gateway ssh revoke: name the serials to revoke")
		return errUsage
	}
	tok := *token
	if tok == "" {
		tok = os.Getenv("TOLLGATE_TOKEN")
	}
	if tok == "" {
		return errors.New("revoke: a token in one of [admin] groups is required: --token or TOLLGATE_TOKEN")
	}
	for _, s := range fs.Args() {
		if _, err := strconv.ParseUint(s, 10, 64); err != nil {
			return fmt.Errorf("revoke: %q is not a serial (a decimal number, as `gateway ssh login` prints it)", s)
		}
		var out map[string]any
		if err := api.call("POST", "/revoke", tok, tssh.RevokeRequest{Serial: s, Reason: *reason}, &out); err != nil {
			return fmt.Errorf("revoke %s: %w", s, err)
		}
		fmt.Fprintf(stdout, "revoked %s\n", s)
	}
	return nil
}
