package postgres_test

import (
	"context"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// The client sees the upstream's real backend PID (pgx's own tests call
// pg_terminate_backend(conn.PgConn().PID())): pg_backend_pid() agrees
// with it, and terminating it ends that session and no other.
func TestRealBackendPID(t *testing.T) {
	e := startEnv(t, envOptions{})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c := e.connect(t, "")
	var pid uint32
	if err := c.QueryRow(ctx, "SELECT pg_backend_pid()").Scan(&pid); err != nil {
		t.Fatal(err)
	}
	if pid != c.PgConn().PID() {
		t.Fatalf("the client was told PID %d, its backend is %d", c.PgConn().PID(), pid)
	}
	other := e.connect(t, "")
	var ok bool
	if err := other.QueryRow(ctx, "SELECT pg_terminate_backend($1)", int64(c.PgConn().PID())).Scan(&ok); err != nil || !ok {
		t.Fatalf("pg_terminate_backend: %v %v", ok, err)
	}
	if _, err := c.Exec(ctx, "SELECT 1"); err == nil {
		t.Fatal("a terminated backend's session still runs statements")
	}
	if _, err := other.Exec(ctx, "SELECT 1"); err != nil {
		t.Fatalf("the other session: %v", err)
	}
}

// sendCancel sends a CancelRequest to the gateway and waits until it hangs
// up, which it does once it has acted on it.
func sendCancel(t *testing.T, addr string, pid uint32, key []byte) {
	t.Helper()
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	nc.SetDeadline(time.Now().Add(20 * time.Second))
	buf := binary.BigEndian.AppendUint32(nil, uint32(12+len(key)))
	buf = binary.BigEndian.AppendUint32(buf, 80877102)
	buf = binary.BigEndian.AppendUint32(buf, pid)
	buf = append(buf, key...)
	if _, err := nc.Write(buf); err != nil {
		t.Fatal(err)
	}
	if n, err := nc.Read(make([]byte, 1)); n != 0 || !errors.Is(err, io.EOF) {
		t.Fatalf("after a CancelRequest: %d bytes, %v", n, err)
	}
}

// A cancel through the gateway, with the key the gateway gave, cancels a
// running pg_sleep; a forged one cancels nothing: a wrong key for the
// right PID, or another session's key (its own, valid) with this PID.
func TestCancelKeys(t *testing.T) {
	e := startEnv(t, envOptions{})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	c := e.connect(t, "")
	other := e.connect(t, "")
	holder, err := pgx.Connect(ctx, e.pg.URL("postgres"))
	if err != nil {
		t.Fatal(err)
	}
	defer holder.Close(ctx)

	// The statement waits on a lock the test holds: a forged cancel that
	// got through would end it with 57014 before the lock is released.
	if _, err := holder.Exec(ctx, "SELECT pg_advisory_lock(42)"); err != nil {
		t.Fatal(err)
	}
	done := execAsync(c, "SELECT pg_advisory_xact_lock(42)")
	waitActive(t, e, "SELECT pg_advisory_xact_lock(42)")
	pid, key := c.PgConn().PID(), c.PgConn().SecretKey()
	wrong := append([]byte(nil), key...)
	wrong[len(wrong)-1] ^= 1
	sendCancel(t, e.l.Addr().String(), pid, wrong)
	sendCancel(t, e.l.Addr().String(), pid, other.PgConn().SecretKey())
	sendCancel(t, e.l.Addr().String(), pid, []byte{0, 0, 0, 0})
	sendCancel(t, e.l.Addr().String(), pid, nil)
	if _, err := holder.Exec(ctx, "SELECT pg_advisory_unlock(42)"); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatalf("a forged cancel reached the statement: %v", err)
	}

	// The right key, as pgx sends it (over TLS, to the gateway).
	done = execAsync(c, "SELECT pg_sleep(60)")
	waitActive(t, e, "SELECT pg_sleep(60)")
	if err := c.PgConn().CancelRequest(ctx); err != nil {
		t.Fatal(err)
	}
	var pe *pgconn.PgError
	if err := <-done; !errors.As(err, &pe) || pe.Code != "57014" {
		t.Fatalf("pg_sleep after a cancel: %v", err)
	}
	// The same key, sent by hand in the clear, works as well.
	done = execAsync(c, "SELECT pg_sleep(60)")
	waitActive(t, e, "SELECT pg_sleep(60)")
	sendCancel(t, e.l.Addr().String(), pid, key)
	if err := <-done; !errors.As(err, &pe) || pe.Code != "57014" {
		t.Fatalf("pg_sleep after a hand-made cancel: %v", err)
	}
}
