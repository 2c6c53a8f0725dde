package postgres_test

import (
	"io"
	"net"
	"testing"
)

// The floor of any Go proxy on this machine: a bare relay in this process,
// two goroutines per connection copying bytes each way through the
// standard net package, no parsing, no plugins, no audit. Two kinds, both
// measured in the same run, because which is cheaper depends on the
// messages: io.Copy between two TCP connections splices (a pipe through
// the kernel, two system calls per chunk and a pipe per direction), which
// costs more than a copy through a user-space buffer for small messages
// (PEERS.md: 27–29 against 21–25 µs per pgbench -S transaction). The
// benchmarks take the cheaper of the two, by CPU per unit of work, as the
// floor.

// relayKind names a relay in the BENCH lines.
type relayKind string

const (
	relaySplice   relayKind = "go-relay-splice"   // io.Copy: splice(2) between the sockets
	relayBuffered relayKind = "go-relay-buffered" // io.CopyBuffer through a 32 KiB buffer
)

var relayKinds = []relayKind{relaySplice, relayBuffered}

// startGoRelay listens on loopback and copies bytes between each client
// and a connection of its own to upstream, as kind says. It returns the
// port.
func startGoRelay(b *testing.B, upstream string, kind relayKind) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { ln.Close() })
	cp := func(dst, src net.Conn) { io.Copy(dst, src) }
	if kind == relayBuffered {
		cp = func(dst, src net.Conn) {
			// Wrapped so that io.CopyBuffer sees neither the
			// destination's ReaderFrom nor the source's WriterTo
			// (either would splice): plain read and write calls
			// through the buffer.
			io.CopyBuffer(struct{ io.Writer }{dst}, struct{ io.Reader }{src}, make([]byte, 32<<10))
		}
	}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				u, err := net.Dial("tcp", upstream)
				if err != nil {
					return
				}
				defer u.Close()
				go func() { cp(u, c); u.Close() }()
				cp(c, u)
			}()
		}
	}()
	_, port, _ := net.SplitHostPort(ln.Addr().String())
	return port
}
