package main_test

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/tollgate-dev/tollgate/cmd/gateway/internal/soak"
	"github.com/tollgate-dev/tollgate/host/config"
	"github.com/tollgate-dev/tollgate/host/identity"
)

// raiseNoFile lifts this process's open-file soft limit to at least n
// (the gateway, its child, inherits it). Go already raises the soft limit
// to the hard one at start; a hard limit below n fails the test rather
// than measure something smaller than it says.
func raiseNoFile(n uint64) error {
	var l syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &l); err != nil {
		return fmt.Errorf("getrlimit: %w", err)
	}
	if l.Cur >= n {
		return nil
	}
	if l.Max < n {
		return fmt.Errorf("open-file hard limit %d is below the %d this test needs (raise it: ulimit -Hn)", l.Max, n)
	}
	l.Cur = n
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &l); err != nil {
		return fmt.Errorf("setrlimit: %w", err)
	}
	return nil
}

// served sends one HTTP request and one PostgreSQL query through gateway
// "a" as a well-behaved client and fails the test unless both are served.
func (s *soakEnv) served(t *testing.T, during string) {
	t.Helper()
	a := s.gws["a"]
	req, _ := http.NewRequest(http.MethodGet, "http://"+a.addrs["http"]+"/demo/served", nil)
	req.Header.Set("Authorization", "Bearer "+s.token)
	c := http.Client{Timeout: 20 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	resp, err := c.Do(req)
	if err != nil {
		t.Errorf("%s: a well-behaved HTTP client was not served: %v", during, err)
	} else {
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Errorf("%s: a well-behaved HTTP client got %d", during, resp.StatusCode)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, s.load.PGDSN)
	if err != nil {
		t.Errorf("%s: a well-behaved PostgreSQL client could not log in: %v", during, err)
		return
	}
	defer conn.Close(ctx)
	var one int
	if err := conn.QueryRow(ctx, "SELECT 1").Scan(&one); err != nil {
		t.Errorf("%s: a well-behaved PostgreSQL query failed: %v", during, err)
	}
}

// figure reads gateway "a" and logs one BENCH line for the bound.
func (s *soakEnv) figure(t *testing.T, name string, base soak.Sample) soak.Sample {
	a := s.gws["a"]
	smp := soak.Read("a", a.proc.PID(), a.addrs["admin"], s.start)
	t.Logf("BENCH bounds/%s rss=%dMiB (+%dMiB) heap=%dMiB goroutines=%d (+%d)", name, smp.RSS>>20, (smp.RSS-base.RSS)>>20,
		smp.Heap>>20, smp.Goroutines, smp.Goroutines-base.Goroutines)
	return smp
}

// TestBounds holds the gateway to its bounds with the shipped defaults
// (issue 19, item 7): 10,000 idle connections, a slowloris on every
// listener, JWTs of 1 MiB and of 10,000 claims, a statement over its cap,
// a TLS handshake flood (full handshakes and stalled ClientHellos) on the
// listeners that speak TLS, ten million masked rows, and a message of
// exactly each size cap and one byte over (max_header_bytes,
// max_inspect_body_bytes, max_message_bytes for Query, Parse, Bind and
// CopyData, the startup packet), each answer matched to its audit row.
// Each step logs the gateway's RSS and goroutines (BENCH bounds/...), a
// well-behaved client is served during or right after each, and the RSS
// stays under boundsRSSBound. The timeouts that end the slow clients are
// reported, never asserted (a deadline of a minute only keeps the test
// from hanging).
func TestBounds(t *testing.T) {
	const idle = 10000
	if err := raiseNoFile(idle + 2048); err != nil {
		t.Fatal(err)
	}
	x := newBoundsExtras(t)
	s := newSoak(t, "", x.config)
	s.start = time.Now()
	a := s.gws["a"]
	waitListening(t, x.httpsAddr)
	s.pg.Exec(t, "CREATE TABLE IF NOT EXISTS bounds_copy (t text)")
	s.served(t, "at start")
	base := s.figure(t, "start", soak.Sample{})
	peak := base.RSS

	// 10,000 idle connections to the HTTP listener (no request: they end
	// at read_header_timeout, 10 s by default).
	t.Run("idle", func(t *testing.T) {
		var conns []net.Conn
		defer func() {
			for _, c := range conns {
				c.Close()
			}
		}()
		t0 := time.Now()
		for range idle {
			c, err := net.DialTimeout("tcp", a.addrs["http"], 5*time.Second)
			if err != nil {
				t.Fatalf("idle connection %d: %v", len(conns), err)
			}
			conns = append(conns, c)
		}
		t.Logf("%d idle connections opened in %s", idle, time.Since(t0).Round(time.Millisecond))
		time.Sleep(500 * time.Millisecond) // let the gateway accept them all
		smp := s.figure(t, "idle-10000", base)
		peak = max(peak, smp.RSS)
		s.served(t, "with 10,000 idle connections")
		// How long until the gateway closes them (read_header_timeout).
		closed := waitClosed(conns[:1], time.Minute)
		t.Logf("the first idle connection was closed by the gateway after %s (read_header_timeout 10s)", closed[0].Round(100*time.Millisecond))
	})

	// A slowloris on every listener: one byte every 500 ms, never a
	// whole request or startup message. From 127.0.0.2: the postgres
	// listener caps connections per source (100 by default), so a hundred
	// slow clients from the well-behaved client's own address would lock
	// it out by design; from another source they must not.
	t.Run("slowloris", func(t *testing.T) {
		slow := map[string]struct {
			addr  string
			bytes string
		}{
			"http":  {a.addrs["http"], "GET /demo/x HTTP/1.1\r\nHost: x\r\nX-Slow: " + strings.Repeat("a", 1000)},
			"admin": {a.addrs["admin"], "GET /metrics HTTP/1.1\r\nHost: x\r\nX-Slow: " + strings.Repeat("a", 1000)},
			// A startup message's length, then its bytes one at a time.
			"postgres": {a.addrs["pg"], "\x00\x00\x01\x00\x00\x03\x00\x00user\x00" + strings.Repeat("a", 240)},
		}
		var wg sync.WaitGroup
		var mu sync.Mutex
		took := map[string]time.Duration{}
		for name, sl := range slow {
			for range 100 { // a hundred per listener
				wg.Go(func() {
					dialer := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, 2)}}
					c, err := dialer.Dial("tcp", sl.addr)
					if err != nil {
						t.Errorf("slowloris %s: %v", name, err)
						return
					}
					defer c.Close()
					t0 := time.Now()
					go func() {
						for i := 0; i < len(sl.bytes); i++ {
							if _, err := c.Write([]byte{sl.bytes[i]}); err != nil {
								return
							}
							time.Sleep(500 * time.Millisecond)
						}
					}()
					c.SetReadDeadline(time.Now().Add(time.Minute))
					io.Copy(io.Discard, c) // until the gateway closes it
					d := time.Since(t0)
					mu.Lock()
					took[name] = max(took[name], d)
					mu.Unlock()
				})
			}
		}
		time.Sleep(2 * time.Second)
		smp := s.figure(t, "slowloris-300", base)
		peak = max(peak, smp.RSS)
		s.served(t, "during the slowloris")
		wg.Wait()
		for name, d := range took {
			if d >= time.Minute {
				t.Errorf("slowloris on %s: still open after a minute", name)
			}
			t.Logf("BENCH bounds/slowloris-%s closed_after=%s", name, d.Round(100*time.Millisecond))
		}
	})

	// JWTs signed by the dev issuer's own key (so that only their size
	// stands in the way): one with a 1 MiB claim, one with 10,000 claims,
	// each sent by 20 clients at once, over HTTP and as the PostgreSQL
	// password.
	t.Run("jwt", func(t *testing.T) {
		iss, err := identity.NewDevIssuer(&config.Dev{IssuerListen: a.addrs["issuer"], Audience: "tollgate"}, filepath.Join(a.dir, ".tollgate"))
		if err != nil {
			t.Fatal(err)
		}
		claims := map[string]any{}
		for i := range 10000 {
			claims[fmt.Sprintf("c%05d", i)] = "v"
		}
		big := map[string]any{"pad": strings.Repeat("x", 1<<20)}
		for _, tc := range []struct {
			name   string
			claims map[string]any
		}{{"1mib", big}, {"10000-claims", claims}} {
			tok, err := iss.Mint(identity.MintOptions{Subject: "big@example.com", Claims: tc.claims})
			if err != nil {
				t.Fatal(err)
			}
			var wg sync.WaitGroup
			var mu sync.Mutex
			seen := map[string]int{}
			for range 20 {
				wg.Go(func() {
					req, _ := http.NewRequest(http.MethodGet, "http://"+a.addrs["http"]+"/demo/big", nil)
					req.Header.Set("Authorization", "Bearer "+tok)
					c := http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
					got := "error"
					if resp, err := c.Do(req); err == nil {
						got = fmt.Sprint(resp.StatusCode)
						resp.Body.Close()
					}
					ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
					defer cancel()
					pg := "ok"
					cfg, _ := pgx.ParseConfig(strings.Replace(s.load.PGDSN, s.token, "x", 1))
					cfg.Password = tok
					if conn, err := pgx.ConnectConfig(ctx, cfg); err != nil {
						var pe *pgconn.PgError
						pg = "error"
						if ok := asPgError(err, &pe); ok {
							pg = pe.Code
						}
					} else {
						conn.Close(ctx)
					}
					mu.Lock()
					seen["http "+got]++
					seen["postgres "+pg]++
					mu.Unlock()
				})
			}
			time.Sleep(300 * time.Millisecond)
			smp := s.figure(t, "jwt-"+tc.name, base)
			peak = max(peak, smp.RSS)
			wg.Wait()
			t.Logf("BENCH bounds/jwt-%s token_bytes=%d answers=%v", tc.name, len(tok), seen)
			if seen["http 200"] > 0 {
				t.Logf("jwt-%s: HTTP accepted a %d-byte token", tc.name, len(tok))
			}
			s.served(t, "after the "+tc.name+" tokens")
		}
	})

	// A statement one byte over max_statement_bytes (1 MiB) is refused
	// with 54000, and one at the cap runs.
	t.Run("statement-cap", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		conn, err := pgx.Connect(ctx, s.load.PGDSN)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close(ctx)
		stmt := func(n int) string {
			head, tail := "SELECT '", "' AS pad"
			return head + strings.Repeat("p", n-len(head)-len(tail)) + tail
		}
		if _, err := conn.Exec(ctx, stmt(1<<20), pgx.QueryExecModeSimpleProtocol); err != nil {
			t.Errorf("a statement of exactly 1 MiB: %v", err)
		}
		_, err = conn.Exec(ctx, stmt(1<<20+1), pgx.QueryExecModeSimpleProtocol)
		var pe *pgconn.PgError
		if !asPgError(err, &pe) || pe.Code != "54000" {
			t.Errorf("a statement of 1 MiB + 1: %v, want 54000", err)
		}
		smp := s.figure(t, "statement-cap", base)
		peak = max(peak, smp.RSS)
		s.served(t, "after the statement cap")
	})

	// A TLS handshake flood on every listener that speaks TLS (the https
	// listener added for this test, and postgres after its SSLRequest):
	// 200 clients doing full handshakes back to back for 5 s, and 500
	// that send part of a ClientHello and stall, each listener.
	t.Run("tls-flood", func(t *testing.T) {
		peak = max(peak, s.tlsFlood(t, x, base))
	})

	// A large result through the mask plugin, every row with an e-mail
	// it masks: -soak.rows rows, a million in make test, ten million in
	// make soak (21 to 92 s here, with the cores shared). Its RSS peak is
	// the GC's target (GOGC=400 over a live heap of about 100 MiB), not
	// the result's size (docs/SOAK.md, "Where the memory goes").
	t.Run("mask-rows", func(t *testing.T) {
		peak = max(peak, s.bigResult(t, *boundsRows, base))
	})

	// Every size cap at exactly the cap and one byte over.
	t.Run("http-caps", func(t *testing.T) {
		s.httpCaps(t, x)
		smp := s.figure(t, "http-caps", base)
		peak = max(peak, smp.RSS)
		s.served(t, "after the HTTP caps")
	})
	t.Run("pg-caps", func(t *testing.T) {
		s.pgCaps(t)
		smp := s.figure(t, "pg-caps", base)
		peak = max(peak, smp.RSS)
		s.served(t, "after the PostgreSQL caps")
	})
	t.Run("startup-cap", func(t *testing.T) {
		s.startupCap(t)
		s.served(t, "after the startup packet cap")
	})

	t.Logf("BENCH bounds/peak rss=%dMiB (bound %dMiB)", peak>>20, boundsRSSBound>>20)
	if peak > boundsRSSBound {
		t.Errorf("gateway RSS peaked at %d MiB, bound %d MiB", peak>>20, boundsRSSBound>>20)
	}
}

