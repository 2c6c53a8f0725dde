package http

import (
	"bytes"
	"crypto/tls"
	"net"
	"strings"
	"sync"
	"time"
)

// Go's server answers some requests itself, before any handler runs: a
// header over max_header_bytes (431), a malformed request line or header
// (400). Those answers would leave no audit row, so the listener wraps
// each connection and recognizes them as they are written.

// serverErrorHeaders is the header block net/http writes, and only it,
// after the status line of an answer it gives without a handler. A
// handler's answer cannot carry it: the server writes a handler's
// headers sorted, Connection before Content-Type.
const serverErrorHeaders = "\r\nContent-Type: text/plain; charset=utf-8\r\nConnection: close\r\n\r\n"

// watchListener wraps every accepted connection in a watchedConn.
type watchListener struct{ net.Listener }

func (w watchListener) Accept() (net.Conn, error) {
	c, err := w.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &watchedConn{Conn: c}, nil
}

// watchedConn keeps the first bytes of the request being read, for the
// request line of a row, and watches writes for the server's own answers.
type watchedConn struct {
	net.Conn
	mu   sync.Mutex
	cs   *conn  // set by connContext
	head []byte // the start of what was read since the last write
}

const headKeep = 1 << 10

func (w *watchedConn) Read(p []byte) (int, error) {
	n, err := w.Conn.Read(p)
	if n > 0 {
		w.mu.Lock()
		if room := headKeep - len(w.head); room > 0 {
			w.head = append(w.head, p[:min(n, room)]...)
		}
		w.mu.Unlock()
	}
	return n, err
}

func (w *watchedConn) Write(p []byte) (int, error) {
	w.mu.Lock()
	head := w.head
	w.head = nil
	cs := w.cs
	w.mu.Unlock()
	if cs != nil {
		if status, reason, ok := serverAnswer(p); ok {
			cs.refusedByServer(status, reason, head)
		}
	}
	return w.Conn.Write(p)
}

// tlsState is the TLS state of the connection, if it is TLS. Wrapped, the
// connection is no *tls.Conn to net/http, which then leaves Request.TLS
// nil; the handler puts it back from here.
func (w *watchedConn) tlsState() *tls.ConnectionState {
	if tc, ok := w.Conn.(*tls.Conn); ok {
		st := tc.ConnectionState()
		return &st
	}
	return nil
}

// serverAnswer recognizes an answer net/http wrote without a handler.
func serverAnswer(p []byte) (status, reason string, ok bool) {
	line, rest, found := bytes.Cut(p, []byte("\r\n"))
	if !found || !bytes.HasPrefix(line, []byte("HTTP/1.")) || !bytes.HasPrefix(append([]byte("\r\n"), rest...), []byte(serverErrorHeaders)) {
		return "", "", false
	}
	_, st, _ := strings.Cut(string(line), " ")
	status, reason, _ = strings.Cut(st, " ")
	if len(status) != 3 {
		return "", "", false
	}
	return status, reason, true
}

// refusedByServer records a request the HTTP server refused itself, in a
// session of its own: nobody was identified.
func (c *conn) refusedByServer(status, reason string, head []byte) {
	now := time.Now()
	s := c.sessionFor(nil, "", now)
	row := sessionRow(s, "http.request", "")
	row.Time = now
	req := map[string]string{}
	// The request line, if it was read whole: method and path only, the
	// query may hold what it should not.
	if line, _, ok := bytes.Cut(head, []byte("\r\n")); ok {
		if f := strings.Fields(string(line)); len(f) == 3 && strings.HasPrefix(f[2], "HTTP/") {
			req["method"] = f[0]
			req["path"], _, _ = strings.Cut(f[1], "?")
		}
	}
	row.Request = req
	row.Status = status
	row.Error = "refused by the HTTP server: " + status + " " + reason
	if status == "431" {
		row.Error += " (over max_header_bytes)"
	}
	s.RecordSynced(row, false) // no target: nothing was forwarded
}
