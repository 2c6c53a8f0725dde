// Package soak drives a running gateway with concurrent PostgreSQL
// sessions and HTTP clients, each request carrying a unique marker, and
// keeps what every client saw (answered, refused, or no answer), so that
// the audit rows found afterwards can be matched one to one with the
// answers. It holds no test framework: the peers and the faults belong to
// the caller (cmd/gateway's soak tests start them with host/testenv).
package soak

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// Outcome is what a client saw of one request.
type Outcome int

const (
	// OK: answered and served (HTTP 2xx, a PostgreSQL result).
	OK Outcome = iota
	// Refused: answered with a refusal (HTTP 4xx/5xx, a PostgreSQL error).
	// A refusal is an action too: it must have its row.
	Refused
	// NoAnswer: the connection failed before an answer; the action may or
	// may not have run, so it may have at most one row, never two.
	NoAnswer
)

func (o Outcome) String() string {
	return [...]string{"ok", "refused", "no-answer"}[o]
}

// Result is one request as its client saw it.
type Result struct {
	Marker  string
	Proto   string // "http" or "postgres"
	Outcome Outcome
	Sent    time.Time
	At      time.Time // when the answer (or the failure) came
	Detail  string    // status code, SQLSTATE, or the error
	Masked  bool      // a postgres result whose secret column came back masked
}

// Latency is how long the request took.
func (r Result) Latency() time.Duration { return r.At.Sub(r.Sent) }

// Marker is the unique tag of worker w's q-th request. It fits in a URL
// path, a SQL identifier and a string literal, and MarkerPattern finds it
// in an audit row.
func Marker(proto string, w, q int) string { return fmt.Sprintf("soak_%s%d_q%d", proto[:1], w, q) }

// MarkerPattern is the re2 pattern (ClickHouse's extract) of a marker.
const MarkerPattern = `soak_[hp][0-9]+_q[0-9]+`

// Secret is the value of soak_keys.secret in the upstream table: a
// result that carries it unmasked is a masking failure.
const Secret = "sk_live_soak_0123456789abcdef0123"

// SetupSQL creates the table the PostgreSQL sessions read (run it on the
// upstream, not through the gateway).
const SetupSQL = `CREATE TABLE IF NOT EXISTS soak_keys (id int PRIMARY KEY, owner text, secret text);
INSERT INTO soak_keys SELECT g, 'owner' || g, '` + Secret + `' FROM generate_series(1, 20) g ON CONFLICT DO NOTHING;`

// Load is the client side of a soak.
type Load struct {
	PG      int    // concurrent PostgreSQL sessions
	HTTP    int    // concurrent HTTP clients
	PGDSN   string // libpq keyword/value string for the gateway's postgres listener (password: the token)
	Token   string // bearer token for HTTP
	Timeout time.Duration
	// Pause between one worker's requests (0: none). The short soak uses
	// it to keep the race-enabled test process from eating both cores.
	Pause time.Duration

	httpBases atomic.Pointer[[]string] // "http://addr/demo", worker i uses i % len

	mu      sync.Mutex
	results []Result
}

// SetHTTPBases points the HTTP workers at these bases (worker i uses
// bases[i%len]): a second replica joins or leaves this way.
func (l *Load) SetHTTPBases(bases ...string) { l.httpBases.Store(&bases) }

func (l *Load) add(r Result) {
	l.mu.Lock()
	l.results = append(l.results, r)
	l.mu.Unlock()
}

// Results is a copy of every result so far.
func (l *Load) Results() []Result {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]Result(nil), l.results...)
}

// Run drives the gateway until ctx ends and returns once every worker has
// finished its request in flight.
func (l *Load) Run(ctx context.Context) {
	if l.Timeout == 0 {
		l.Timeout = 10 * time.Second
	}
	var wg sync.WaitGroup
	for w := range l.PG {
		wg.Go(func() { l.pgWorker(ctx, w) })
	}
	for w := range l.HTTP {
		wg.Go(func() { l.httpWorker(ctx, w) })
	}
	wg.Wait()
}

func (l *Load) pause(ctx context.Context) {
	if l.Pause > 0 {
		select {
		case <-ctx.Done():
		case <-time.After(l.Pause):
		}
	}
}

