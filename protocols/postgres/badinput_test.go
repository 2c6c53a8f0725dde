package postgres_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/binary"
	"encoding/json"
	"errors"
	"io"
	"net"
	"os"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/tollgate-dev/tollgate/host/audit"
	"github.com/tollgate-dev/tollgate/internal/testenv"
	"github.com/tollgate-dev/tollgate/protocols/postgres"
)

// rawClient logs in through the gateway by hand and records every byte
// the gateway sends back.
type rawClient struct {
	conn net.Conn
	fe   *pgproto3.Frontend
	got  bytes.Buffer
}

type teeReader struct {
	r io.Reader
	w *bytes.Buffer
}

func (t teeReader) Read(p []byte) (int, error) {
	n, err := t.r.Read(p)
	t.w.Write(p[:n])
	return n, err
}

func (e *env) raw(t *testing.T, token string) *rawClient {
	t.Helper()
	nc, err := net.DialTimeout("tcp", e.l.Addr().String(), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	nc.SetDeadline(time.Now().Add(20 * time.Second))
	nc.Write([]byte{0, 0, 0, 8, 4, 210, 22, 47})
	var b [1]byte
	if _, err := io.ReadFull(nc, b[:]); err != nil || b[0] != 'S' {
		t.Fatalf("SSLRequest: %q %v", b, err)
	}
	pool := x509.NewCertPool()
	pem, _ := os.ReadFile(e.caFile)
	pool.AppendCertsFromPEM(pem)
	tc := tls.Client(nc, &tls.Config{RootCAs: pool, ServerName: "127.0.0.1"})
	c := &rawClient{conn: tc}
	c.fe = pgproto3.NewFrontend(teeReader{tc, &c.got}, tc)
	c.fe.Send(&pgproto3.StartupMessage{ProtocolVersion: pgproto3.ProtocolVersionNumber, Parameters: map[string]string{"user": "agent", "database": "app"}})
	c.fe.Flush()
	if m := c.recv(t); m == nil {
		t.Fatal("no authentication request")
	}
	c.fe.Send(&pgproto3.PasswordMessage{Password: token})
	c.fe.Flush()
	return c
}

func (c *rawClient) recv(t *testing.T) pgproto3.BackendMessage {
	m, err := c.fe.Receive()
	if err != nil {
		return nil
	}
	return m
}

// untilReady reads until ReadyForQuery (true) or an error/close (false),
// and returns the last ErrorResponse seen.
func (c *rawClient) untilReady(t *testing.T) (bool, *pgproto3.ErrorResponse) {
	var last *pgproto3.ErrorResponse
	for {
		m, err := c.fe.Receive()
		if err != nil {
			return false, last
		}
		switch m := m.(type) {
		case *pgproto3.ReadyForQuery:
			return true, last
		case *pgproto3.ErrorResponse:
			cp := *m
			last = &cp
		}
	}
}

// Each kind of bad input gets a clear error or a clean close, the gateway
// keeps serving, no goroutine is left behind, and the credential never
// reaches a client or an audit row.
func TestBadInput(t *testing.T) {
	e := startEnv(t, envOptions{plugins: defaultPlugins(t), listener: func(l *postgres.ListenerOptions) { l.MaxMessageBytes = 64 << 10 }})
	e.pg.Exec(t, apiKeysSQL)
	// Warm up: the first connections start pools and the token cache.
	ready, _ := e.raw(t, e.tok).untilReady(t)
	if !ready {
		t.Fatal("login failed")
	}
	time.Sleep(200 * time.Millisecond)
	base := runtime.NumGoroutine()
	var received bytes.Buffer

	cases := []struct {
		name string
		send func(c *rawClient)
		code string // SQLSTATE expected, "" for a close
	}{
		{"unknown message type", func(c *rawClient) { c.conn.Write([]byte{'z', 0, 0, 0, 4}) }, "08P01"},
		{"truncated length", func(c *rawClient) { c.conn.Write([]byte{'Q', 0, 0, 0, 2}) }, "08P01"},
		{"malformed bind", func(c *rawClient) { c.conn.Write([]byte{'B', 0, 0, 0, 7, 0, 0, 0xff}) }, "08P01"},
		{"over the cap", func(c *rawClient) {
			hdr := []byte{'Q', 0, 0, 0, 0}
			binary.BigEndian.PutUint32(hdr[1:], 1<<20)
			c.conn.Write(hdr)
		}, "54000"},
		{"disconnect mid-Bind", func(c *rawClient) {
			b, _ := (&pgproto3.Parse{Query: "SELECT $1::int"}).Encode(nil)
			b, _ = (&pgproto3.Bind{Parameters: [][]byte{[]byte("12345")}}).Encode(b)
			c.conn.Write(b[:len(b)-3])
			c.conn.Close()
		}, ""},
		{"bad token", nil, "28P01"},
		{"function call", func(c *rawClient) {
			c.fe.Send(&pgproto3.FunctionCall{Function: 1598})
			c.fe.Flush()
		}, "42501"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			tok := e.tok
			if tc.send == nil {
				tok = "not-a-jwt"
			}
			c := e.raw(t, tok)
			if tc.send != nil {
				if ok, _ := c.untilReady(t); !ok {
					t.Fatal("login failed")
				}
				tc.send(c)
			}
			_, er := c.untilReady(t)
			received.Write(c.got.Bytes())
			if tc.code == "" {
				return
			}
			if er == nil || er.Code != tc.code {
				t.Fatalf("want SQLSTATE %s, got %+v", tc.code, er)
			}
			c.conn.Close()
		})
	}

	// The refused login left a session of its own in the trail.
	e.rec.Wait(t, "for the bad token", func(r audit.Row) bool {
		return r.Kind == audit.KindSessionOpen && r.Verdict == "deny" && strings.Contains(r.Error, "28P01") && r.Subject == ""
	})

	// The gateway still serves.
	c := e.connect(t, "")
	var n int
	if err := c.QueryRow(context.Background(), "SELECT count(*) FROM api_keys").Scan(&n); err != nil || n != 2 {
		t.Fatalf("after bad input: %d %v", n, err)
	}
	c.Close(context.Background())
	checkNoLeak(t, base)

	if bytes.Contains(received.Bytes(), []byte(e.pg.Password)) {
		t.Fatal("the upstream password reached a client")
	}
	rows, _ := json.Marshal(e.rec.Rows())
	if bytes.Contains(rows, []byte(e.pg.Password)) {
		t.Fatal("the upstream password is in an audit row")
	}
	if bytes.Contains(rows, []byte(e.tok)) {
		t.Fatal("the agent's token is in an audit row")
	}
}

