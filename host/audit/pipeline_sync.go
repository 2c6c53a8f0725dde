package audit

import (
	"context"
	"sync"
)

// durableMark is the highest ticket fsynced in the spool, and a channel
// closed each time it moves, so that waiters need neither polling nor a
// lock held while they wait.
type durableMark struct {
	mu     sync.Mutex
	at     uint64
	moved  chan struct{}
	closed bool // the pipeline closed: what is not durable now never will be
}

// wait returns the mark and the channel that closes when it next moves.
func (d *durableMark) wait() (uint64, bool, <-chan struct{}) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.moved == nil {
		d.moved = make(chan struct{})
	}
	return d.at, d.closed, d.moved
}

// advance moves the mark to t (never back) and wakes every waiter.
func (d *durableMark) advance(t uint64, closed bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if t > d.at {
		d.at = t
	}
	d.closed = d.closed || closed
	if d.moved != nil {
		close(d.moved)
		d.moved = nil
	}
}

// syncOnce is the writer's group commit: when a synced caller waits on a
// row that is now in the spool, one fsync covers every row appended so
// far, the waiter's and all that arrived while the previous fsync ran
// (they were appended together by the writeOnce before this call).
func (p *Pipeline) syncOnce() {
	p.mu.Lock()
	want, spooled := p.syncWant, p.spooledT
	p.mu.Unlock()
	from, _, _ := p.dur.wait()
	if want <= from || spooled <= from {
		return // nobody waits, or what they wait on is not appended yet
	}
	if err := p.sp.Sync(); err != nil {
		// Sticky in the spool: waiters time out on their contexts, and
		// the spool refuses appends, so new work is refused too.
		p.log.Error("audit: spool fsync failed; synced requests wait and fail", "err", err)
		return
	}
	p.stats.fsyncs.Add(1)
	p.stats.fsyncedRows.Add(spooled - from)
	p.dur.advance(spooled, false)
}

// WaitDurable returns once the row of t is fsynced in the spool. The
// writer fsyncs as soon as the row is appended, for every waiter at once.
func (p *Pipeline) WaitDurable(ctx context.Context, t Ticket) error {
	for {
		at, closed, moved := p.dur.wait()
		if uint64(t) <= at {
			return nil
		}
		if closed {
			return ErrClosed
		}
		select {
		case <-moved:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// settleDurable runs once the writer stopped and the spool closed (which
// fsyncs): rows appended are durable, the rest never will be.
func (p *Pipeline) settleDurable(closeErr error) {
	p.mu.Lock()
	spooled := p.spooledT
	p.mu.Unlock()
	if closeErr != nil {
		spooled = 0
	}
	p.dur.advance(spooled, true)
}
