package supervisor_test

import (
	"context"
	"errors"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tollgate-dev/tollgate/host/supervisor"
)

// journal records what started and stopped, in order.
type journal struct {
	mu  sync.Mutex
	log []string
}

func (j *journal) add(s string) {
	j.mu.Lock()
	defer j.mu.Unlock()
	j.log = append(j.log, s)
}

func (j *journal) entries() []string {
	j.mu.Lock()
	defer j.mu.Unlock()
	return slices.Clone(j.log)
}

type svc struct {
	name     string
	j        *journal
	startErr error
	stop     func(ctx context.Context) error
}

func (s *svc) Start() error {
	if s.startErr != nil {
		return s.startErr
	}
	s.j.add("start " + s.name)
	return nil
}

func (s *svc) Shutdown(ctx context.Context) error {
	s.j.add("stop " + s.name)
	if s.stop != nil {
		return s.stop(ctx)
	}
	return nil
}

func unit(j *journal, name string) supervisor.Unit {
	return supervisor.Named(name, &svc{name: name, j: j})
}

func TestStartsInOrderStopsInReverse(t *testing.T) {
	j := &journal{}
	sup := supervisor.New(nil, time.Second)
	if err := sup.Start(unit(j, "a")); err != nil {
		t.Fatal(err)
	}
	if err := sup.Start(unit(j, "b"), supervisor.Running("c", func(context.Context) error { j.add("stop c"); return nil })); err != nil {
		t.Fatal(err)
	}
	if err := sup.Start(unit(j, "d")); err != nil {
		t.Fatal(err)
	}
	sup.Stop()
	got := j.entries()
	want := []string{"start a", "start b", "start d", "stop d", "stop b", "stop c", "stop a"}
	// b and c are one stage: they stop together, in either order.
	if len(got) != len(want) || !slices.Equal(got[:4], want[:4]) || got[6] != "stop a" ||
		!slices.Contains(got[4:6], "stop b") || !slices.Contains(got[4:6], "stop c") {
		t.Fatalf("journal %v, want %v", got, want)
	}
	sup.Stop()
	if n := len(j.entries()); n != len(want) {
		t.Fatalf("a second Stop stopped services again: %v", j.entries())
	}
}

// A service that fails to start leaves nothing running: the stage's units
// already up and every earlier stage are stopped, and the error names it.
func TestFailedStartStopsWhatRuns(t *testing.T) {
	j := &journal{}
	sup := supervisor.New(nil, time.Second)
	if err := sup.Start(unit(j, "a")); err != nil {
		t.Fatal(err)
	}
	boom := errors.New("address in use")
	err := sup.Start(unit(j, "l1"), supervisor.Named("l2", &svc{name: "l2", j: j, startErr: boom}), unit(j, "l3"))
	if !errors.Is(err, boom) || !strings.Contains(err.Error(), "start l2") {
		t.Fatalf("Start = %v", err)
	}
	if got, want := j.entries(), []string{"start a", "start l1", "stop l1", "stop a"}; !slices.Equal(got, want) {
		t.Fatalf("journal %v, want %v", got, want)
	}
}

// The units of a stage stop at once, within the grace; a unit that does
// not stop in time gets its context's deadline, and the earlier stages
// still stop.
func TestStageStopsTogetherWithinGrace(t *testing.T) {
	j := &journal{}
	sup := supervisor.New(nil, 200*time.Millisecond)
	bothAsked := make(chan struct{})
	var once sync.Once
	var asked sync.WaitGroup
	asked.Add(2)
	go func() { asked.Wait(); once.Do(func() { close(bothAsked) }) }()
	waitForOther := func(ctx context.Context) error {
		asked.Done()
		select {
		case <-bothAsked:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	stuck := func(ctx context.Context) error { <-ctx.Done(); return ctx.Err() }
	if err := sup.Start(unit(j, "first")); err != nil {
		t.Fatal(err)
	}
	if err := sup.Start(
		supervisor.Named("l1", &svc{name: "l1", j: j, stop: waitForOther}),
		supervisor.Named("l2", &svc{name: "l2", j: j, stop: waitForOther}),
		supervisor.Named("stuck", &svc{name: "stuck", j: j, stop: stuck}),
	); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	sup.Stop()
	if d := time.Since(start); d < 200*time.Millisecond || d > 2*time.Second {
		t.Fatalf("Stop took %v, want about the grace", d)
	}
	select {
	case <-bothAsked:
	default:
		t.Fatal("the units of a stage were stopped one after the other")
	}
	if got := j.entries(); got[len(got)-1] != "stop first" {
		t.Fatalf("the earlier stage did not stop after a stuck one: %v", got)
	}
}
