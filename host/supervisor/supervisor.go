// Package supervisor starts the gateway's services in order and stops
// them in reverse, the way Caddy starts its apps: if one fails to start,
// those already running are stopped, so nothing is left half up.
//
// A stage is one or more services that start in order and stop together
// (the listeners: they all stop accepting at once and drain within the
// same grace period). Stop goes through the stages in reverse; each
// stage gets its own grace period, so a listener that takes all of it
// does not leave the audit trail no time to flush.
//
// Typical use, in cmd:
//
//	sup := supervisor.New(log, grace)
//	defer sup.Stop()
//	if err := sup.Start(supervisor.Named("plugins", plugins)); err != nil {
//		return err // nothing is left running
//	}
//	if err := sup.Start(listeners...); err != nil {
//		return err
//	}
package supervisor

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"
)

// Service is anything the gateway runs. Start returns once the service
// runs (in the background) or has failed; Shutdown stops it, letting
// in-flight work finish until ctx ends.
type Service interface {
	Start() error
	Shutdown(ctx context.Context) error
}

// Unit is a service with the name the log gives it.
type Unit struct {
	Name string
	Service
}

// Named names a service.
func Named(name string, s Service) Unit { return Unit{Name: name, Service: s} }

// Running names a service that already runs (a constructor started it),
// so that the supervisor stops it in its place: stop is its Shutdown.
func Running(name string, stop func(ctx context.Context) error) Unit {
	return Unit{Name: name, Service: running(stop)}
}

type running func(ctx context.Context) error

func (running) Start() error                         { return nil }
func (r running) Shutdown(ctx context.Context) error { return r(ctx) }

// Supervisor owns the services started through it, in stages.
type Supervisor struct {
	log    *slog.Logger
	mu     sync.Mutex
	stages [][]Unit
	grace  time.Duration // what each stage gets to stop
}

// New returns a supervisor whose stages each get grace to stop; it logs
// what does not stop cleanly.
func New(log *slog.Logger, grace time.Duration) *Supervisor {
	if log == nil {
		log = slog.Default()
	}
	return &Supervisor{log: log, grace: grace}
}

// Start starts units in order as one stage.
//
// # Errors
//
// When a unit fails to start, the units of the stage already started and
// every earlier stage are stopped (in reverse), and the error is
// returned, naming the unit.
func (s *Supervisor) Start(units ...Unit) error {
	var stage []Unit
	for _, u := range units {
		if err := u.Start(); err != nil {
			s.mu.Lock()
			if len(stage) > 0 {
				s.stages = append(s.stages, stage)
			}
			s.mu.Unlock()
			s.Stop()
			return fmt.Errorf("start %s: %w", u.Name, err)
		}
		stage = append(stage, u)
	}
	s.mu.Lock()
	s.stages = append(s.stages, stage)
	s.mu.Unlock()
	return nil
}

// Stop stops every stage in the reverse of the order it started: the
// units of a stage at once, each stage within the grace. A unit that does
// not stop in time is logged, and the next stage still stops. Stop is
// idempotent: what it stopped is forgotten.
func (s *Supervisor) Stop() {
	s.mu.Lock()
	stages := s.stages
	s.stages = nil
	s.mu.Unlock()
	for i := len(stages) - 1; i >= 0; i-- {
		s.stopStage(stages[i], s.grace)
	}
}

func (s *Supervisor) stopStage(stage []Unit, grace time.Duration) {
	ctx, cancel := context.WithTimeout(context.Background(), grace)
	defer cancel()
	var wg sync.WaitGroup
	for _, u := range stage {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := u.Shutdown(ctx); err != nil {
				s.log.Error("supervisor: did not stop cleanly", "service", u.Name, "err", err)
			}
		}()
	}
	wg.Wait()
}
