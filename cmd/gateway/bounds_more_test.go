package main_test

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/tollgate-dev/tollgate/cmd/gateway/internal/soak"
	"github.com/tollgate-dev/tollgate/host/audit/clickhouse"
	"github.com/tollgate-dev/tollgate/internal/testenv"
)

// boundsExtras is what TestBounds adds to the soak's gateway "a": an HTTP
// listener with TLS (a certificate made at run time; the soak's postgres
// listener already speaks TLS, with the certificate `serve --dev` makes)
// and a target "blob" served by this test process, whose responses have
// the sizes and encodings the test asks for in the path.
type boundsExtras struct {
	httpsAddr string
	pool      *x509.CertPool // trusts the https listener's certificate
	config    string         // appended to gateway "a"'s gateway.toml
}

// boundsEmail is in every blob body: the mask plugin masks it where it
// inspects the body, so its presence tells whether the body was inspected.
const boundsEmail = "leak.bounds@example.com"

func newBoundsExtras(t *testing.T) *boundsExtras {
	t.Helper()
	dir := t.TempDir()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "tollgate bounds test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, DNSNames: []string{"localhost"},
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
		t.Fatal(err)
	}
	x := &boundsExtras{httpsAddr: testenv.FreeAddr(t), pool: x509.NewCertPool()}
	x.pool.AddCert(cert)

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(blobHandler), ReadHeaderTimeout: 10 * time.Second}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })

	x.config = fmt.Sprintf(`[[targets]]
name = "blob"
protocol = "http"
upstream = "http://%s"
[targets.credential]
type = "bearer"
token = "file:.tollgate/demo-token"

[[listeners]]
name = "https"
protocol = "http"
listen = %q
tls_cert = %q
tls_key = %q
[[listeners.routes]]
target = "demo"
path_prefix = "/demo"
[[listeners.routes]]
target = "blob"
path_prefix = "/blob"

[[access]]
name = "bounds"
issuers = ["dev"]
targets = ["blob"]
`, ln.Addr(), x.httpsAddr, certFile, keyFile)
	return x
}

// blobBody is a JSON body of exactly n bytes holding boundsEmail.
func blobBody(n int) []byte {
	head, tail := `{"email":"`+boundsEmail+`","pad":"`, `"}`
	return []byte(head + strings.Repeat("a", n-len(head)-len(tail)) + tail)
}

// blobHandler answers /size/N/... with a JSON body of N bytes and
// /gzip/N/... with the same body gzip-encoded (whatever the gateway asked
// for in Accept-Encoding).
func blobHandler(w http.ResponseWriter, r *http.Request) {
	parts := strings.Split(strings.TrimPrefix(r.URL.Path, "/"), "/")
	if len(parts) < 2 {
		http.NotFound(w, r)
		return
	}
	n, err := strconv.Atoi(parts[1])
	if err != nil || n < 64 || n > 64<<20 {
		http.Error(w, "bad size", http.StatusBadRequest)
		return
	}
	body := blobBody(n)
	w.Header().Set("Content-Type", "application/json")
	switch parts[0] {
	case "size":
	case "gzip":
		var b bytes.Buffer
		zw := gzip.NewWriter(&b)
		zw.Write(body)
		zw.Close()
		body = b.Bytes()
		w.Header().Set("Content-Encoding", "gzip")
	default:
		http.NotFound(w, r)
		return
	}
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	w.Write(body)
}

