package postgres

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/binary"
	"fmt"
	"maps"
	"net"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/tollgate-dev/tollgate/host/gate"
)

// target is a postgres [[targets]] entry, ready to connect.
type target struct {
	name     string
	host     string
	port     string
	database string
	user     string
	password string
	tls      *tls.Config // nil: sslmode disable
	// sensitive are the target's [[targets.sensitive]] globs (catalog.go).
	sensitive []sensitiveRule
	// appSuffix appends " tollgate:<session ID>" to application_name
	// (application_name_suffix, default on).
	appSuffix bool
	// synced: rows are fsynced before statements go out and answers come
	// back (durable.go).
	synced bool
}

func newTarget(t *gate.Target) (*target, error) {
	o := targetOptions(t)
	host, port, err := net.SplitHostPort(t.Upstream)
	if err != nil {
		return nil, fmt.Errorf("target %s: upstream: %w", t.Name, err)
	}
	up := &target{name: t.Name, host: host, port: port, database: o.Database,
		user: t.Credential.Username, password: t.Credential.Password.Value(), sensitive: sensitiveRules(o.Sensitive),
		appSuffix: o.ApplicationNameSuffix == nil || *o.ApplicationNameSuffix, synced: t.Synced()}
	if o.SSLMode != "disable" {
		tc := &tls.Config{ServerName: host, MinVersion: tls.VersionTLS12}
		if t.CAFile != "" {
			pem, err := os.ReadFile(t.CAFile)
			if err != nil {
				return nil, fmt.Errorf("target %s: ca_file: %w", t.Name, err)
			}
			tc.RootCAs = x509.NewCertPool()
			if !tc.RootCAs.AppendCertsFromPEM(pem) {
				return nil, fmt.Errorf("target %s: ca_file %s holds no PEM certificate", t.Name, t.CAFile)
			}
		}
		up.tls = tc
	}
	return up, nil
}

// maxAppName is NAMEDATALEN-1: the server truncates application_name there.
const maxAppName = 63

// connect opens the upstream session as the target's user to database db,
// with the client's settings that passed filterStartup, and takes the raw
// connection over from pgconn once it is idle.
func (t *target) connect(ctx context.Context, db string, client *startupSettings, sessionID string) (*pgconn.HijackedConn, error) {
	cfg, err := t.config(db)
	if err != nil {
		return nil, err
	}
	// Settings go as startup parameters of their own, never rebuilt into
	// an options string the server would split and parse again.
	cfg.RuntimeParams = maps.Clone(client.pass)
	if cfg.RuntimeParams == nil {
		cfg.RuntimeParams = map[string]string{}
	}
	switch {
	case t.appSuffix:
		suffix := " tollgate:" + sessionID
		app := client.app
		if len(app)+len(suffix) > maxAppName {
			app = app[:max(0, maxAppName-len(suffix))]
		}
		cfg.RuntimeParams["application_name"] = strings.TrimLeft(app+suffix, " ")
	case client.app != "":
		cfg.RuntimeParams["application_name"] = client.app
	}
	// Without the suffix and without a name from the client, none is
	// sent: the role's or server's default stands.
	pc, err := pgconn.ConnectConfig(ctx, cfg)
	if err != nil {
		return nil, err
	}
	if err := pc.SyncConn(ctx); err != nil {
		pc.Close(ctx)
		return nil, err
	}
	hc, err := pc.Hijack()
	if err != nil {
		pc.Close(ctx)
		return nil, err
	}
	if n := hc.Frontend.ReadBufferLen(); n != 0 {
		hc.Conn.Close()
		return nil, fmt.Errorf("upstream sent %d bytes after ReadyForQuery", n)
	}
	return hc, nil
}

