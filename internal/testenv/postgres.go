//go:build unix

package testenv

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/tollgate-dev/tollgate/internal/pgcluster"
)

// PostgresBin is where Debian's postgresql package puts the server
// binaries of major version 15.
const PostgresBin = pgcluster.Bin

// Postgres is a throwaway PostgreSQL 15 cluster: initdb into a temp
// directory, then the postmaster in the foreground as the postgres user
// (initdb and postgres refuse to run as root), listening on a loopback
// port, with password (SCRAM-SHA-256) authentication over TCP.
type Postgres struct {
	Dir      string // owned by the postgres user: data/, sock/, tls/
	User     string // the superuser
	Password string // its password
	CAFile   string // with TLS: the self-signed certificate clients verify against

	addr string
	opts PostgresOptions
	cred *syscall.Credential // nil when the tests do not run as root
	mu   sync.Mutex
	out  bytes.Buffer
	srv  *pgcluster.Server
}

// PostgresOptions configure StartPostgres.
type PostgresOptions struct {
	TLS bool // ssl=on with a self-signed certificate for 127.0.0.1 and localhost
}

// StartPostgres initialises and starts a cluster that lives until the test
// ends. A missing server fails the test: protocol tests need the real one.
func StartPostgres(t testing.TB, o PostgresOptions) *Postgres {
	t.Helper()
	if err := pgcluster.Installed(); err != nil {
		t.Fatalf("testenv: %v; run `make deps` (it installs the test peers)", err)
	}
	cred, err := pgcluster.Owner()
	if err != nil {
		t.Fatalf("testenv: %v; run `make deps`", err)
	}
	dir, err := os.MkdirTemp("", "tollgate-pg-")
	if err != nil {
		t.Fatalf("testenv: %v", err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	p := &Postgres{Dir: dir, User: "tollgate_admin", Password: randomHex(12), addr: FreeAddr(t), opts: o, cred: cred}
	for _, d := range []string{"sock", "tls"} {
		os.MkdirAll(filepath.Join(dir, d), 0o700)
	}
	pw := filepath.Join(dir, "pwfile")
	os.WriteFile(pw, []byte(p.Password+"\n"), 0o600)
	if o.TLS {
		if err := p.writeCert(); err != nil {
			t.Fatalf("testenv: postgres tls: %v", err)
		}
	}
	if err := pgcluster.Chown(dir, cred); err != nil {
		t.Fatalf("testenv: %v", err)
	}
	// Anything over TCP authenticates with a password; md5 users get an
	// md5 verifier (MD5User), which pg_hba's scram-sha-256 line does not
	// accept, so the md5 lines come first for them.
	hba := "local all all trust\nhost all +md5users 127.0.0.1/32 md5\nhost all all 127.0.0.1/32 scram-sha-256\n"
	if err := pgcluster.InitDB(filepath.Join(dir, "data"), p.User, pw, hba, cred); err != nil {
		t.Fatalf("testenv: %v", err)
	}
	os.Remove(pw)
	p.start(t, o)
	t.Cleanup(p.stop)
	p.Exec(t, "CREATE ROLE md5users NOLOGIN")
	return p
}

// Credential is the postgres user's, for running its companions (such
// as pgbouncer, which refuses root).
func (p *Postgres) Credential() *syscall.Credential {
	if p.cred == nil {
		return nil
	}
	c := *p.cred
	return &c
}

// Addr is the server's host:port.
func (p *Postgres) Addr() string { return p.addr }

// Host and Port split Addr.
func (p *Postgres) Host() string { h, _, _ := net.SplitHostPort(p.addr); return h }
func (p *Postgres) Port() string { _, port, _ := net.SplitHostPort(p.addr); return port }

// URL is a libpq connection URL as the superuser to database db.
func (p *Postgres) URL(db string) string {
	return fmt.Sprintf("postgres://%s:%s@%s/%s?sslmode=disable", p.User, p.Password, p.addr, db)
}

// Output is what the server logged so far.
func (p *Postgres) Output() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.out.String()
}

// Exec runs SQL as the superuser over the local socket with psql and
// fails the test (with the server's log) if it fails. It returns psql's
// unaligned, tuples-only output.
func (p *Postgres) Exec(t testing.TB, sql string) string {
	t.Helper()
	return p.ExecDB(t, "postgres", sql)
}

// ExecDB is Exec against database db.
func (p *Postgres) ExecDB(t testing.TB, db, sql string) string {
	t.Helper()
	cmd := exec.Command("psql", "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-h", filepath.Join(p.Dir, "sock"),
		"-p", p.Port(), "-U", p.User, "-d", db, "-c", sql)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: p.cred}
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("testenv: psql %q: %v\n%s\nserver log:\n%s", sql, err, out, p.Output())
	}
	return strings.TrimSpace(string(out))
}

