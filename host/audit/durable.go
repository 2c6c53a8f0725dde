package audit

import (
	"context"
	"fmt"
)

// Durability values of [audit] durability and [[targets]] durability:
// when a protocol may go on after it recorded a row.
const (
	// DurabilitySpooled: the protocol goes on at once. The row reaches
	// the spool within the writer's interval (writeEvery), so a SIGKILL
	// can lose the rows of the last few milliseconds, answered or not.
	DurabilitySpooled = "spooled"
	// DurabilitySynced: a request's row is fsynced in the spool before
	// the request is forwarded, and its result row before the answer is
	// released, so neither a SIGKILL nor a power loss can take back the
	// row of an action that ran.
	DurabilitySynced = "synced"
)

// Ticket names one accepted row, for Syncer.WaitDurable. Zero names no
// row: waiting for it returns at once.
type Ticket uint64

// Syncer is implemented by recorders that can tell when a row is durable
// (written to the spool and fsynced). A protocol in synced mode records
// with RecordTicket, keeps the ticket, and waits for it before it lets
// the action or its answer go; the wait is where concurrent sessions
// share one fsync.
type Syncer interface {
	// RecordTicket is Record that also returns the row's ticket, and asks
	// for the row to be written and fsynced now rather than at the next
	// tick. A row that was dropped (on_full = "drop") has ticket zero.
	RecordTicket(Row) (Ticket, error)
	// WaitDurable returns once the row of t (and every row accepted
	// before it) is fsynced in the spool, or with ctx's error, or with
	// ErrClosed when the recorder closed before it could be.
	WaitDurable(ctx context.Context, t Ticket) error
}

// RecordTicket records r through rec: with a ticket when synced and rec
// can give one, else with Record and ticket zero (nothing to wait for).
func RecordTicket(rec Recorder, r Row, synced bool) (Ticket, error) {
	if s, ok := rec.(Syncer); ok && synced {
		return s.RecordTicket(r)
	}
	return 0, rec.Record(r)
}

// WaitDurable waits for t on rec; it returns nil at once for ticket zero
// or a recorder that cannot tell.
func WaitDurable(ctx context.Context, rec Recorder, t Ticket) error {
	if err := waitOn(ctx, rec, t); err != nil {
		return fmt.Errorf("audit: row not durable: %w", err)
	}
	return nil
}

// waitOn is WaitDurable for the wrappers (Signing, Checkpointing), which
// pass the inner recorder's error on as it is.
func waitOn(ctx context.Context, rec Recorder, t Ticket) error {
	if t == 0 {
		return nil
	}
	if s, ok := rec.(Syncer); ok {
		return s.WaitDurable(ctx, t)
	}
	return nil
}
