package plugin

import (
	"context"
	"sync"
	"sync/atomic"

	"github.com/tollgate-dev/tollgate/host/event"
)

// Reloadable is a chain that can be replaced while it serves. A request
// takes the current chain with Acquire and keeps it until it releases it,
// so in-flight requests finish on the chain they started with; a replaced
// chain is closed once its last request is done.
type Reloadable struct {
	cur atomic.Pointer[generation]
}

type generation struct {
	chain  event.Chain
	close  func(context.Context) error
	users  sync.WaitGroup
	closed atomic.Bool
}

var _ event.Chain = (*Reloadable)(nil)

// NewReloadable serves chain; closeFn (may be nil) releases it when replaced.
func NewReloadable(chain event.Chain, closeFn func(context.Context) error) *Reloadable {
	r := &Reloadable{}
	r.cur.Store(&generation{chain: chain, close: closeFn})
	return r
}

// Acquire returns the current chain and a release function the caller
// must call when its request is over.
func (r *Reloadable) Acquire() (event.Chain, func()) {
	for {
		g := r.cur.Load()
		g.users.Add(1)
		if r.cur.Load() == g {
			return g.chain, g.users.Done
		}
		g.users.Done() // replaced meanwhile; take the new one
	}
}

// Replace makes chain current and closes the previous one once it is idle.
func (r *Reloadable) Replace(chain event.Chain, closeFn func(context.Context) error) {
	old := r.cur.Swap(&generation{chain: chain, close: closeFn})
	go func() {
		old.users.Wait()
		old.shutdown(context.Background())
	}()
}

// Process runs the current chain (for callers that do not Acquire).
func (r *Reloadable) Process(ctx context.Context, ev *event.Event) (event.Verdict, error) {
	c, release := r.Acquire()
	defer release()
	return c.Process(ctx, ev)
}

// Wants asks the current chain.
func (r *Reloadable) Wants(kind string) bool {
	c, release := r.Acquire()
	defer release()
	return event.Wants(c, kind)
}

// WantsField asks the current chain.
func (r *Reloadable) WantsField(sub string) bool {
	c, release := r.Acquire()
	defer release()
	return event.WantsField(c, sub)
}

// Close closes the current chain.
func (r *Reloadable) Close(ctx context.Context) error {
	g := r.cur.Load()
	g.users.Wait()
	return g.shutdown(ctx)
}

func (g *generation) shutdown(ctx context.Context) error {
	if g.close == nil || !g.closed.CompareAndSwap(false, true) {
		return nil
	}
	return g.close(ctx)
}