// MD5User creates a login role whose password is stored as an md5
// verifier, for testing the gateway's md5 path to the upstream.
func (p *Postgres) MD5User(t testing.TB, name, password string) {
	t.Helper()
	p.Exec(t, fmt.Sprintf("SET password_encryption = 'md5'; CREATE ROLE %s LOGIN SUPERUSER IN ROLE md5users PASSWORD '%s'", name, password))
}

// Kill ends the postmaster with SIGKILL, as a crash would. Backends notice
// and exit; connections through them break mid-stream.
func (p *Postgres) Kill() {
	p.mu.Lock()
	srv := p.srv
	p.mu.Unlock()
	if srv != nil {
		srv.Kill()
	}
}

// Restart stops the server with a fast shutdown (sessions are terminated,
// as an operator's restart does) and starts it again on the same data
// directory and port.
func (p *Postgres) Restart(t testing.TB) {
	t.Helper()
	p.stop()
	p.start(t, p.opts)
}

func (p *Postgres) start(t testing.TB, o PostgresOptions) {
	t.Helper()
	args := []string{"-c", "fsync=off", "-c", "synchronous_commit=off",
		"-c", "full_page_writes=off", "-c", "max_connections=200", "-c", "log_min_messages=warning",
		"-c", "cluster_name=" + p.Port()}
	if o.TLS {
		args = append(args, "-c", "ssl=on", "-c", "ssl_cert_file="+filepath.Join(p.Dir, "tls", "server.crt"),
			"-c", "ssl_key_file="+filepath.Join(p.Dir, "tls", "server.key"))
	}
	srv, err := pgcluster.Start(pgcluster.Options{DataDir: filepath.Join(p.Dir, "data"), Addr: p.addr,
		SocketDir: filepath.Join(p.Dir, "sock"), Owner: p.cred, Args: args, Output: lockedWriterFor(&p.mu, &p.out)})
	if err != nil {
		t.Fatalf("testenv: %v:\n%s", err, p.Output())
	}
	p.mu.Lock()
	p.srv = srv
	p.mu.Unlock()
}

// stop asks for a fast shutdown (SIGINT) and waits; SIGKILL after 10 s.
func (p *Postgres) stop() {
	p.mu.Lock()
	srv := p.srv
	p.mu.Unlock()
	if srv != nil {
		srv.Stop()
	}
}

// writeCert makes a self-signed certificate for 127.0.0.1 and localhost;
// CAFile is the certificate itself, which verify-full accepts.
func (p *Postgres) writeCert() error {
	certPEM, keyPEM, err := SelfSigned("127.0.0.1", "localhost")
	if err != nil {
		return err
	}
	p.CAFile = filepath.Join(p.Dir, "tls", "server.crt")
	if err := os.WriteFile(p.CAFile, certPEM, 0o644); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(p.Dir, "tls", "server.key"), keyPEM, 0o600)
}

// SelfSigned returns a PEM certificate and key (ECDSA P-256, valid a day)
// for the given IP addresses and DNS names.
func SelfSigned(hosts ...string) (certPEM, keyPEM []byte, err error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(time.Now().UnixNano()),
		Subject:               pkix.Name{CommonName: hosts[0]},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	for _, h := range hosts {
		if ip := net.ParseIP(h); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, h)
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, nil, err
	}
	kb, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kb}), nil
}

func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return fmt.Sprintf("%x", b)
}
