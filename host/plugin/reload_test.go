package plugin

import (
	"context"
	"sync/atomic"
	"testing"

	"github.com/tollgate-dev/tollgate/host/event"
)

type named string

func (n named) Process(context.Context, *event.Event) (event.Verdict, error) {
	return event.Verdict{Plugin: string(n)}, nil
}

func TestReloadableKeepsInFlightOnOldChain(t *testing.T) {
	var closedOld atomic.Bool
	r := NewReloadable(named("old"), func(context.Context) error { closedOld.Store(true); return nil })
	c, release := r.Acquire() // a request in flight
	done := make(chan struct{})
	r.Replace(named("new"), nil)
	if v, _ := c.Process(context.Background(), nil); v.Plugin != "old" {
		t.Fatal("an in-flight request changed chains")
	}
	if v, _ := r.Process(context.Background(), nil); v.Plugin != "new" {
		t.Fatal("a new request did not get the new chain")
	}
	if closedOld.Load() {
		t.Fatal("the old chain closed while a request still used it")
	}
	go func() {
		release()
		for !closedOld.Load() {
		}
		close(done)
	}()
	<-done
}
