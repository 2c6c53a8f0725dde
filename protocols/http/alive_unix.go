//go:build unix

package http

import (
	"errors"
	"syscall"
)

// alive reports whether an idle pooled connection is still open, with one
// non-blocking peek: 0 bytes means the upstream closed it, EAGAIN means
// open and quiet, and unexpected bytes make it unusable.
func alive(c *h1Conn) bool {
	if c.br.Buffered() > 0 {
		return false
	}
	sc, ok := c.Conn.(syscall.Conn)
	if !ok {
		return true // TLS: the retry in RoundTrip covers the race
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return false
	}
	open := false
	var buf [1]byte
	err = rc.Read(func(fd uintptr) bool {
		n, _, rerr := syscall.Recvfrom(int(fd), buf[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
		open = n < 0 && errors.Is(rerr, syscall.EAGAIN)
		return true // never wait
	})
	return err == nil && open
}
