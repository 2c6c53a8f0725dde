//go:build unix

package demo

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/tollgate-dev/tollgate/internal/pgcluster"
	"github.com/tollgate-dev/tollgate/internal/progress"
)

// The statements the quick start prints, run against the seeded tables.
const (
	// MaskedQuery reads the e-mails (masked by the mask plugin's e-mail
	// detector) and api_keys.secret (a sensitive column of the target).
	MaskedQuery = "SELECT c.name, c.email, k.label, k.secret FROM customers c JOIN api_keys k ON k.customer_id = c.id ORDER BY k.id"
	// DropStatement is refused by the guard plugin's no-ddl rule.
	DropStatement = "DROP TABLE customers"
	// DeleteStatement is held by the approve plugin for the ApproverGroup.
	DeleteStatement = "DELETE FROM customers WHERE id = 4"
	// ApproverGroup may approve the demo's held writes (gateway.toml).
	ApproverGroup = "dba"
)

// seed recreates the demo tables at every start, so that the quick start
// answers the same each time (its DELETE, once approved, removes a row).
// The keys are made up by the server at each start: no secret, not even a
// fake one, is written in the source.
const seed = `
DROP TABLE IF EXISTS api_keys;
DROP TABLE IF EXISTS customers;
CREATE TABLE customers (
  id    int PRIMARY KEY,
  name  text NOT NULL,
  email text NOT NULL
);
INSERT INTO customers VALUES
  (1, 'Ada Lovelace', 'ada@example.com'),
  (2, 'Grace Hopper', 'grace@example.com'),
  (3, 'Alan Turing', 'alan@example.com'),
  (4, 'Edsger Dijkstra', 'edsger@example.com');
CREATE TABLE api_keys (
  id          int PRIMARY KEY,
  customer_id int NOT NULL REFERENCES customers(id),
  label       text NOT NULL,
  secret      text NOT NULL
);
INSERT INTO api_keys
  SELECT n, c, l, 'tg_demo_' || md5(random()::text || n)
  FROM (VALUES (1, 1, 'billing'), (2, 2, 'reports'), (3, 3, 'ci')) AS v(n, c, l);
`

// DatabaseOptions say where the demo database runs and who owns it.
type DatabaseOptions struct {
	// Dir keeps the cluster between runs (initdb once; the tables are
	// seeded again at each start).
	Dir      string
	Addr     string // loopback host:port, the target's upstream
	User     string // the superuser: the target's credential
	Password string
	Log      *slog.Logger
	Progress *progress.Reporter // the first initdb takes a second or two
}

// Database is the demo's throwaway PostgreSQL.
type Database struct {
	srv *pgcluster.Server
	Dir string // where it ended up (see StartDatabase)
}

// StartDatabase starts the demo database, making the cluster on first
// use, and seeds it. As root the server runs as the postgres user; when
// that user cannot reach Dir (a checkout under /root), the cluster lives
// under the system's temporary directory instead, named after Dir.
func StartDatabase(ctx context.Context, o DatabaseOptions) (*Database, error) {
	if err := pgcluster.Installed(); err != nil {
		return nil, fmt.Errorf("demo database: %w; `make run` installs it (Debian's postgresql)", err)
	}
	owner, err := pgcluster.Owner()
	if err != nil {
		return nil, fmt.Errorf("demo database: %w", err)
	}
	dir, err := filepath.Abs(o.Dir)
	if err != nil {
		return nil, fmt.Errorf("demo database: %w", err)
	}
	if err := os.MkdirAll(filepath.Dir(dir), 0o700); err != nil {
		return nil, fmt.Errorf("demo database: %w", err)
	}
	if owner != nil && !reachable(filepath.Dir(dir), owner) {
		sum := sha256.Sum256([]byte(dir))
		alt := filepath.Join(os.TempDir(), "tollgate-demo-postgres-"+hex.EncodeToString(sum[:6]))
		o.Log.Info("demo database: the postgres user cannot reach the data directory, using another", "dir", dir, "instead", alt)
		dir = alt
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("demo database: %w", err)
	}
	if err := pgcluster.Chown(dir, owner); err != nil {
		return nil, fmt.Errorf("demo database: %w", err)
	}
	if err := stopStale(filepath.Join(dir, "data")); err != nil {
		return nil, fmt.Errorf("demo database: %w", err)
	}
	d := &Database{Dir: dir}
	for attempt := 0; ; attempt++ {
		if err := d.start(ctx, o, owner); err != nil {
			return nil, err
		}
		err := d.seed(ctx, o)
		if err == nil {
			return d, nil
		}
		d.srv.Stop()
		// A cluster made with another password (its file was removed and
		// made again) is made again too: it holds nothing but the seed.
		var pe *pgconn.PgError
		if attempt > 0 || !errors.As(err, &pe) || pe.Code != "28P01" {
			return nil, fmt.Errorf("demo database: seed: %w", err)
		}
		o.Log.Info("demo database: its password changed, making the cluster again", "dir", dir)
		if err := os.RemoveAll(filepath.Join(dir, "data")); err != nil {
			return nil, fmt.Errorf("demo database: %w", err)
		}
	}
}