// waitListening waits until addr accepts connections.
func waitListening(t *testing.T, addr string) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s not listening after a minute: %v", addr, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// servedTLS is served over TLS: one HTTPS request through the https
// listener (certificate verified) and one PostgreSQL query with
// sslmode=require.
func (s *soakEnv) servedTLS(t *testing.T, x *boundsExtras, during string) {
	t.Helper()
	c := http.Client{Timeout: 20 * time.Second, Transport: &http.Transport{DisableKeepAlives: true,
		TLSClientConfig: &tls.Config{RootCAs: x.pool}}}
	req, _ := http.NewRequest(http.MethodGet, "https://"+x.httpsAddr+"/demo/served-tls", nil)
	req.Header.Set("Authorization", "Bearer "+s.token)
	resp, err := c.Do(req)
	if err != nil {
		t.Errorf("%s: a well-behaved HTTPS client was not served: %v", during, err)
	} else {
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Errorf("%s: a well-behaved HTTPS client got %d", during, resp.StatusCode)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, strings.Replace(s.load.PGDSN, "sslmode=disable", "sslmode=require", 1))
	if err != nil {
		t.Errorf("%s: a well-behaved PostgreSQL client could not log in over TLS: %v", during, err)
		return
	}
	defer conn.Close(ctx)
	if _, ok := conn.PgConn().Conn().(*tls.Conn); !ok {
		t.Errorf("%s: sslmode=require did not give a TLS connection", during)
	}
	var one int
	if err := conn.QueryRow(ctx, "SELECT 1").Scan(&one); err != nil {
		t.Errorf("%s: a well-behaved PostgreSQL query over TLS failed: %v", during, err)
	}
}