func (l *Load) httpWorker(ctx context.Context, w int) {
	// One keep-alive connection per worker: sessions last until a fault
	// breaks them.
	tr := &http.Transport{MaxIdleConnsPerHost: 1}
	defer tr.CloseIdleConnections()
	c := &http.Client{Transport: tr, Timeout: l.Timeout}
	for q := 0; ctx.Err() == nil; q++ {
		bases := *l.httpBases.Load()
		base := bases[w%len(bases)]
		m := Marker("http", w, q)
		method := http.MethodGet
		if q%10 == 9 { // the guard denies DELETE: a refusal with its row
			method = http.MethodDelete
		}
		req, _ := http.NewRequest(method, base+"/soak/"+m, nil)
		req.Header.Set("Authorization", "Bearer "+l.Token)
		r := Result{Marker: m, Proto: "http", Sent: time.Now()}
		resp, err := c.Do(req)
		if err == nil {
			_, err = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
		r.At = time.Now()
		switch {
		case err != nil:
			r.Outcome, r.Detail = NoAnswer, err.Error()
			tr.CloseIdleConnections()
		case resp.StatusCode < 300:
			r.Outcome, r.Detail = OK, fmt.Sprint(resp.StatusCode)
		default:
			r.Outcome, r.Detail = Refused, fmt.Sprint(resp.StatusCode)
		}
		l.add(r)
		if err != nil {
			l.sleep(ctx, 100*time.Millisecond) // the gateway is away: do not spin
		}
		l.pause(ctx)
	}
}

func (l *Load) sleep(ctx context.Context, d time.Duration) {
	select {
	case <-ctx.Done():
	case <-time.After(d):
	}
}

// pgWorker runs one session at a time, reconnecting when a fault breaks
// it. Queries alternate: simple protocol with the marker as a literal,
// extended protocol (a cached prepared statement) with the marker as a
// parameter, and every tenth a DROP the guard denies. Each reads the
// secret column the mask plugin masks.
func (l *Load) pgWorker(ctx context.Context, w int) {
	var conn *pgx.Conn
	defer func() {
		if conn != nil {
			cctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			conn.Close(cctx)
			cancel()
		}
	}()
	for q := 0; ctx.Err() == nil; q++ {
		if conn == nil || conn.IsClosed() {
			cctx, cancel := context.WithTimeout(ctx, l.Timeout)
			c, err := pgx.Connect(cctx, l.PGDSN)
			cancel()
			if err != nil {
				// A refused login is answered too, but it carries no
				// marker: it is counted as a session error, not an action.
				l.add(Result{Proto: "postgres", Outcome: NoAnswer, Sent: time.Now(), At: time.Now(), Detail: "connect: " + err.Error()})
				l.sleep(ctx, 100*time.Millisecond)
				continue
			}
			conn = c
		}
		m := Marker("postgres", w, q)
		r := Result{Marker: m, Proto: "postgres", Sent: time.Now()}
		qctx, cancel := context.WithTimeout(context.Background(), l.Timeout)
		var secret string
		var err error
		id := q%20 + 1
		switch {
		case q%10 == 9:
			_, err = conn.Exec(qctx, "DROP TABLE IF EXISTS "+m)
		case q%2 == 0:
			err = conn.QueryRow(qctx, fmt.Sprintf("SELECT '%s' AS marker, secret FROM soak_keys WHERE id = %d", m, id),
				pgx.QueryExecModeSimpleProtocol).Scan(new(string), &secret)
		default:
			err = conn.QueryRow(qctx, "SELECT $1::text AS marker, secret FROM soak_keys WHERE id = $2", m, id).Scan(new(string), &secret)
		}
		cancel()
		r.At = time.Now()
		var pe *pgconn.PgError
		switch {
		case err == nil:
			r.Outcome, r.Masked = OK, secret != Secret
		case errors.As(err, &pe) && (pe.Severity == "FATAL" || pe.Severity == "PANIC"):
			// The session ended (an upstream restart sends 57P01 to every
			// session, idle or not): pgx returns it for the query it was
			// sending, which the gateway may never have read. Whether the
			// statement ran is unknown, as with a broken connection.
			r.Outcome, r.Detail = NoAnswer, "FATAL "+pe.Code
			cctx, cancel := context.WithTimeout(context.Background(), time.Second)
			conn.Close(cctx)
			cancel()
			conn = nil
		case errors.As(err, &pe):
			r.Outcome, r.Detail = Refused, pe.Code
		default:
			r.Outcome, r.Detail = NoAnswer, err.Error()
			cctx, cancel := context.WithTimeout(context.Background(), time.Second)
			conn.Close(cctx)
			cancel()
			conn = nil
		}
		l.add(r)
		l.pause(ctx)
	}
}
