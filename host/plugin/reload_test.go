package plugin

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

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
	release()
	deadline := time.Now().Add(10 * time.Second)
	for !closedOld.Load() {
		if time.Now().After(deadline) {
			t.Fatal("the old chain was not closed after its last request ended")
		}
		time.Sleep(time.Millisecond)
	}
}
