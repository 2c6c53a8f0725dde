package gate

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"sync"
	"time"
)

// Server is the accept loop of a protocol that serves raw connections
// (PostgreSQL, SSH): it tracks each connection so that Shutdown can wait
// for them and then cut off the rest, and it retries accept errors with
// a backoff so that the listener outlives them. The zero value is ready.
type Server struct {
	mu     sync.Mutex
	conns  map[net.Conn]struct{}
	wg     sync.WaitGroup
	closed bool
	done   chan struct{} // closed by Shutdown: wakes an accept backoff
	ln     net.Listener
}

// Accept backoff, as net/http's Server.Serve: an Accept error (EMFILE
// when the process is out of descriptors, ENOBUFS...) is retried after
// 5ms, doubling to 1s. Any error is retried, not only "temporary" ones:
// a listener that gives up stays dead until a restart.
const (
	acceptBackoffMin = 5 * time.Millisecond
	acceptBackoffMax = time.Second
)

// Serve accepts on ln in the background until Shutdown. accept runs in
// the accept loop for each connection: false closes it at once (a flood
// then costs one accept each, no goroutine); otherwise serve runs in the
// connection's own goroutine and owns the connection (and whatever
// accept took for it). A connection accepted while Shutdown begins is
// closed before serve runs, which then only sees it closed.
func (s *Server) Serve(ln net.Listener, log *slog.Logger, accept func(nc net.Conn) (serve func(), ok bool)) {
	s.mu.Lock()
	s.ln = ln
	if s.done == nil {
		s.done = make(chan struct{})
	}
	if s.conns == nil {
		s.conns = map[net.Conn]struct{}{}
	}
	s.mu.Unlock()
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		var delay time.Duration
		for {
			nc, err := ln.Accept()
			if err != nil {
				if s.isClosed() || errors.Is(err, net.ErrClosed) {
					return
				}
				delay = min(max(2*delay, acceptBackoffMin), acceptBackoffMax)
				log.Error("accept failed, retrying", "err", err, "retry_in", delay)
				t := time.NewTimer(delay)
				select {
				case <-t.C:
				case <-s.done:
					t.Stop()
					return
				}
				continue
			}
			delay = 0
			serve, ok := accept(nc)
			if !ok {
				nc.Close()
				continue
			}
			if !s.track(nc) {
				nc.Close()
			}
			s.wg.Add(1)
			go func() {
				defer s.wg.Done()
				defer s.untrack(nc)
				serve()
			}()
		}
	}()
}

func (s *Server) isClosed() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.closed
}

func (s *Server) track(nc net.Conn) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return false
	}
	s.conns[nc] = struct{}{}
	return true
}

func (s *Server) untrack(nc net.Conn) {
	s.mu.Lock()
	delete(s.conns, nc)
	s.mu.Unlock()
}

// Shutdown stops accepting and waits until ctx ends for the connections
// to end on their own; then it closes those left and waits for their
// handlers, which record their sessions' close rows.
func (s *Server) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	if !s.closed {
		s.closed = true
		if s.done != nil {
			close(s.done)
		}
	}
	ln := s.ln
	s.mu.Unlock()
	if ln != nil {
		ln.Close()
	}
	done := make(chan struct{})
	go func() { s.wg.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
	}
	s.mu.Lock()
	for nc := range s.conns {
		nc.Close()
	}
	s.mu.Unlock()
	<-done
	return ctx.Err()
}