// auditRows returns the analyst view's rows (kind, verdict, status, error,
// reason, annotation keys, session) matching where, waiting up to 30 s for
// at least want of them (the rows reach ClickHouse in batches).
func (s *soakEnv) auditRows(t *testing.T, where string, want int) [][]string {
	t.Helper()
	store, err := clickhouse.Open(context.Background(), clickhouse.Options{Addrs: []string{s.ch.Addr()}, Database: "soak"})
	if err != nil {
		t.Fatalf("open clickhouse: %v", err)
	}
	defer store.Close()
	q := `SELECT kind, verdict, status, error, reason, arrayStringConcat(annotation_keys, ','), toString(session_id)
		FROM soak.events FINAL WHERE ` + where + ` ORDER BY ts, ts_us`
	deadline := time.Now().Add(30 * time.Second)
	for {
		_, rows, err := store.Query(context.Background(), q)
		if err != nil {
			t.Fatalf("audit rows: %v", err)
		}
		if len(rows) >= want || time.Now().After(deadline) {
			return rows
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// sslRequest is PostgreSQL's SSLRequest packet.
var sslRequest = []byte{0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f}

// partialClientHello is the start of a TLS record announcing a 512-byte
// ClientHello, of which only the first bytes follow.
var partialClientHello = []byte{0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc, 0x03, 0x03, 1, 2, 3, 4, 5, 6, 7, 8}

// loopbackSource is the i-th of a block of loopback source addresses,
// fifty connections each: the postgres listener caps connections per
// source at 100, and the flood must not be refused by that cap (nor lock
// out the well-behaved client on 127.0.0.1).
func loopbackSource(block, i int) *net.TCPAddr {
	return &net.TCPAddr{IP: net.IPv4(127, 0, byte(block), byte(1+i/50))}
}

// tlsDial connects from src and, for postgres, asks for TLS first.
func tlsDial(addr string, pg bool, src *net.TCPAddr) (net.Conn, error) {
	d := net.Dialer{LocalAddr: src, Timeout: 10 * time.Second}
	c, err := d.Dial("tcp", addr)
	if err != nil {
		return nil, err
	}
	if pg {
		c.SetDeadline(time.Now().Add(20 * time.Second))
		if _, err := c.Write(sslRequest); err != nil {
			c.Close()
			return nil, err
		}
		var b [1]byte
		if _, err := io.ReadFull(c, b[:]); err != nil || b[0] != 'S' {
			c.Close()
			return nil, fmt.Errorf("SSLRequest answered %q: %v", b[0], err)
		}
		c.SetDeadline(time.Time{})
	}
	return c, nil
}

// tlsFlood is TestBounds' TLS step: on each listener that speaks TLS,
// 200 clients doing full handshakes back to back for 5 s, and 500 that
// send part of a ClientHello and stall.
func (s *soakEnv) tlsFlood(t *testing.T, x *boundsExtras, base soak.Sample) int64 {
	a := s.gws["a"]
	type listener struct {
		name, addr string
		pg         bool
	}
	listeners := []listener{{"https", x.httpsAddr, false}, {"postgres", a.addrs["pg"], true}}
	const flooders, stallers, floodFor = 200, 500, 5 * time.Second
	var peak int64
	var wg sync.WaitGroup
	var mu sync.Mutex
	handshakes, failures := map[string]int{}, map[string]int{}
	firstErr := map[string]error{}
	stallMin, stallMax := map[string]time.Duration{}, map[string]time.Duration{}
	stalled := map[string]int{}
	for li, l := range listeners {
		for i := range stallers {
			wg.Go(func() {
				c, err := tlsDial(l.addr, l.pg, loopbackSource(10+li, i))
				if err != nil {
					t.Errorf("stalled handshake %s: %v", l.name, err)
					return
				}
				defer c.Close()
				t0 := time.Now()
				if _, err := c.Write(partialClientHello); err != nil {
					t.Errorf("stalled handshake %s: %v", l.name, err)
					return
				}
				c.SetReadDeadline(time.Now().Add(time.Minute))
				io.Copy(io.Discard, c) // until the gateway closes it
				d := time.Since(t0)
				mu.Lock()
				stalled[l.name]++
				if m, ok := stallMin[l.name]; !ok || d < m {
					stallMin[l.name] = d
				}
				stallMax[l.name] = max(stallMax[l.name], d)
				mu.Unlock()
			})
		}
	}
	time.Sleep(time.Second) // the stalled ones are in
	t0 := time.Now()
	var fwg sync.WaitGroup
	for li, l := range listeners {
		for i := range flooders {
			fwg.Go(func() {
				cfg := &tls.Config{InsecureSkipVerify: true} // no session cache: every handshake is a full one
				for time.Since(t0) < floodFor {
					c, err := tlsDial(l.addr, l.pg, loopbackSource(20+li, i))
					if err == nil {
						tc := tls.Client(c, cfg)
						tc.SetDeadline(time.Now().Add(20 * time.Second))
						err = tc.Handshake()
						tc.Close()
					}
					mu.Lock()
					if err != nil {
						failures[l.name]++
						if firstErr[l.name] == nil {
							firstErr[l.name] = err
						}
					} else {
						handshakes[l.name]++
					}
					mu.Unlock()
				}
			})
		}
	}
	time.Sleep(floodFor / 2)
	smp := s.figure(t, "tls-flood", base)
	peak = max(peak, smp.RSS)
	s.served(t, "during the TLS handshake flood")
	s.servedTLS(t, x, "during the TLS handshake flood")
	fwg.Wait()
	took := time.Since(t0)
	smp = s.figure(t, "tls-flood-end", base)
	peak = max(peak, smp.RSS)
	wg.Wait()
	for _, l := range listeners {
		t.Logf("BENCH bounds/tls-flood-%s %.0f handshakes/s clients=%d full_handshakes=%d failed=%d (first: %v)", l.name,
			float64(handshakes[l.name])/took.Seconds(), flooders, handshakes[l.name], failures[l.name], firstErr[l.name])
		t.Logf("BENCH bounds/tls-stalled-%s closed_after_min=%s closed_after_max=%s stalled=%d", l.name,
			stallMin[l.name].Round(100*time.Millisecond), stallMax[l.name].Round(100*time.Millisecond), stallers)
		if stalled[l.name] != stallers {
			t.Errorf("%s: %d of %d stalled handshakes were accounted for", l.name, stalled[l.name], stallers)
		}
		if stallMax[l.name] >= time.Minute {
			t.Errorf("%s: a stalled TLS handshake was still open after a minute", l.name)
		}
		if handshakes[l.name] == 0 {
			t.Errorf("%s: no handshake of the flood completed (first error: %v)", l.name, firstErr[l.name])
		}
	}
	s.served(t, "after the TLS handshake flood")
	s.servedTLS(t, x, "after the TLS handshake flood")
	return peak
}

// rawHTTPStatus sends req as is on a new connection and returns the
// response's status code.
func rawHTTPStatus(addr, req string) (int, error) {
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return 0, err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(30 * time.Second))
	go c.Write([]byte(req)) // the answer may come before the last byte is taken
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		return 0, err
	}
	resp.Body.Close()
	return resp.StatusCode, nil
}

// headerBlock is a GET whose request line and header fields, up to and
// including the blank line that ends them, are exactly n bytes.
func headerBlock(path, token string, n int) string {
	head := "GET " + path + " HTTP/1.1\r\nHost: bounds\r\nAuthorization: Bearer " + token + "\r\nConnection: close\r\nX-Pad: "
	tail := "\r\n\r\n"
	return head + strings.Repeat("p", n-len(head)-len(tail)) + tail
}

// pgExchange sends msgs on an established connection's wire and reads the
// answers until ReadyForQuery, an error that ends the session, or the
// connection's end. It returns the ErrorResponses, whether the session
// was ready for more, and a write or read error (a closed connection).
func pgExchange(pc *pgconn.PgConn, msgs ...pgproto3.FrontendMessage) (errs []*pgproto3.ErrorResponse, ready bool, werr, rerr error) {
	fe := pc.Frontend()
	nc := pc.Conn()
	nc.SetDeadline(time.Now().Add(2 * time.Minute))
	// Written from another goroutine, as a client that reads while it
	// writes: the gateway may answer (and close) before the last byte.
	done := make(chan error, 1)
	go func() {
		for _, m := range msgs {
			fe.Send(m)
		}
		done <- fe.Flush()
	}()
	for {
		m, err := fe.Receive()
		if err != nil {
			rerr = err
			break
		}
		switch m := m.(type) {
		case *pgproto3.ErrorResponse:
			cp := *m
			errs = append(errs, &cp)
		case *pgproto3.CopyInResponse:
			// Not expected here: the caller sends COPY's data itself.
		case *pgproto3.ReadyForQuery:
			ready = true
		}
		if ready {
			break
		}
	}
	if !ready {
		nc.Close() // unblocks a writer stuck on a full socket
	}
	werr = <-done
	return errs, ready, werr, rerr
}

// bodyLen is m's body length on the wire: the length field counts itself,
// the type byte is not counted.
func bodyLen(t *testing.T, m pgproto3.FrontendMessage) int {
	b, err := m.Encode(nil)
	if err != nil {
		t.Fatal(err)
	}
	return len(b) - 5
}

// sessionOf is the gateway's session ID in an ErrorResponse's detail.
func sessionOf(e *pgproto3.ErrorResponse) string {
	_, id, _ := strings.Cut(e.Detail, "tollgate session ")
	return strings.TrimSpace(id)
}

// httpCaps is TestBounds' HTTP size-cap step: max_header_bytes on the
// plain listener, max_inspect_body_bytes (a response body, plain and
// gzip-encoded) on the TLS one, each at the cap and one byte over, each
// answer matched to its audit row.
func (s *soakEnv) httpCaps(t *testing.T, x *boundsExtras) {
	a := s.gws["a"]
	nonce := strconv.FormatInt(time.Now().UnixNano(), 36)

	// max_header_bytes (64 KiB). net/http reads a header block of up to
	// MaxHeaderBytes plus 4096 bytes ("bufio slop" in net/http) before it
	// answers 431: the effective cap is max_header_bytes + 4 KiB, and this
	// asserts exactly that boundary.
	const hcap = 64 << 10
	for _, tc := range []struct {
		n, want int
	}{{hcap, 200}, {hcap + 1, 200}, {hcap + 4096, 200}, {hcap + 4096 + 1, 431}} {
		marker := fmt.Sprintf("hdrcap-%d-%s", tc.n, nonce)
		got, err := rawHTTPStatus(a.addrs["http"], headerBlock("/demo/"+marker, s.token, tc.n))
		if err != nil || got != tc.want {
			t.Errorf("a header block of %d bytes (max_header_bytes %d): got %d (%v), want %d", tc.n, hcap, got, err, tc.want)
			continue
		}
		rows := s.auditRows(t, fmt.Sprintf("arrayStringConcat(request_values, ' ') LIKE '%%%s%%'", marker), 1)
		if len(rows) != 1 || rows[0][2] != strconv.Itoa(tc.want) {
			t.Errorf("a header block of %d bytes answered %d: audit rows %v, want one with status %d", tc.n, got, rows, tc.want)
		}
		t.Logf("BENCH bounds/cap-http-header-%d %d status (max_header_bytes %d, row: %v)", tc.n, got, hcap, rows)
	}

	// max_inspect_body_bytes (1 MiB), a response body: at the cap it is
	// inspected (the mask plugin masks the e-mail in it); one byte over,
	// a plain body streams through whole without the plugins seeing it,
	// and a gzip body that decodes to more is refused with 502
	// response_refused, never passed on unread (README "HTTP behaviour").
	const bcap = 1 << 20
	c := http.Client{Timeout: 2 * time.Minute, Transport: &http.Transport{DisableKeepAlives: true,
		TLSClientConfig: &tls.Config{RootCAs: x.pool}}}
	for _, tc := range []struct {
		enc       string
		n, want   int
		inspected bool
	}{{"size", bcap, 200, true}, {"size", bcap + 1, 200, false}, {"gzip", bcap, 200, true}, {"gzip", bcap + 1, 502, false}} {
		marker := fmt.Sprintf("bodycap-%s-%d-%s", tc.enc, tc.n, nonce)
		req, _ := http.NewRequest(http.MethodGet, fmt.Sprintf("https://%s/blob/%s/%d/%s", x.httpsAddr, tc.enc, tc.n, marker), nil)
		req.Header.Set("Authorization", "Bearer "+s.token)
		req.Header.Set("Accept-Encoding", "identity") // what this client reads is what the gateway sent
		resp, err := c.Do(req)
		if err != nil {
			t.Errorf("%s body of %d bytes: %v", tc.enc, tc.n, err)
			continue
		}
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		clear := bytes.Contains(body, []byte(boundsEmail))
		switch {
		case err != nil:
			t.Errorf("%s body of %d bytes: reading: %v", tc.enc, tc.n, err)
		case resp.StatusCode != tc.want:
			t.Errorf("%s body of %d bytes (max_inspect_body_bytes %d): %d %.200s, want %d", tc.enc, tc.n, bcap, resp.StatusCode, body, tc.want)
		case tc.want == 200 && tc.inspected && clear:
			t.Errorf("%s body of %d bytes, at the cap: the e-mail came back in clear (not inspected)", tc.enc, tc.n)
		case tc.want == 200 && !tc.inspected && (!clear || len(body) != tc.n):
			t.Errorf("%s body of %d bytes, over the cap: got %d bytes, e-mail in clear %v; want it streamed whole, uninspected", tc.enc, tc.n, len(body), clear)
		case tc.want == 502 && !bytes.Contains(body, []byte("response_refused")):
			t.Errorf("%s body of %d bytes, over the cap: 502 without response_refused: %.200s", tc.enc, tc.n, body)
		}
		rows := s.auditRows(t, fmt.Sprintf("arrayStringConcat(request_values, ' ') LIKE '%%%s%%'", marker), 1)
		if len(rows) != 1 || rows[0][2] != strconv.Itoa(tc.want) {
			t.Errorf("%s body of %d bytes answered %d: audit rows %v, want one with status %d", tc.enc, tc.n, resp.StatusCode, rows, tc.want)
		}
		t.Logf("BENCH bounds/cap-http-body-%s-%d %d status bytes=%d email_in_clear=%v (max_inspect_body_bytes %d, row: %v)",
			tc.enc, tc.n, resp.StatusCode, len(body), clear, bcap, rows)
	}
}

// pgSessionID is the gateway session of conn (application_name's suffix).
func pgSessionID(t *testing.T, ctx context.Context, conn *pgx.Conn) string {
	var app string
	if err := conn.QueryRow(ctx, "SELECT current_setting('application_name')").Scan(&app); err != nil {
		t.Fatalf("application_name: %v", err)
	}
	_, id, ok := strings.Cut(app, "tollgate:")
	if !ok {
		t.Fatalf("application_name %q has no tollgate session", app)
	}
	return id
}

// pgCaps is TestBounds' PostgreSQL size-cap step: max_message_bytes
// (16 MiB) for Query, Parse, Bind (one huge parameter) and CopyData (COPY
// FROM STDIN), each with a message body of exactly the cap and of one
// byte over. At the cap the message is read: a statement that big is over
// max_statement_bytes (1 MiB) and refused with ERROR 54000, the session
// going on; COPY data that big is copied. One byte over ends the session
// with FATAL 54000 naming max_message_bytes, and its session.close row
// says why.
func (s *soakEnv) pgCaps(t *testing.T) {
	const mcap = 16 << 20
	sqlOf := func(n int) string { // a statement of exactly n bytes
		head, tail := "SELECT '", "' AS pad"
		return head + strings.Repeat("p", n-len(head)-len(tail)) + tail
	}
	param := func(n int) []byte { return bytes.Repeat([]byte("b"), n) }
	cases := []struct {
		name string
		msgs func(n int) []pgproto3.FrontendMessage // the first message with a body of n bytes
		copy bool
	}{
		{"query", func(n int) []pgproto3.FrontendMessage {
			return []pgproto3.FrontendMessage{&pgproto3.Query{String: sqlOf(n - 1)}}
		}, false},
		{"parse", func(n int) []pgproto3.FrontendMessage {
			return []pgproto3.FrontendMessage{&pgproto3.Parse{Query: sqlOf(n - 4)}, &pgproto3.Bind{}, &pgproto3.Execute{}, &pgproto3.Sync{}}
		}, false},
		{"bind", func(n int) []pgproto3.FrontendMessage {
			empty := bodyLen(t, &pgproto3.Bind{Parameters: [][]byte{{}}})
			return []pgproto3.FrontendMessage{&pgproto3.Bind{Parameters: [][]byte{param(n - empty)}}, &pgproto3.Execute{}, &pgproto3.Sync{}}
		}, false},
		{"copydata", func(n int) []pgproto3.FrontendMessage {
			data := append(param(n-1), '\n')
			return []pgproto3.FrontendMessage{&pgproto3.CopyData{Data: data}, &pgproto3.CopyDone{}}
		}, true},
	}
	// An ordinary pgx client, which writes a whole message before it
	// reads, gets the FATAL 54000 of a Query one byte over the cap (the
	// gateway reads and drops the rest of the message before it closes,
	// so the kernel does not reset the connection under the answer). The
	// cases below read while they write.
	func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		conn, err := pgx.Connect(ctx, s.load.PGDSN)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close(ctx)
		_, err = conn.Exec(ctx, sqlOf(mcap), pgx.QueryExecModeSimpleProtocol)
		var pe *pgconn.PgError
		if !errors.As(err, &pe) || pe.Code != "54000" || !strings.Contains(pe.Message, "max_message_bytes") {
			t.Errorf("pgx's Query of %d bytes: %v; want FATAL 54000 naming max_message_bytes", mcap+1, err)
		}
	}()
	for _, tc := range cases {
		for _, n := range []int{mcap, mcap + 1} {
			if got := bodyLen(t, tc.msgs(n)[0]); got != n {
				t.Fatalf("%s: built a body of %d bytes, want %d", tc.name, got, n)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			conn, err := pgx.Connect(ctx, s.load.PGDSN)
			if err != nil {
				cancel()
				t.Fatal(err)
			}
			id := pgSessionID(t, ctx, conn)
			pc := conn.PgConn()
			var pre []pgproto3.FrontendMessage
			if tc.name == "bind" {
				pre = []pgproto3.FrontendMessage{&pgproto3.Parse{Query: "SELECT $1::text AS pad"}}
			}
			if tc.copy {
				// COPY FROM STDIN, up to the server's CopyInResponse.
				fe := pc.Frontend()
				fe.Send(&pgproto3.Query{String: "COPY bounds_copy FROM STDIN"})
				if err := fe.Flush(); err != nil {
					t.Fatal(err)
				}
				for {
					m, err := fe.Receive()
					if err != nil {
						t.Fatalf("COPY FROM STDIN: %v", err)
					}
					if e, ok := m.(*pgproto3.ErrorResponse); ok {
						t.Fatalf("COPY FROM STDIN: %s %s", e.Code, e.Message)
					}
					if _, ok := m.(*pgproto3.CopyInResponse); ok {
						break
					}
				}
			}
			errs, ready, werr, rerr := pgExchange(pc, append(pre, tc.msgs(n)...)...)
			var codes []string
			for _, e := range errs {
				codes = append(codes, e.Severity+" "+e.Code+": "+e.Message)
			}
			over := n > mcap
			switch {
			case !over && tc.copy && (len(errs) > 0 || !ready):
				t.Errorf("%s of %d bytes (the cap): %v, ready %v (%v / %v); want it copied", tc.name, n, codes, ready, werr, rerr)
			case !over && !tc.copy && (len(errs) != 1 || errs[0].Code != "54000" || errs[0].Severity != "ERROR" || !ready):
				t.Errorf("%s of %d bytes (the cap): %v, ready %v (%v / %v); want ERROR 54000 (max_statement_bytes) and the session going on", tc.name, n, codes, ready, werr, rerr)
			case over && (len(errs) != 1 || errs[0].Code != "54000" || errs[0].Severity != "FATAL" || !strings.Contains(errs[0].Message, "max_message_bytes") || ready):
				t.Errorf("%s of %d bytes (one over the cap): %v, ready %v (%v / %v); want FATAL 54000 naming max_message_bytes", tc.name, n, codes, ready, werr, rerr)
			}
			if !over {
				var one int
				if err := conn.QueryRow(ctx, "SELECT 1").Scan(&one); err != nil {
					t.Errorf("%s of %d bytes (the cap): the session did not go on: %v", tc.name, n, err)
				}
			}
			conn.Close(ctx)
			cancel()
			// The rows: at the cap, the statement's (refused, or the COPY
			// run); over it, the session's close saying why.
			var where string
			switch {
			case over:
				where = fmt.Sprintf("toString(session_id) = '%s' AND kind = 'session.close' AND error LIKE '%%over the limit of %d%%'", id, mcap)
			case tc.copy:
				where = fmt.Sprintf("toString(session_id) = '%s' AND kind = 'pg.query' AND arrayStringConcat(request_values, ' ') LIKE '%%COPY bounds_copy FROM STDIN%%'", id)
			default:
				where = fmt.Sprintf("toString(session_id) = '%s' AND kind = 'pg.query' AND verdict = 'deny' AND reason LIKE '%%max_statement_bytes%%'", id)
			}
			rows := s.auditRows(t, where, 1)
			if len(rows) != 1 {
				t.Errorf("%s of %d bytes: %d audit rows where %s, want 1", tc.name, n, len(rows), where)
			}
			t.Logf("BENCH bounds/cap-pg-%s-%d answered=%q ready=%v rows=%d (max_message_bytes %d)", tc.name, n, codes, ready, len(rows), mcap)
		}
	}
}

// startupCap is TestBounds' startup-packet step. The startup packet's cap
// is pgproto3's, PostgreSQL's MAX_STARTUP_PACKET_LENGTH: 10,000 bytes
// after the length field. At the cap the session logs in (the padding
// parameter is not passed on, with a NOTICE); one byte over, the
// connection is closed at once, as PostgreSQL closes it.
func (s *soakEnv) startupCap(t *testing.T) string {
	const scap = 10000
	a := s.gws["a"]
	startup := func(n int) *pgproto3.StartupMessage {
		sm := &pgproto3.StartupMessage{ProtocolVersion: pgproto3.ProtocolVersion30,
			Parameters: map[string]string{"user": "agent", "database": "db", "x_bounds_pad": ""}}
		b, _ := sm.Encode(nil)
		sm.Parameters["x_bounds_pad"] = strings.Repeat("s", n-(len(b)-4))
		return sm
	}
	var outcome string
	for _, n := range []int{scap, scap + 1} {
		sm := startup(n)
		b, _ := sm.Encode(nil)
		if len(b)-4 != n {
			t.Fatalf("built a startup packet of %d bytes, want %d", len(b)-4, n)
		}
		c, err := net.DialTimeout("tcp", a.addrs["pg"], 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		c.SetDeadline(time.Now().Add(30 * time.Second))
		fe := pgproto3.NewFrontend(c, c)
		fe.Send(sm)
		t0 := time.Now()
		var got []string
		ready := false
		err = fe.Flush()
		for err == nil && !ready {
			var m pgproto3.BackendMessage
			m, err = fe.Receive()
			switch m := m.(type) {
			case *pgproto3.AuthenticationCleartextPassword:
				fe.Send(&pgproto3.PasswordMessage{Password: s.token})
				err = fe.Flush()
			case *pgproto3.ErrorResponse:
				got = append(got, m.Severity+" "+m.Code+": "+m.Message)
			case *pgproto3.NoticeResponse:
				got = append(got, "NOTICE "+m.Code)
			case *pgproto3.ReadyForQuery:
				ready = true
			}
		}
		closedAfter := time.Since(t0)
		if ready {
			fe.Send(&pgproto3.Terminate{})
			fe.Flush()
		}
		c.Close()
		switch {
		case n <= scap && !ready:
			t.Errorf("a startup packet of %d bytes (the cap): not logged in: %v %v", n, got, err)
		case n > scap && ready:
			t.Errorf("a startup packet of %d bytes (over the cap): logged in", n)
		case n > scap && closedAfter > 10*time.Second:
			t.Errorf("a startup packet of %d bytes (over the cap): held for %s", n, closedAfter)
		}
		if n > scap {
			outcome = fmt.Sprintf("answered %q, closed after %s (%v)", got, closedAfter.Round(time.Millisecond), err)
		}
		t.Logf("BENCH bounds/cap-pg-startup-%d ready=%v answered=%q closed_after=%s (%v)", n, ready, got, closedAfter.Round(time.Millisecond), err)
	}
	return outcome
}

// bigResult is TestBounds' large-result step: n rows, each with an e-mail
// the mask plugin masks, read through the gateway with pgconn while the
// gateway is sampled every second and a well-behaved client is served
// halfway through.
func (s *soakEnv) bigResult(t *testing.T, n int, base soak.Sample) int64 {
	a := s.gws["a"]
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
	defer cancel()
	pc, err := pgconn.Connect(ctx, s.load.PGDSN)
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close(ctx)
	stop := make(chan struct{})
	sampled := make(chan soak.Sample)
	var series strings.Builder // RSS/heap in MiB, one reading a second
	go func() {
		var peak soak.Sample
		for {
			smp := soak.Read("a", a.proc.PID(), a.addrs["admin"], s.start)
			peak.RSS, peak.Heap, peak.Goroutines = max(peak.RSS, smp.RSS), max(peak.Heap, smp.Heap), max(peak.Goroutines, smp.Goroutines)
			fmt.Fprintf(&series, " %d/%d", smp.RSS>>20, smp.Heap>>20)
			select {
			case <-stop:
				sampled <- peak
				return
			case <-time.After(time.Second):
			}
		}
	}()
	sql := fmt.Sprintf("SELECT g, 'user' || g || '@example.com' AS email FROM generate_series(1, %d) g", n)
	t0 := time.Now()
	rr := pc.ExecParams(ctx, sql, nil, nil, nil, nil)
	var rows, checked, clear int
	servedDone := make(chan struct{})
	every := max(1, n/20)
	for rr.NextRow() {
		rows++
		if rows%every == 1 || every == 1 {
			v := rr.Values()
			checked++
			if string(v[1]) == "user"+string(v[0])+"@example.com" {
				clear++
			}
		}
		if rows == n/2 {
			go func() { s.served(t, "while the large result streams"); close(servedDone) }()
		}
	}
	_, err = rr.Close()
	took := time.Since(t0)
	close(stop)
	peak := <-sampled
	if rows >= n/2 && n > 1 {
		<-servedDone
	}
	t.Logf("BENCH bounds/mask-rows-%d %.0f rows/s took=%s peak_rss=%dMiB (+%dMiB) peak_heap=%dMiB peak_goroutines=%d checked=%d in_clear=%d",
		n, float64(rows)/took.Seconds(), took.Round(100*time.Millisecond), peak.RSS>>20, (peak.RSS-base.RSS)>>20, peak.Heap>>20, peak.Goroutines, checked, clear)
	t.Logf("gateway RSS/heap MiB each second while the %d rows streamed:%s", n, series.String())
	if err != nil {
		t.Errorf("the %d-row result: %v", n, err)
	}
	if rows != n {
		t.Errorf("the %d-row result gave %d rows", n, rows)
	}
	if clear > 0 || checked == 0 {
		t.Errorf("of %d sampled rows, %d carried the e-mail in clear", checked, clear)
	}
	s.served(t, "after the large result")
	return peak.RSS
}
