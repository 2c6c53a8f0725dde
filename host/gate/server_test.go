package gate_test

import (
	"context"
	"io"
	"log/slog"
	"net"
	"testing"
	"time"

	"github.com/tollgate-dev/tollgate/host/gate"
)

// Shutdown stops accepting, waits for a connection still being served
// until its context ends, then closes it and waits for its handler; a
// connection the accept hook refuses is closed at once.
func TestServerShutdown(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var srv gate.Server
	served, ended := make(chan struct{}, 2), make(chan struct{}, 2)
	refuse := true
	srv.Serve(ln, slog.New(slog.NewTextHandler(io.Discard, nil)), func(nc net.Conn) (func(), bool) {
		if refuse {
			refuse = false
			return nil, false
		}
		return func() {
			served <- struct{}{}
			io.Copy(io.Discard, nc) // until the client or Shutdown closes it
			ended <- struct{}{}
		}, true
	})

	refused, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	refused.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := refused.Read(make([]byte, 1)); err == nil {
		t.Fatal("a refused connection was served")
	}
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	<-served

	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if err := srv.Shutdown(ctx); err != context.DeadlineExceeded {
		t.Fatalf("Shutdown with a connection still open: %v, want the context's error", err)
	}
	select {
	case <-ended:
	default:
		t.Fatal("Shutdown returned before the handler of the connection it closed")
	}
	if _, err := net.DialTimeout("tcp", ln.Addr().String(), time.Second); err == nil {
		t.Fatal("the listener still accepts after Shutdown")
	}
}
