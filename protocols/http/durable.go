package http

import (
	"context"
	"net/http"
	"strconv"
	"time"

	"github.com/tollgate-dev/tollgate/host/gate"
)

// Synced targets (durability = "synced"): the request's row is fsynced in
// the spool before the request goes to the target, and its result row
// before the client can have the whole answer, so that a gateway killed
// at any moment leaves a row for every request the target saw and every
// answer a client got.

// kindForward is the row that a synced request leaves before it is
// forwarded: what was asked, with the chain's verdict. The request's own
// row (http.request) follows with the result; a forward row without one
// is a request the target may have run while the gateway died.
const kindForward = "http.forward"

// syncWait bounds a wait for the spool's fsync; past it the request is
// refused (before forwarding) or its answer withheld (after).
const syncWait = 10 * time.Second

// forwardDurable records the forward row and waits until it is durable.
// False means the request must not go out: the client was answered.
func (x *exchange) forwardDurable(w http.ResponseWriter, r *http.Request) bool {
	row := sessionRow(x.sess, kindForward, x.rt.cfg.Target)
	row.AccessRule = x.rule
	row.Request = x.ev.Fields
	row.SetVerdict(x.verdict)
	t, err := x.sess.RecordSynced(row, true)
	if err == nil {
		ctx, cancel := context.WithTimeout(r.Context(), syncWait)
		err = x.sess.WaitDurable(ctx, t)
		cancel()
	}
	if err != nil {
		x.sess.Log().Error("synced request refused: its row is not durable", "target", x.rt.cfg.Target, "err", err)
		// Nothing ran: the refusal goes out without a second wait on a
		// spool that just failed one.
		x.syncFailed = true
		w.Header().Set("Retry-After", "5")
		x.fail(w, http.StatusServiceUnavailable, "audit_unavailable", "the audit trail could not make this request's row durable; it was not forwarded")
		return false
	}
	return true
}

// holdEnd makes the client writer keep back the end of the answer: the
// last byte of a body of known length (a chunked or unframed body ends
// only when the handler returns, which is after finish). release then
// writes it.
func (s *statusRecorder) holdEnd() { s.hold, s.left = true, -1 }

// heldWrite writes b, keeping back the byte that would complete the
// declared Content-Length.
func (s *statusRecorder) heldWrite(b []byte) (int, error) {
	if s.left < 0 {
		s.left = -2 // unknown length: nothing to keep back
		if n, err := strconv.ParseInt(s.Header().Get("Content-Length"), 10, 64); err == nil && n >= 0 {
			s.left = n
		}
	}
	if s.left <= 0 || int64(len(b)) < s.left || s.held != nil {
		if s.left > 0 {
			s.left -= int64(len(b))
		}
		return s.ResponseWriter.Write(b)
	}
	last := int(s.left) - 1
	n, err := s.ResponseWriter.Write(b[:last])
	if err != nil {
		return n, err
	}
	s.held = []byte{b[last]}
	s.left = 0
	// What follows the declared length is the server's to refuse.
	if len(b) > last+1 {
		m, err := s.ResponseWriter.Write(b[last+1:])
		return n + 1 + m, err
	}
	return n + 1, nil
}

// release writes the byte kept back, once the result row is durable.
func (s *statusRecorder) release() {
	if s.held != nil {
		s.ResponseWriter.Write(s.held)
		s.held = nil
	}
}

// resultDurable waits for the result row's ticket and releases the end of
// the answer; when the row cannot be made durable the answer is cut, so
// that the client never holds an answer whose row could be lost.
func (x *exchange) resultDurable(r *http.Request, rec *statusRecorder, t gate.Ticket, recErr error) {
	err := recErr
	if err == nil {
		ctx, cancel := context.WithTimeout(r.Context(), syncWait)
		err = x.sess.WaitDurable(ctx, t)
		cancel()
	}
	if err == nil {
		rec.release()
		return
	}
	x.sess.Log().Error("synced answer withheld: its row is not durable", "err", err)
	// net/http's way to end a response unfinished: the connection is
	// closed, so a chunked body never gets its last chunk and a framed
	// one stays short.
	panic(http.ErrAbortHandler)
}