// A database that dies mid-result: the client gets an error or a closed
// connection, the session closes with a row, nothing is left running.
func TestUpstreamKilledMidResult(t *testing.T) {
	e := startEnv(t, envOptions{})
	e.pg.Exec(t, "CREATE TABLE big AS SELECT g AS id, repeat('x', 200) AS pad FROM generate_series(1, 200000) g")
	ready, _ := e.raw(t, e.tok).untilReady(t)
	if !ready {
		t.Fatal("login failed")
	}
	time.Sleep(200 * time.Millisecond)
	base := runtime.NumGoroutine()
	c := e.raw(t, e.tok)
	if ok, _ := c.untilReady(t); !ok {
		t.Fatal("login failed")
	}
	c.fe.Send(&pgproto3.Query{String: "SELECT * FROM big, generate_series(1, 50)"})
	c.fe.Flush()
	// Read some rows, then kill the server.
	for i := 0; i < 100; i++ {
		if _, err := c.fe.Receive(); err != nil {
			t.Fatal(err)
		}
	}
	e.pg.Kill()
	var err error
	for err == nil {
		_, err = c.fe.Receive()
	}
	if !errors.Is(err, io.EOF) && !errors.Is(err, io.ErrUnexpectedEOF) && !strings.Contains(err.Error(), "closed") {
		t.Logf("client ended with %v", err)
	}
	e.rec.Wait(t, "closing the session", func(r audit.Row) bool {
		return r.Kind == audit.KindSessionClose && strings.Contains(r.Error, "upstream")
	})
	c.conn.Close()
	checkNoLeak(t, base)
	_ = testenv.FreeAddr
}

// A real client that writes a whole message over max_message_bytes before
// it reads (pgx does) still gets the FATAL 54000 that says why, not a
// connection reset: the gateway reads and drops the rest of the message
// before it closes. Simple and extended protocol.
func TestOverCapMessageReachesTheClient(t *testing.T) {
	e := startEnv(t, envOptions{listener: func(l *postgres.ListenerOptions) { l.MaxMessageBytes = 64 << 10 }})
	big := strings.Repeat("x", 256<<10)
	for name, run := range map[string]func(c *pgx.Conn) error{
		"simple": func(c *pgx.Conn) error {
			_, err := c.Exec(context.Background(), "SELECT '"+big+"'", pgx.QueryExecModeSimpleProtocol)
			return err
		},
		"extended": func(c *pgx.Conn) error {
			_, err := c.Exec(context.Background(), "SELECT $1::text", big)
			return err
		},
	} {
		t.Run(name, func(t *testing.T) {
			c := e.connect(t, "")
			defer c.Close(context.Background())
			err := run(c)
			var pe *pgconn.PgError
			if !errors.As(err, &pe) || pe.Code != "54000" || !strings.Contains(pe.Message, "max_message_bytes") {
				t.Fatalf("want FATAL 54000 naming max_message_bytes, got %v", err)
			}
		})
	}
}

// A startup packet over PostgreSQL's 10,000 bytes is answered with a
// FATAL that says so, not a reset, and leaves a row like every refusal.
func TestOversizedStartupPacket(t *testing.T) {
	e := startEnv(t, envOptions{})
	c, err := net.Dial("tcp", e.l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	pkt := make([]byte, 20_000)
	binary.BigEndian.PutUint32(pkt, uint32(len(pkt)))
	binary.BigEndian.PutUint32(pkt[4:], 196608) // protocol 3.0
	if _, err := c.Write(pkt); err != nil {
		t.Fatal(err)
	}
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	got, err := io.ReadAll(c)
	if err != nil {
		t.Fatalf("read: %v (got %q)", err, got)
	}
	if len(got) == 0 || got[0] != 'E' || !bytes.Contains(got, []byte("08P01")) || !bytes.Contains(got, []byte("a startup packet of 19996 bytes (after its length) is outside PostgreSQL's limits of 4 to 10000")) {
		t.Fatalf("answer: %q", got)
	}
	e.rec.Wait(t, "for the oversized startup packet", func(r audit.Row) bool {
		return r.Kind == audit.KindSessionOpen && r.Verdict == "deny" && strings.Contains(r.Error, "startup packet of 19996 bytes")
	})
}
