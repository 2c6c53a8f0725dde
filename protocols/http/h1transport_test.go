package http

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// rawUpstream accepts connections and runs serve on each; it counts them.
type rawUpstream struct {
	ln    net.Listener
	conns atomic.Int32
}

func startRaw(t *testing.T, serve func(c net.Conn, br *bufio.Reader)) *rawUpstream {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	u := &rawUpstream{ln: ln}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			u.conns.Add(1)
			go func() { defer c.Close(); serve(c, bufio.NewReader(c)) }()
		}
	}()
	t.Cleanup(func() { ln.Close() })
	return u
}

// answerAll serves requests on one connection until it closes.
func answerAll(respond func(req *http.Request, body []byte) string) func(net.Conn, *bufio.Reader) {
	return func(c net.Conn, br *bufio.Reader) {
		for {
			req, err := http.ReadRequest(br)
			if err != nil {
				return
			}
			body, _ := io.ReadAll(req.Body)
			if _, err := io.WriteString(c, respond(req, body)); err != nil {
				return
			}
		}
	}
}

func get(t *testing.T, tr *h1Transport, method, url string, body io.Reader) (*http.Response, string) {
	t.Helper()
	req, _ := http.NewRequest(method, url, body)
	resp, err := tr.RoundTrip(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	b, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		t.Fatalf("read body: %v", err)
	}
	return resp, string(b)
}

func TestH1ReusesConnections(t *testing.T) {
	u := startRaw(t, answerAll(func(*http.Request, []byte) string {
		return "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
	}))
	tr := newH1Transport(u.ln.Addr().String(), nil)
	for range 5 {
		if _, body := get(t, tr, "GET", "http://up/x", nil); body != "ok" {
			t.Fatalf("body %q", body)
		}
	}
	if n := u.conns.Load(); n != 1 {
		t.Fatalf("5 sequential requests used %d connections, want 1", n)
	}
}

func TestH1RetriesWhenIdleConnectionWasClosed(t *testing.T) {
	// The upstream answers one request per connection and closes it
	// without saying so, as a server whose idle timeout fired would.
	u := startRaw(t, func(c net.Conn, br *bufio.Reader) {
		if _, err := http.ReadRequest(br); err == nil {
			io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
		}
	})
	tr := newH1Transport(u.ln.Addr().String(), nil)
	get(t, tr, "GET", "http://up/1", nil)
	time.Sleep(50 * time.Millisecond) // let the close arrive
	if _, body := get(t, tr, "GET", "http://up/2", nil); body != "ok" {
		t.Fatalf("second request on a closed pooled connection: %q", body)
	}
	if n := u.conns.Load(); n != 2 {
		t.Fatalf("connections = %d, want 2", n)
	}
}

func TestH1StreamsBodiesBothWays(t *testing.T) {
	u := startRaw(t, answerAll(func(req *http.Request, body []byte) string {
		// Chunked answer echoing the request body and how it was framed.
		msg := fmt.Sprintf("%s %v %s", req.Method, req.TransferEncoding, body)
		return fmt.Sprintf("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n%x\r\n%s\r\n0\r\n\r\n", len(msg), msg)
	}))
	tr := newH1Transport(u.ln.Addr().String(), nil)
	// An io.Reader of unknown length goes out chunked.
	_, body := get(t, tr, "POST", "http://up/p", io.MultiReader(strings.NewReader("hello "), strings.NewReader("world")))
	if body != "POST [chunked] hello world" {
		t.Fatalf("echo = %q", body)
	}
	_, body = get(t, tr, "PUT", "http://up/p", strings.NewReader("sized"))
	if body != "PUT [] sized" {
		t.Fatalf("echo = %q", body)
	}
	if n := u.conns.Load(); n != 1 {
		t.Fatalf("connections = %d, want 1 (chunked answers keep the connection)", n)
	}
}

func TestH1DoesNotReuseUnfinishedOrClosingConnections(t *testing.T) {
	u := startRaw(t, answerAll(func(req *http.Request, _ []byte) string {
		if req.URL.Path == "/close" {
			return "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 1\r\n\r\nx"
		}
		return "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n0123456789"
	}))
	tr := newH1Transport(u.ln.Addr().String(), nil)
	get(t, tr, "GET", "http://up/close", nil)
	// Read part of a body, then give up on it.
	req, _ := http.NewRequest("GET", "http://up/partial", nil)
	resp, err := tr.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Read(make([]byte, 3))
	resp.Body.Close()
	get(t, tr, "GET", "http://up/x", nil)
	if n := u.conns.Load(); n != 3 {
		t.Fatalf("connections = %d, want 3: neither a closing nor a half-read connection may be reused", n)
	}
}

func TestH1ClientCancelUnblocks(t *testing.T) {
	u := startRaw(t, func(c net.Conn, br *bufio.Reader) {
		http.ReadRequest(br)
		time.Sleep(time.Minute) // never answers
	})
	tr := newH1Transport(u.ln.Addr().String(), nil)
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, "GET", "http://up/slow", nil)
	done := make(chan error, 1)
	go func() {
		_, err := tr.RoundTrip(req)
		done <- err
	}()
	time.Sleep(100 * time.Millisecond)
	cancel()
	select {
	case err := <-done:
		if err == nil {
			t.Fatal("a cancelled round trip returned no error")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("cancelling the client did not unblock the upstream read")
	}
}

func TestH1UpstreamDown(t *testing.T) {
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	addr := ln.Addr().String()
	ln.Close()
	tr := newH1Transport(addr, nil)
	req, _ := http.NewRequest("GET", "http://up/x", nil)
	_, err := tr.RoundTrip(req)
	var op *net.OpError
	if !errors.As(err, &op) {
		t.Fatalf("err = %v, want a dial error", err)
	}
}