// start makes the cluster when it is missing, then runs it.
func (d *Database) start(ctx context.Context, o DatabaseOptions, owner *syscall.Credential) error {
	data := filepath.Join(d.Dir, "data")
	if _, err := os.Stat(filepath.Join(data, "PG_VERSION")); err != nil {
		os.RemoveAll(data) // a half-made cluster from an interrupted initdb
		step := o.Progress.Start("demo database: creating the cluster", "dir", data)
		if err := step.Done(d.initdb(o, owner)); err != nil {
			return fmt.Errorf("demo database: %w", err)
		}
	}
	logf, err := os.OpenFile(filepath.Join(d.Dir, "postgres.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("demo database: %w", err)
	}
	defer logf.Close() // the server holds its own descriptor
	d.srv, err = pgcluster.Start(pgcluster.Options{DataDir: data, Addr: o.Addr, Owner: owner, Output: logf,
		Args: []string{"-c", "log_min_messages=warning", "-c", "max_connections=50"}})
	if err != nil {
		return fmt.Errorf("demo database: %w (its log: %s)", err, logf.Name())
	}
	return nil
}

func (d *Database) initdb(o DatabaseOptions, owner *syscall.Credential) error {
	pw := filepath.Join(d.Dir, "pwfile")
	if err := os.WriteFile(pw, []byte(o.Password+"\n"), 0o600); err != nil {
		return err
	}
	defer os.Remove(pw)
	if err := pgcluster.Chown(pw, owner); err != nil {
		return err
	}
	// TCP with a password only: the server makes no Unix socket.
	return pgcluster.InitDB(filepath.Join(d.Dir, "data"), o.User, pw, "host all all 127.0.0.1/32 scram-sha-256\n", owner)
}

func (d *Database) seed(ctx context.Context, o DatabaseOptions) error {
	host, port, err := net.SplitHostPort(o.Addr)
	if err != nil {
		return err
	}
	cfg, err := pgconn.ParseConfig(fmt.Sprintf("host=%s port=%s dbname=postgres sslmode=disable connect_timeout=10", host, port))
	if err != nil {
		return err
	}
	cfg.User, cfg.Password = o.User, o.Password
	conn, err := pgconn.ConnectConfig(ctx, cfg)
	if err != nil {
		return err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	_, err = conn.Exec(ctx, seed).ReadAll()
	return err
}

// Shutdown stops the server (a fast shutdown: open sessions end).
func (d *Database) Shutdown(context.Context) error {
	d.srv.Stop()
	return nil
}

// stopStale stops a postmaster left running on data by a gateway that
// was killed (the server leads its own process group, so it outlives
// it), which would hold the data directory's lock. Only a process
// named postgres is signalled, so a PID reused since is left alone.
func stopStale(data string) error {
	b, err := os.ReadFile(filepath.Join(data, "postmaster.pid"))
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	first, _, _ := strings.Cut(string(b), "\n")
	pid, err := strconv.Atoi(strings.TrimSpace(first))
	if err != nil || pid <= 1 {
		return nil // not a pid file postgres wrote; postgres itself will say
	}
	comm, err := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid))
	if err != nil || strings.TrimSpace(string(comm)) != "postgres" {
		return nil
	}
	if err := syscall.Kill(pid, syscall.SIGINT); err != nil {
		return fmt.Errorf("stop the demo database left running (pid %d): %w", pid, err)
	}
	for deadline := time.Now().Add(15 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if syscall.Kill(pid, 0) != nil {
			return nil
		}
	}
	return fmt.Errorf("the demo database left running (pid %d) did not stop within 15s", pid)
}

// reachable reports whether owner may enter dir: each directory on the
// way must let it search (x) as owner, group or other.
func reachable(dir string, owner *syscall.Credential) bool {
	for d := dir; ; d = filepath.Dir(d) {
		var st syscall.Stat_t
		if err := syscall.Stat(d, &st); err == nil {
			mode := st.Mode
			switch {
			case st.Uid == owner.Uid:
				mode >>= 6
			case st.Gid == owner.Gid:
				mode >>= 3
			}
			if mode&1 == 0 {
				return false
			}
		}
		if d == filepath.Dir(d) {
			return true
		}
	}
}