// boundsRSSBound is the RSS TestBounds asserts. Measured with the
// shipped GOGC=400: peaks of 841 to 1,016 MiB, set by the ten million
// masked rows (the heap grows to about five times a live heap of about
// 100 MiB before each collection) and the 16 MiB messages of the caps
// (the RSS keeps what the heap reached: 1,016 MiB with a 294 MiB heap);
// with GOGC=100 the same stream adds 13 MiB (docs/SOAK.md, "Where the
// memory goes"). soakRSSBound's 1 GiB is too close to that for a test.
// 1.5 GiB leaves room for the GC's peak. It is a loose net: the rows'
// wire bytes alone (about 450 MB) held over the base of about 250 MiB
// would pass under it; what shows that the rows are not held is the heap
// falling back to about 100 MiB at each collection, in the series the
// mask-rows step logs.
const boundsRSSBound = 3 << 29

// boundsRows is the size of TestBounds' large result. Issue 19 asks for
// ten million rows: 21 to 92 s on these two shared cores depending on
// their load, so make test reads a million and make soak, which runs
// TestBounds after TestSoak, ten million (SOAK_ROWS).
var boundsRows = flag.Int("soak.rows", 1_000_000, "TestBounds: rows of the large result read through the mask plugin (make soak: 10000000)")

func asPgError(err error, pe **pgconn.PgError) bool { return errors.As(err, pe) }

// waitClosed reads each connection until the gateway closes it (or limit
// passes) and returns how long each stayed open.
func waitClosed(conns []net.Conn, limit time.Duration) []time.Duration {
	out := make([]time.Duration, len(conns))
	t0 := time.Now()
	for i, c := range conns {
		c.SetReadDeadline(t0.Add(limit))
		io.Copy(io.Discard, c)
		out[i] = time.Since(t0)
	}
	return out
}
