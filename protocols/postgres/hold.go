package postgres

import (
	"context"
	"errors"
	"net"
	"reflect"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/tollgate-dev/tollgate/host/event"
	"github.com/tollgate-dev/tollgate/host/gate"
)

// Holding a statement for approval
//
// The client loop waits on the decision, so nothing else the client sent
// is acted on meanwhile (PostgreSQL itself runs one statement at a time).
// The client is told with a NoticeResponse where the approval is. While
// waiting, a watcher goroutine keeps reading the client: a disconnect or a
// Terminate cancels the approval, and anything else the client pipelined
// (pgx sends Describe, Execute and Sync with the Bind) is copied aside and
// handled, in order, once the wait is over. A CancelRequest for the
// session (psql's Ctrl-C) cancels the approval too.

// maxStash bounds what the watcher keeps aside; past it, it stops reading
// (the client then waits on TCP, and a disconnect shows at expiry).
const (
	maxStashMessages = 1024
	maxStashBytes    = 16 << 20
)

// holdState is the session's current approval wait, for CancelRequest.
type holdState struct {
	mu     sync.Mutex
	cancel context.CancelCauseFunc
}

var (
	errClientGone      = errors.New("the client disconnected while the statement was held for approval")
	errClientTerminate = errors.New("the client ended the session while the statement was held for approval")
	errClientCancel    = errors.New("the client cancelled the statement (CancelRequest) while it was held for approval")
)

// hold asks a person to decide on a held statement. True means approved:
// run it exactly once. False is a deny, with the reason in the verdict.
// An approval and a session grant cover the statement's canonical form
// (gate.CoverStatement): the SQL as sent and its parameters.
func (s *session) hold(st *stmt, ev *event.Event, v event.Verdict) (event.Verdict, bool) {
	ctx, cancel := context.WithCancelCause(s.ctx)
	defer cancel(nil)
	var stop func()
	v, ap, ok := s.gs.AskApproval(ctx, ev, v, gate.Ask{
		Cover: gate.CoverStatement,
		Notify: func(id, url string) {
			// Everything forwarded so far goes out, so the answers before
			// this statement reach the client, then the notice.
			s.flushUp()
			s.push(&op{kind: opSynth, synth: noticeMsg(nil, "waiting for approval "+id+" at "+url+" ("+v.Reason+")", s.id)})
			s.holding.mu.Lock()
			s.holding.cancel = cancel
			s.holding.mu.Unlock()
			stop = s.watchClient(cancel)
		},
	})
	if stop != nil {
		stop()
		s.holding.mu.Lock()
		s.holding.cancel = nil
		s.holding.mu.Unlock()
	}
	st.approvalID, st.approver = ap.ID, ap.Approver
	if ap.TooManyPending {
		st.code = codeConfigLimitExceeded
	}
	return v, ok
}

// cancelHold cancels the approval the session waits on, if any; it is how
// a CancelRequest reaches a statement that has not run yet.
func (s *session) cancelHold() bool {
	s.holding.mu.Lock()
	defer s.holding.mu.Unlock()
	if s.holding.cancel == nil {
		return false
	}
	s.holding.cancel(errClientCancel)
	return true
}

// watchClient reads the client while the client loop waits, until stop:
// a read error or Terminate cancels the wait; other messages are copied
// into the stash.
func (s *session) watchClient(cancel context.CancelCauseFunc) (stop func()) {
	s.setReadDeadline(time.Time{}) // not idle: waiting on a person
	done := make(chan struct{})
	go func() {
		defer close(done)
		size := 0
		for len(s.stash) < maxStashMessages && size < maxStashBytes {
			msg, err := s.be.Receive()
			if err != nil {
				var ne net.Error
				if errors.As(err, &ne) && ne.Timeout() {
					return // stop() set the deadline
				}
				s.stashErr = err
				cancel(errClientGone)
				return
			}
			c, n, err := copyMessage(msg)
			if err != nil {
				s.stashErr = err
				cancel(errClientGone)
				return
			}
			s.stash = append(s.stash, c)
			size += n
			if _, ok := msg.(*pgproto3.Terminate); ok {
				cancel(errClientTerminate)
				return
			}
		}
	}()
	return func() {
		// A read deadline in the past wakes the watcher without losing
		// bytes: the Backend keeps a partly read message for the next
		// Receive.
		s.setReadDeadline(time.Now())
		<-done
		s.setReadDeadline(time.Time{})
	}
}

// copyMessage copies a client message out of the Backend's buffers,
// which the next Receive reuses, by encoding it and decoding the bytes
// into a new message of the same type.
func copyMessage(m pgproto3.FrontendMessage) (pgproto3.FrontendMessage, int, error) {
	b, err := m.Encode(nil)
	if err != nil {
		return nil, 0, err
	}
	c := reflect.New(reflect.TypeOf(m).Elem()).Interface().(pgproto3.FrontendMessage)
	if err := c.Decode(b[5:]); err != nil {
		return nil, 0, err
	}
	return c, len(b), nil
}

// noticeMsg encodes a NoticeResponse from the gateway.
func noticeMsg(dst []byte, msg, sessionID string) []byte {
	b, _ := (&pgproto3.NoticeResponse{Severity: "NOTICE", SeverityUnlocalized: "NOTICE", Code: "01000",
		Message: msg, Detail: "tollgate session " + sessionID}).Encode(dst)
	return b
}

// codeConfigLimitExceeded answers a hold past the pending caps
// (approvals.max_pending_per_principal, max_pending_per_target).
const codeConfigLimitExceeded = "53400"
