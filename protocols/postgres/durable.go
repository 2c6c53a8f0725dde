package postgres

import (
	"context"
	"errors"
	"maps"
	"time"
)

// Synced targets (durability = "synced"): a statement's row is fsynced in
// the spool before the statement reaches the server, and its result row
// before the server's answer reaches the client, so that a gateway killed
// at any moment leaves a row for every statement the server saw and every
// answer the client got.
//
// Both directions are buffered (ubuf towards the server, wbuf towards the
// client) and written in one place each (flushUp, flushClient): those two
// wait, once per write, for the last ticket the session handed out. Rows
// recorded into the same write share the wait, and sessions share the
// spool's fsync (the pipeline's group commit).

// kindForward is the row a synced statement leaves before it is sent: the
// statement as the chain left it, with its verdict. Its pg.query row
// follows with the result; a forward row without one is a statement the
// server may have run while the gateway died.
const kindForward = "pg.forward"

// syncWait bounds a wait for the spool's fsync; past it the session ends
// rather than send or release anything unrecorded.
const syncWait = 10 * time.Second

// errNotDurable ends the client side of a synced session whose answer
// could not be released.
var errNotDurable = errors.New("audit rows not durable: answer withheld")

// recordForward records st's forward row (synced targets only).
func (s *session) recordForward(st *stmt) {
	if s.target == nil || !s.target.synced {
		return
	}
	r := s.row(kindForward)
	r.Time = st.start
	// A copy: recordStmt adds to st.fields while the pipeline may still
	// be encoding this row.
	r.Request = maps.Clone(st.fields)
	r.SetVerdict(st.verdict, st.annot...)
	r.RequestBytes = st.reqSize
	s.record(r)
}

// maxHeld bounds what a synced session holds back for the client after a
// simple Query's first CommandComplete: a multi-statement Query whose later
// statements return large results goes out as it comes past it (its
// ReadyForQuery, which libpq and pgx wait for, is still held).
const maxHeld = 1 << 20

// holdEndLocked starts holding the end of a simple Query's (or a
// FunctionCall's) answer on a synced target: from the message that ends a
// statement's result, as the row is recorded only at ReadyForQuery.
func (s *session) holdEndLocked(o *op, typ byte) {
	if s.target == nil || !s.target.synced {
		return
	}
	switch {
	case s.endHeld && len(s.wbuf)-s.endAt > maxHeld:
		s.endHeld = false
	case s.endHeld:
	case o.kind == opQuery && (typ == 'C' || typ == 'E' || typ == 'I'),
		o.kind == opFunc && (typ == 'V' || typ == 'E'):
		s.endHeld, s.endAt = true, len(s.wbuf)
	}
}

// durable waits until every row the session recorded so far is fsynced;
// false (logged, and kept as the session's close error) means the bytes
// waiting to go out must not.
func (s *session) durable(towards string) bool {
	if s.target == nil || !s.target.synced {
		return true
	}
	if !s.gs.Unsynced() {
		return true
	}
	ctx, cancel := context.WithTimeout(context.Background(), syncWait)
	err := s.gs.Durable(ctx)
	cancel()
	if err != nil {
		s.gs.Log().Error("synced session ended: its rows are not durable", "towards", towards, "err", err)
		s.setCloseErr("audit: rows not durable, nothing more sent to the " + towards)
		return false
	}
	return true
}
