package event

import (
	"context"
	"testing"
)

type allowAll struct{}

func (allowAll) Process(context.Context, *Event) (Verdict, error) { return Verdict{}, nil }

type onlyRows struct{ allowAll }

func (onlyRows) Wants(kind string) bool { return kind == "pg.rows" }

type reloadable struct {
	allowAll
	cur      Chain
	released int
}

func (r *reloadable) Acquire() (Chain, func()) { return r.cur, func() { r.released++ } }

func TestWants(t *testing.T) {
	if Wants(nil, "pg.query") {
		t.Error("a nil chain wants events")
	}
	if !Wants(allowAll{}, "pg.query") {
		t.Error("a chain that does not say does not get every event")
	}
	if Wants(onlyRows{}, "pg.query") || !Wants(onlyRows{}, "pg.rows") {
		t.Error("a Subscriber's answer is not used")
	}
}

func TestAcquire(t *testing.T) {
	r := &reloadable{cur: onlyRows{}}
	c, release := Acquire(r)
	if _, ok := c.(onlyRows); !ok {
		t.Fatalf("Acquire returned %T, not the current chain", c)
	}
	release()
	if r.released != 1 {
		t.Errorf("release reached the reloadable chain %d times", r.released)
	}
	plain := allowAll{}
	c, release = Acquire(plain)
	release()
	if c != Chain(plain) {
		t.Errorf("a plain chain came back as %T", c)
	}
}
