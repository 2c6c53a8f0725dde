package progress

import (
	"bytes"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

type lockedBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuf) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}
func (l *lockedBuf) String() string { l.mu.Lock(); defer l.mu.Unlock(); return l.b.String() }

// waitFor polls cond; it fails only when cond never holds.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); !cond(); time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("never: %s", what)
		}
	}
}

// A clock that stands still at t0 for its first reading and is two
// seconds later for every one after: the step has lasted past Quiet.
func laterClock() func() time.Time {
	t0 := time.Date(2026, 12, 8, 3, 0, 0, 0, time.UTC)
	var calls atomic.Int64
	return func() time.Time {
		if calls.Add(1) == 1 {
			return t0
		}
		return t0.Add(2 * time.Second)
	}
}

// On a service each step is a log line when it starts, lines while it
// lasts with the count so far, and one at its end.
func TestServiceLogs(t *testing.T) {
	var out lockedBuf
	r := &Reporter{log: slog.New(slog.NewTextHandler(&out, nil)), now: time.Now, tick: time.Millisecond}
	s := r.Start("audit: shipping 10 rows", "dir", "/x")
	s.Set(3, 10, "rows")
	waitFor(t, "an under-way line", func() bool { return strings.Contains(out.String(), "under way") })
	if err := s.Done(nil); err != nil {
		t.Fatal(err)
	}
	got := out.String()
	for _, want := range []string{`msg="audit: shipping 10 rows: started" dir=/x`, `progress="3/10 rows (30%)"`, `msg="audit: shipping 10 rows: done"`} {
		if !strings.Contains(got, want) {
			t.Errorf("log lacks %q:\n%s", want, got)
		}
	}
	boom := errors.New("boom")
	if err := r.Start("x").Done(boom); err != boom || !strings.Contains(out.String(), `msg="x: failed"`) || !strings.Contains(out.String(), "err=boom") {
		t.Errorf("a failed step: %v\n%s", err, out.String())
	}
}

// On a terminal a step that lasts is a status line redrawn in place,
// ended by a line with its time; a log line written meanwhile clears the
// status line first and draws it again after.
func TestTerminalLine(t *testing.T) {
	var tty lockedBuf
	r := &Reporter{log: slog.New(slog.DiscardHandler), tty: &tty, now: laterClock(), tick: time.Millisecond}
	s := r.Start("plugins: compiling 3")
	s.Set(1, 3, "plugins")
	waitFor(t, "the status line", func() bool { r.mu.Lock(); defer r.mu.Unlock(); return r.line != "" })
	if _, err := r.Wrap(&tty).Write([]byte("time=... msg=hello\n")); err != nil {
		t.Fatal(err)
	}
	s.Done(nil)
	got := tty.String()
	if !strings.Contains(got, "\r\033[Kplugins: compiling 3... 2s, 1/3 plugins (33%)") {
		t.Errorf("no status line:\n%q", got)
	}
	if !strings.Contains(got, "\r\033[Ktime=... msg=hello\nplugins: compiling 3... 2s") {
		t.Errorf("the log line is not put between a cleared and a redrawn status line:\n%q", got)
	}
	if !strings.HasSuffix(got, "\r\033[Kplugins: compiling 3: done in 2s, 1/3 plugins (33%)\n") {
		t.Errorf("no final line:\n%q", got)
	}
	// After it, a log line is written as it is.
	tty = lockedBuf{}
	r.Wrap(&tty).Write([]byte("plain\n"))
	if tty.String() != "plain\n" {
		t.Errorf("after the step: %q", tty.String())
	}
}

// A step that ends within Quiet leaves nothing on a terminal (a warm
// start stays short), unless it failed.
func TestTerminalQuietStep(t *testing.T) {
	var tty lockedBuf
	r := &Reporter{log: slog.New(slog.DiscardHandler), tty: &tty, now: time.Now, tick: time.Hour}
	r.Start("fast").Done(nil)
	if tty.String() != "" {
		t.Errorf("a quick step printed %q", tty.String())
	}
	r.Start("fast but failed").Done(errors.New("no"))
	if !strings.Contains(tty.String(), "fast but failed: failed in") {
		t.Errorf("a failed step: %q", tty.String())
	}
}

// A nil Reporter (no progress wanted) is safe to use.
func TestNilReporter(t *testing.T) {
	var r *Reporter
	s := r.Start("x")
	s.Set(1, 2, "y")
	if err := s.Done(nil); err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	if r.Wrap(&b) != &b {
		t.Fatal("Wrap of a nil Reporter must be the writer itself")
	}
	if IsTerminal(&b) {
		t.Fatal("a buffer is no terminal")
	}
}
