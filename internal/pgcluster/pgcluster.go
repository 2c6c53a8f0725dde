//go:build unix

// Package pgcluster runs a PostgreSQL 15 cluster of its own: initdb into a
// directory, then the postmaster in the foreground on a loopback port,
// with password (SCRAM-SHA-256) authentication over TCP. It serves the
// tests' throwaway servers (internal/testenv) and the demo database of
// `gateway serve --dev` (cmd/gateway/internal/demo).
//
// initdb and postgres refuse to run as root: a root process runs them as
// the postgres user (which Debian's postgresql package creates), and the
// directories they use must belong to that user ([Chown]).
package pgcluster

import (
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"syscall"
	"time"
)

// Bin is where Debian's postgresql package puts the server binaries of
// major version 15.
const Bin = "/usr/lib/postgresql/15/bin"

// ErrNotInstalled is returned when the server binaries are missing.
var ErrNotInstalled = errors.New("PostgreSQL 15 is not installed (" + Bin + ")")

// Installed reports whether initdb and postgres are where Debian puts them.
func Installed() error {
	for _, b := range []string{"initdb", "postgres", "pg_isready"} {
		if _, err := os.Stat(filepath.Join(Bin, b)); err != nil {
			return fmt.Errorf("%w: %v", ErrNotInstalled, err)
		}
	}
	return nil
}

// Owner is the user the server runs as: the postgres user when this
// process is root, nil (this process's own user) otherwise.
func Owner() (*syscall.Credential, error) {
	if os.Geteuid() != 0 {
		return nil, nil
	}
	u, err := user.Lookup("postgres")
	if err != nil {
		return nil, fmt.Errorf("pgcluster: running as root needs the postgres user (the postgresql package creates it): %w", err)
	}
	uid, err := strconv.Atoi(u.Uid)
	if err != nil {
		return nil, fmt.Errorf("pgcluster: postgres uid %q: %w", u.Uid, err)
	}
	gid, err := strconv.Atoi(u.Gid)
	if err != nil {
		return nil, fmt.Errorf("pgcluster: postgres gid %q: %w", u.Gid, err)
	}
	return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}, nil
}

// Chown gives dir and everything below it to owner (nothing to do when
// owner is nil).
func Chown(dir string, owner *syscall.Credential) error {
	if owner == nil {
		return nil
	}
	return filepath.Walk(dir, func(path string, _ os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		return os.Chown(path, int(owner.Uid), int(owner.Gid))
	})
}

// InitDB creates a cluster in dataDir (which must not exist yet, in a
// directory owner may write) with superuser user, whose password is the
// first line of pwfile. Local (socket) logins are trusted; TCP logins
// need the password. hba, when not empty, replaces pg_hba.conf.
func InitDB(dataDir, user, pwfile, hba string, owner *syscall.Credential) error {
	cmd := exec.Command(filepath.Join(Bin, "initdb"), "-D", dataDir, "-U", user,
		"--pwfile="+pwfile, "--auth-host=scram-sha-256", "--auth-local=trust", "-E", "UTF8", "--locale=C.UTF-8", "--no-sync")
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: owner}
	cmd.Dir = filepath.Dir(dataDir)
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("pgcluster: initdb: %w\n%s", err, out)
	}
	if hba == "" {
		return nil
	}
	path := filepath.Join(dataDir, "pg_hba.conf")
	if err := os.WriteFile(path, []byte(hba), 0o600); err != nil {
		return fmt.Errorf("pgcluster: %w", err)
	}
	return Chown(path, owner)
}

// Options say how to run the postmaster.
type Options struct {
	DataDir string
	Addr    string // 127.0.0.1:PORT
	// SocketDir is where the Unix socket goes; empty: none.
	SocketDir string
	Owner     *syscall.Credential
	Args      []string  // more arguments, e.g. "-c", "fsync=off"
	Output    io.Writer // the server's log; nil discards it
	Timeout   time.Duration
}

// Server is a running postmaster.
type Server struct {
	cmd    *exec.Cmd
	exited chan struct{}
}

// Start runs the postmaster in the foreground, leading its own process
// group (so that Kill takes its backends too), and returns once it
// accepts logins. It fails when the server exits first or is not ready
// within o.Timeout (default 30 s); the error then carries nothing of the
// log, which the caller holds (o.Output).
func Start(o Options) (*Server, error) {
	host, port, err := net.SplitHostPort(o.Addr)
	if err != nil {
		return nil, fmt.Errorf("pgcluster: address %q: %w", o.Addr, err)
	}
	args := append([]string{"-D", o.DataDir, "-k", o.SocketDir, "-h", host, "-p", port}, o.Args...)
	cmd := exec.Command(filepath.Join(Bin, "postgres"), args...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: o.Owner, Setpgid: true}
	cmd.Dir = filepath.Dir(o.DataDir)
	cmd.Stdout, cmd.Stderr = o.Output, o.Output
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("pgcluster: start postgres: %w", err)
	}
	s := &Server{cmd: cmd, exited: make(chan struct{})}
	go func() { cmd.Wait(); close(s.exited) }()
	timeout := o.Timeout
	if timeout == 0 {
		timeout = 30 * time.Second
	}
	deadline := time.Now().Add(timeout)
	for {
		select {
		case <-s.exited:
			return nil, fmt.Errorf("pgcluster: postgres exited at startup (%s)", cmd.ProcessState)
		default:
		}
		if c, err := net.DialTimeout("tcp", o.Addr, time.Second); err == nil {
			c.Close()
			// Listening precedes accepting logins by a moment.
			if exec.Command(filepath.Join(Bin, "pg_isready"), "-h", host, "-p", port).Run() == nil {
				return s, nil
			}
		}
		if time.Now().After(deadline) {
			s.Kill()
			return nil, fmt.Errorf("pgcluster: postgres not ready after %s", timeout)
		}
		time.Sleep(30 * time.Millisecond)
	}
}

// Exited is closed when the postmaster has exited.
func (s *Server) Exited() <-chan struct{} { return s.exited }

// PID is the postmaster's process ID.
func (s *Server) PID() int { return s.cmd.Process.Pid }

// Stop asks for a fast shutdown (SIGINT: sessions are ended, as an
// operator's restart does) and waits; SIGKILL after 10 s.
func (s *Server) Stop() {
	select {
	case <-s.exited:
		return
	default:
	}
	s.cmd.Process.Signal(syscall.SIGINT)
	select {
	case <-s.exited:
	case <-time.After(10 * time.Second):
		s.Kill()
	}
}

// Kill ends the postmaster and its backends with SIGKILL, as a crash
// would, and waits for it.
func (s *Server) Kill() {
	syscall.Kill(-s.cmd.Process.Pid, syscall.SIGKILL)
	<-s.exited
}