// config is how the gateway reaches database db on t: the target's
// credential, its TLS, no fallbacks.
func (t *target) config(db string) (*pgconn.Config, error) {
	cfg, err := pgconn.ParseConfig(fmt.Sprintf("host=%s port=%s user=%s dbname=%s sslmode=disable",
		quoteConnValue(t.host), quoteConnValue(t.port), quoteConnValue(t.user), quoteConnValue(db)))
	if err != nil {
		return nil, err
	}
	cfg.Password = t.password
	cfg.Fallbacks = nil
	cfg.ConnectTimeout = 10 * time.Second
	if t.tls != nil {
		cfg.TLSConfig = t.tls.Clone()
	}
	return cfg, nil
}

// quoteConnValue quotes v for a keyword/value connection string.
func quoteConnValue(v string) string {
	return "'" + strings.NewReplacer(`\`, `\\`, `'`, `\'`).Replace(v) + "'"
}

// cancelTarget is where a client's CancelRequest is sent on.
type cancelTarget struct {
	t         *target
	addr      string // the upstream connection's remote address
	pid       uint32
	secret    []byte
	sessionID string
	// hold cancels the session's wait for an approval, if it is waiting:
	// the statement has not reached the upstream, so that is the cancel.
	hold func() bool
}

// cancelMap maps what the gateway told its clients, the upstream's real
// backend PID with a secret key of the gateway's own, to the upstream
// session and its real key. The client never learns the upstream's key,
// and a CancelRequest reaches a session only with the key its own client
// was given: PIDs are visible to anyone (pg_stat_activity), keys are not.
type cancelMap struct {
	mu sync.Mutex
	m  map[uint64]*cancelTarget
}

// add registers ct under its upstream PID and a fresh random key, and
// returns the PID and key for the client's BackendKeyData. Two targets
// may hand out the same PID: the key tells their sessions apart.
func (c *cancelMap) add(ct *cancelTarget) (uint32, uint32) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil {
		c.m = map[uint64]*cancelTarget{}
	}
	for {
		var b [4]byte
		rand.Read(b[:])
		secret := binary.BigEndian.Uint32(b[:])
		k := uint64(ct.pid)<<32 | uint64(secret)
		if _, dup := c.m[k]; dup || secret == 0 {
			continue
		}
		c.m[k] = ct
		return ct.pid, secret
	}
}

func (c *cancelMap) remove(pid, secret uint32) {
	c.mu.Lock()
	delete(c.m, uint64(pid)<<32|uint64(secret))
	c.mu.Unlock()
}

func (c *cancelMap) get(pid uint32, secret []byte) *cancelTarget {
	if len(secret) != 4 {
		return nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.m[uint64(pid)<<32|uint64(binary.BigEndian.Uint32(secret))]
}

// send delivers a real CancelRequest to the upstream, over TLS when the
// session's connection uses it.
func (ct *cancelTarget) send(ctx context.Context) error {
	d := net.Dialer{Timeout: 5 * time.Second}
	nc, err := d.DialContext(ctx, "tcp", ct.addr)
	if err != nil {
		return err
	}
	defer nc.Close()
	nc.SetDeadline(time.Now().Add(10 * time.Second))
	if ct.t.tls != nil {
		// SSLRequest, then TLS, as for the session itself.
		if _, err := nc.Write([]byte{0, 0, 0, 8, 4, 210, 22, 47}); err != nil {
			return err
		}
		var b [1]byte
		if _, err := nc.Read(b[:]); err != nil {
			return err
		}
		if b[0] != 'S' {
			return fmt.Errorf("upstream refused TLS for the cancel request")
		}
		tc := tls.Client(nc, ct.t.tls.Clone())
		defer tc.Close()
		nc = tc
	}
	buf := make([]byte, 12+len(ct.secret))
	binary.BigEndian.PutUint32(buf[0:4], uint32(len(buf)))
	binary.BigEndian.PutUint32(buf[4:8], 80877102)
	binary.BigEndian.PutUint32(buf[8:12], ct.pid)
	copy(buf[12:], ct.secret)
	if _, err := nc.Write(buf); err != nil {
		return err
	}
	// The server closes the connection once it has acted on the request.
	nc.Read(buf[:1])
	return nil
}
