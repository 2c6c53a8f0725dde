//go:build unix

package testenv

import (
	"bufio"
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"
)

// SSHDBin is Debian's OpenSSH server (package openssh-server).
const SSHDBin = "/usr/sbin/sshd"

// SSHD is a throwaway OpenSSH server: its own sshd_config, host key and
// authorized_keys in a temp directory, in the foreground (-D -e) on a
// loopback port, for the life of the test. It runs as the test's user;
// as root (CI) logins are root's.
type SSHD struct {
	Addr string // 127.0.0.1:port
	Dir  string
	User string // the login that ClientKey opens
	// HostKeyLine is the server's known_hosts line ("[127.0.0.1]:port
	// ssh-ed25519 AAAA...").
	HostKeyLine string
	// ClientKeyPEM is a private key authorized_keys admits (OpenSSH
	// format); ClientKeyFile holds it for the ssh client (-i).
	ClientKeyPEM  []byte
	ClientKeyFile string

	mu  sync.Mutex
	out bytes.Buffer
	cmd *exec.Cmd
}

// SSHDOptions configure StartSSHD.
type SSHDOptions struct {
	// Config are extra sshd_config lines.
	Config []string
}

// StartSSHD starts sshd and waits until it greets. A missing sshd fails
// the test with how to install it.
func StartSSHD(t testing.TB, o SSHDOptions) *SSHD {
	t.Helper()
	if _, err := os.Stat(SSHDBin); err != nil {
		t.Fatalf("testenv: OpenSSH server is not installed (%s); run `make deps` (Debian package openssh-server): %v", SSHDBin, err)
	}
	if _, err := exec.LookPath("ssh"); err != nil {
		t.Fatalf("testenv: the OpenSSH client is not installed; run `make deps` (Debian package openssh-client): %v", err)
	}
	// sshd needs its privilege-separation directory.
	if os.Geteuid() == 0 {
		os.MkdirAll("/run/sshd", 0o755)
	}
	dir, err := os.MkdirTemp("", "tollgate-sshd-")
	if err != nil {
		t.Fatalf("testenv: %v", err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	user := os.Getenv("USER")
	if os.Geteuid() == 0 || user == "" {
		user = "root"
	}
	s := &SSHD{Addr: FreeAddr(t), Dir: dir, User: user}
	host, port, _ := net.SplitHostPort(s.Addr)

	hostPEM, hostPub := newEd25519(t, "sshd host key")
	clientPEM, clientPub := newEd25519(t, "tollgate gateway")
	s.ClientKeyPEM = clientPEM
	s.ClientKeyFile = filepath.Join(dir, "client_ed25519")
	s.HostKeyLine = fmt.Sprintf("[%s]:%s %s", host, port, strings.TrimSpace(string(ssh.MarshalAuthorizedKey(hostPub))))
	write := func(name string, b []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, b, 0o600); err != nil {
			t.Fatalf("testenv: %v", err)
		}
		return p
	}
	write("client_ed25519", clientPEM)
	hostKey := write("host_ed25519", hostPEM)
	authKeys := write("authorized_keys", ssh.MarshalAuthorizedKey(clientPub))
	cfg := []string{
		"Port " + port,
		"ListenAddress " + host,
		"HostKey " + hostKey,
		"PidFile " + filepath.Join(dir, "sshd.pid"),
		"AuthorizedKeysFile " + authKeys,
		"UsePAM no",
		"StrictModes no",
		"PermitRootLogin prohibit-password",
		"PasswordAuthentication no",
		"KbdInteractiveAuthentication no",
		"PubkeyAuthentication yes",
		"AllowTcpForwarding no",
		"X11Forwarding no",
		"MaxStartups 200",
		"MaxSessions 200",
		"Subsystem sftp internal-sftp",
		"LogLevel VERBOSE",
	}
	cfgFile := write("sshd_config", []byte(strings.Join(append(cfg, o.Config...), "\n")+"\n"))
	if out, err := exec.Command(SSHDBin, "-t", "-f", cfgFile).CombinedOutput(); err != nil {
		t.Fatalf("testenv: sshd -t: %v\n%s", err, out)
	}
	s.cmd = exec.Command(SSHDBin, "-D", "-e", "-f", cfgFile)
	s.cmd.Stdout = lockedWriterFor(&s.mu, &s.out)
	s.cmd.Stderr = s.cmd.Stdout
	if err := s.cmd.Start(); err != nil {
		t.Fatalf("testenv: start sshd: %v", err)
	}
	exited := make(chan struct{})
	go func() { s.cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		s.cmd.Process.Kill()
		<-exited
	})
	deadline := time.Now().Add(15 * time.Second)
	for {
		if greets(s.Addr) {
			return s
		}
		select {
		case <-exited:
			t.Fatalf("testenv: sshd exited at start:\n%s", s.Output())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("testenv: sshd did not answer on %s within 15 s:\n%s", s.Addr, s.Output())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Output is what sshd logged so far.
func (s *SSHD) Output() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.out.String()
}

// greets reports whether an SSH server answers on addr with its version.
func greets(addr string) bool {
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return false
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(2 * time.Second))
	line, _ := bufio.NewReader(c).ReadString('\n')
	return strings.HasPrefix(line, "SSH-2.0-")
}

// NewSSHKey makes an ed25519 key pair: the private key in OpenSSH PEM
// form and the public key.
func NewSSHKey(t testing.TB) ([]byte, ssh.PublicKey) {
	t.Helper()
	return newEd25519(t, "test key")
}

func newEd25519(t testing.TB, comment string) ([]byte, ssh.PublicKey) {
	t.Helper()
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatalf("testenv: %v", err)
	}
	blk, err := ssh.MarshalPrivateKey(priv, comment)
	if err != nil {
		t.Fatalf("testenv: %v", err)
	}
	sp, err := ssh.NewPublicKey(pub)
	if err != nil {
		t.Fatalf("testenv: %v", err)
	}
	return pem.EncodeToMemory(blk), sp
}
