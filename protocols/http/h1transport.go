package http

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"
	"time"
)

// h1Transport is the gateway's HTTP/1.1 client towards one upstream. It
// does each round trip on the calling goroutine: write the request, read
// the response, hand the body to the caller, and put the connection back
// in the pool when the body is done.
//
// Why not http.Transport: it runs a reader and a writer goroutine per
// connection and hands every request and response between them over
// channels. On the 2-core machines this gateway is measured on, those
// hand-offs were most of the gateway's added latency (about 170 µs at one
// connection, against 80 µs for nginx). Framing stays the standard
// library's: requests are serialized by http.Request.Write and responses
// parsed by http.ReadResponse.
type h1Transport struct {
	addr    string      // host:port to dial
	tls     *tls.Config // nil for http
	dialer  net.Dialer
	maxIdle int
	idleFor time.Duration

	mu   sync.Mutex
	idle []*h1Conn // most recently used last
}

type h1Conn struct {
	net.Conn
	br       *bufio.Reader
	bw       *bufio.Writer
	lastUsed time.Time
	reused   bool
}

func newH1Transport(addr string, tlsCfg *tls.Config) *h1Transport {
	return &h1Transport{
		addr:    addr,
		tls:     tlsCfg,
		dialer:  net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second},
		maxIdle: 256,
		idleFor: 90 * time.Second,
	}
}

// RoundTrip sends req on a pooled or new connection. A request that fails
// on a reused connection before any response byte arrived is retried once
// on a fresh one when it has no body: the upstream closed an idle
// connection at the moment we picked it.
func (t *h1Transport) RoundTrip(req *http.Request) (*http.Response, error) {
	for attempt := 0; ; attempt++ {
		c, err := t.get(req.Context())
		if err != nil {
			return nil, err
		}
		resp, err := t.roundTrip(c, req)
		if err == nil {
			return resp, nil
		}
		c.Close()
		if attempt == 0 && c.reused && errors.Is(err, errNothingRead) && (req.Body == nil || req.Body == http.NoBody) {
			continue
		}
		return nil, err
	}
}

// errNothingRead marks a connection that closed before a response began.
var errNothingRead = errors.New("connection closed before the response")

func (t *h1Transport) roundTrip(c *h1Conn, req *http.Request) (*http.Response, error) {
	// A client that goes away must unblock a read or write on the
	// upstream connection; an expired deadline does that.
	stop := context.AfterFunc(req.Context(), func() { c.SetDeadline(time.Unix(1, 0)) })
	werr := req.Write(c.bw)
	if werr == nil {
		werr = c.bw.Flush()
	}
	resp, err := readResponse(c, req)
	if err != nil {
		stop()
		if werr != nil {
			return nil, fmt.Errorf("write request: %w", werr)
		}
		return nil, err
	}
	if werr != nil {
		// The upstream answered before taking the whole request (a 413,
		// say). Pass the answer on; the connection is not reusable.
		resp.Close = true
	}
	if resp.StatusCode == http.StatusSwitchingProtocols {
		stop()
		c.SetDeadline(time.Time{})
		// ReverseProxy takes the upgraded connection from the body.
		resp.Body = &upgraded{c}
		return resp, nil
	}
	reusable := !resp.Close && !req.Close
	resp.Body = &trackedBody{rc: resp.Body, done: func(clean bool) {
		if !stop() || !clean || !reusable || c.br.Buffered() > 0 {
			c.Close()
			return
		}
		t.put(c)
	}}
	return resp, nil
}

// readResponse reads the final response, skipping 1xx informational ones
// (except 101, which is final for an upgrade).
func readResponse(c *h1Conn, req *http.Request) (*http.Response, error) {
	for {
		if _, err := c.br.Peek(1); err != nil {
			if errors.Is(err, io.EOF) || errors.Is(err, net.ErrClosed) || isReset(err) {
				return nil, errNothingRead
			}
			return nil, err
		}
		resp, err := http.ReadResponse(c.br, req)
		if err != nil {
			return nil, err
		}
		if resp.StatusCode >= 200 || resp.StatusCode == http.StatusSwitchingProtocols {
			return resp, nil
		}
	}
}

func isReset(err error) bool {
	var op *net.OpError
	return errors.As(err, &op) && op.Op == "read"
}

// get returns an idle connection that is still open, or dials a new one.
func (t *h1Transport) get(ctx context.Context) (*h1Conn, error) {
	now := time.Now()
	t.mu.Lock()
	for len(t.idle) > 0 {
		c := t.idle[len(t.idle)-1]
		t.idle = t.idle[:len(t.idle)-1]
		idle := now.Sub(c.lastUsed)
		// Peeking costs a syscall; a connection used a moment ago is
		// not worth it (servers close idle connections after seconds).
		if idle < t.idleFor && (idle < time.Second || alive(c)) {
			t.mu.Unlock()
			c.reused = true
			return c, nil
		}
		c.Close()
	}
	t.mu.Unlock()

	nc, err := t.dialer.DialContext(ctx, "tcp", t.addr)
	if err != nil {
		return nil, err
	}
	if t.tls != nil {
		tc := tls.Client(nc, t.tls)
		hctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		err := tc.HandshakeContext(hctx)
		cancel()
		if err != nil {
			nc.Close()
			return nil, fmt.Errorf("tls: %w", err)
		}
		nc = tc
	}
	return &h1Conn{Conn: nc, br: bufio.NewReaderSize(nc, 16<<10), bw: bufio.NewWriterSize(nc, 16<<10)}, nil
}

func (t *h1Transport) put(c *h1Conn) {
	c.SetDeadline(time.Time{})
	c.lastUsed = time.Now()
	t.mu.Lock()
	defer t.mu.Unlock()
	if len(t.idle) >= t.maxIdle {
		c.Close()
		return
	}
	t.idle = append(t.idle, c)
}

// CloseIdleConnections closes pooled connections; used at shutdown.
func (t *h1Transport) CloseIdleConnections() {
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, c := range t.idle {
		c.Close()
	}
	t.idle = nil
}

// trackedBody reports whether the body was read to the end before Close,
// which decides if its connection can serve another request.
type trackedBody struct {
	rc   io.ReadCloser
	eof  bool
	once sync.Once
	done func(clean bool)
}

func (b *trackedBody) Read(p []byte) (int, error) {
	n, err := b.rc.Read(p)
	if errors.Is(err, io.EOF) {
		b.eof = true
		b.finish(true)
	} else if err != nil {
		b.finish(false)
	}
	return n, err
}

func (b *trackedBody) Close() error {
	err := b.rc.Close()
	b.finish(b.eof && err == nil)
	return err
}

func (b *trackedBody) finish(clean bool) { b.once.Do(func() { b.done(clean) }) }

// upgraded is the connection after a 101, as ReverseProxy wants it: an
// io.ReadWriteCloser whose reads first drain what bufio already holds.
type upgraded struct{ c *h1Conn }

func (u *upgraded) Read(p []byte) (int, error)  { return u.c.br.Read(p) }
func (u *upgraded) Write(p []byte) (int, error) { return u.c.Conn.Write(p) }
func (u *upgraded) Close() error                { return u.c.Conn.Close() }
