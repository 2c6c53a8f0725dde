// Package progress reports long operations at the gateway's start (the
// embedded store's schema, plugin compilation on first start, the spool
// a previous run left, the demo database's first initdb): on a terminal a
// status line redrawn in place with the elapsed time and the count so far;
// on a service (stderr is a file or a pipe) a log line when it begins,
// one every LogEvery while it lasts, and one when it ends. Operations that
// end within Quiet print nothing on a terminal but their last line, so
// a warm start stays short.
package progress

import (
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"sync"
	"time"
)

// Defaults of a Reporter.
const (
	LogEvery = 5 * time.Second
	Redraw   = 250 * time.Millisecond
	Quiet    = time.Second
)

// Reporter makes Steps. A nil *Reporter is valid and reports nothing.
type Reporter struct {
	log  *slog.Logger
	tty  io.Writer // nil unless w is a terminal
	mu   sync.Mutex
	line string // the status line on the terminal now, "" when none
	now  func() time.Time
	tick time.Duration // the terminal's redraw or the log's period
}

// New draws on w when w is a terminal; else it reports to the logger
// SetLogger gives it (the log writes through Wrap(w)).
func New(w io.Writer) *Reporter {
	r := &Reporter{log: slog.New(slog.DiscardHandler), now: time.Now, tick: LogEvery}
	if IsTerminal(w) {
		r.tty, r.tick = w, Redraw
	}
	return r
}

// SetLogger sets where a service's progress lines go.
func (r *Reporter) SetLogger(log *slog.Logger) { r.log = log }

// Wrap returns w for the log to write through: on a terminal a log line
// first clears the status line, which is drawn again after it, so that
// the two do not garble each other. Elsewhere it is w.
func (r *Reporter) Wrap(w io.Writer) io.Writer {
	if r == nil || r.tty == nil {
		return w
	}
	return writerFunc(func(p []byte) (int, error) {
		r.mu.Lock()
		defer r.mu.Unlock()
		if r.line != "" {
			io.WriteString(r.tty, "\r\033[K")
		}
		n, err := w.Write(p)
		if r.line != "" {
			io.WriteString(r.tty, r.line)
		}
		return n, err
	})
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }

// IsTerminal reports whether w is a character device (a terminal).
func IsTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

// Step is one operation under way.
type Step struct {
	r     *Reporter
	what  string
	start time.Time
	mu    sync.Mutex
	done  int64
	total int64
	unit  string
	stop  chan struct{}
	wg    sync.WaitGroup
	drawn bool
}

// Start begins a step; attrs go into its log lines (e.g. "dir", d).
func (r *Reporter) Start(what string, attrs ...any) *Step {
	if r == nil {
		return nil
	}
	s := &Step{r: r, what: what, start: r.now(), stop: make(chan struct{})}
	if r.tty == nil {
		r.log.Info(what+": started", attrs...)
	}
	s.wg.Add(1)
	go s.loop()
	return s
}

// Set records how far the step has got: done of total units (total 0:
// unknown).
func (s *Step) Set(done, total int64, unit string) {
	if s == nil {
		return
	}
	s.mu.Lock()
	s.done, s.total, s.unit = done, total, unit
	s.mu.Unlock()
}

// Done ends the step; err, when not nil, is reported with it (and
// returned, so that `return step.Done(err)` reads naturally).
func (s *Step) Done(err error) error {
	if s == nil {
		return err
	}
	close(s.stop)
	s.wg.Wait()
	took := s.r.now().Sub(s.start).Round(time.Millisecond)
	if s.r.tty != nil {
		s.r.mu.Lock()
		defer s.r.mu.Unlock()
		s.r.line = ""
		if s.drawn || err != nil {
			verdict := "done"
			if err != nil {
				verdict = "failed"
			}
			fmt.Fprintf(s.r.tty, "\r\033[K%s: %s in %s%s\n", s.what, verdict, took, s.count())
		}
		return err
	}
	if err != nil {
		s.r.log.Warn(s.what+": failed", "took", took.String(), "err", err)
	} else {
		s.r.log.Info(s.what+": done", s.attrs("took", took.String())...)
	}
	return err
}

func (s *Step) loop() {
	defer s.wg.Done()
	t := time.NewTicker(s.r.tick)
	defer t.Stop()
	for {
		select {
		case <-s.stop:
			return
		case <-t.C:
		}
		elapsed := s.r.now().Sub(s.start)
		if s.r.tty == nil {
			s.r.log.Info(s.what+": under way", s.attrs("elapsed", elapsed.Round(time.Second).String())...)
			continue
		}
		if elapsed < Quiet {
			continue
		}
		line := fmt.Sprintf("%s... %s%s", s.what, elapsed.Round(time.Second), s.count())
		s.r.mu.Lock()
		if line != s.r.line { // drawn again only when it changed
			s.r.line = line
			fmt.Fprintf(s.r.tty, "\r\033[K%s", line)
		}
		s.drawn = true
		s.r.mu.Unlock()
	}
}

// attrs adds the count, when there is one, to a log line's attributes.
func (s *Step) attrs(kv ...any) []any {
	if c := s.count(); c != "" {
		kv = append(kv, "progress", strings.TrimPrefix(c, ", "))
	}
	return kv
}

// count is ", 3/10 plugins (30%)", ", 1200 rows", or "".
func (s *Step) count() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case s.unit == "":
		return ""
	case s.total > 0:
		return fmt.Sprintf(", %d/%d %s (%d%%)", s.done, s.total, s.unit, s.done*100/s.total)
	default:
		return fmt.Sprintf(", %d %s", s.done, s.unit)
	}
}
