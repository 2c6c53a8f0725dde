package gate

import (
	"io"
	"strconv"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/tollgate-dev/tollgate/host/audit"
	"github.com/tollgate-dev/tollgate/host/audit/cast"
)

// KindRecording is the row kind of a recording's chunks.
const KindRecording = audit.KindRecording

// Recording bounds: a chunk is recorded once its event lines reach
// recordChunkBytes or its first event is recordChunkAge old, and one event
// carries at most recordEventBytes of data.
const (
	recordChunkBytes = 32 << 10
	recordChunkAge   = time.Second
	recordEventBytes = 16 << 10
	// The terminal size of a recording whose protocol never said one.
	defaultWidth, defaultHeight = 80, 24
)

// Recording is a session's terminal recording: what the client's terminal
// received (the output after the chain redacted it, exactly the bytes
// sent), what the client typed or piped in, and resizes, each with its
// time, as asciicast v2 events (host/audit/cast). Chunks of events are
// rows of the session (KindRecording), recorded like its other rows, so
// the spool keeps them through an outage and the session's hash chain
// covers them. Session.Close records the last chunk before the close row.
//
// Its methods are safe for concurrent use (stdout, stderr and stdin are
// copied by goroutines of their own) and never block on the audit store.
type Recording struct {
	s *Session

	mu            sync.Mutex
	start         time.Time
	width, height int
	begun         bool   // an event or the header was written
	buf           []byte // event lines not yet recorded
	first         time.Time
	chunk         int
	in, out       int64     // bytes of the chunk, for its row's sizes
	carry         [2][]byte // a rune cut at the end of a write: output, input
	timer         *time.Timer
	ended         bool
	failed        bool // a chunk was not recorded: logged once
}

// Recording is the session's recording, started by the first call.
func (s *Session) Recording() *Recording {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.rec == nil {
		s.rec = &Recording{s: s, start: time.Now(), width: defaultWidth, height: defaultHeight}
	}
	return s.rec
}

// SetSize sets the terminal size of the recording's header (a pty-req);
// after the first event it is a resize.
func (r *Recording) SetSize(width, height int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.begun {
		if width > 0 && height > 0 {
			r.width, r.height = width, height
		}
		return
	}
	r.resizeLocked(width, height)
}

// Resize records a window change.
func (r *Recording) Resize(width, height int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.resizeLocked(width, height)
}

func (r *Recording) resizeLocked(width, height int) {
	// A repeated size is no event: a client flooding window-change
	// requests does not flood the trail.
	if width <= 0 || height <= 0 || width == r.width && height == r.height {
		return
	}
	r.width, r.height = width, height
	r.event(cast.Resize, strconv.Itoa(width)+"x"+strconv.Itoa(height))
}

// Output records p as sent to the client.
func (r *Recording) Output(p []byte) { r.add(0, cast.Output, p) }

// Input records p as the client sent it.
func (r *Recording) Input(p []byte) { r.add(1, cast.Input, p) }

// InputReader is src whose reads are recorded as input.
func (r *Recording) InputReader(src io.Reader) io.Reader { return inputReader{r, src} }

type inputReader struct {
	r   *Recording
	src io.Reader
}

func (i inputReader) Read(p []byte) (int, error) {
	n, err := i.src.Read(p)
	if n > 0 {
		i.r.Input(p[:n])
	}
	return n, err
}

func (r *Recording) add(dir int, code string, p []byte) {
	if len(p) == 0 {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.ended {
		return
	}
	if dir == 0 {
		r.out += int64(len(p))
	} else {
		r.in += int64(len(p))
	}
	data := p
	if c := r.carry[dir]; len(c) > 0 {
		data = append(c, p...)
		r.carry[dir] = nil
	}
	// A rune cut between two writes waits for its end, so that the event
	// holds it whole (event data is UTF-8 text).
	if k := cutRune(data); k > 0 {
		r.carry[dir] = append([]byte(nil), data[len(data)-k:]...)
		data = data[:len(data)-k]
	}
	for len(data) > 0 {
		n := min(len(data), recordEventBytes)
		for n < len(data) && n > recordEventBytes-utf8.UTFMax && !utf8.RuneStart(data[n]) {
			n--
		}
		r.event(code, string(data[:n]))
		data = data[n:]
	}
}

// cutRune is how many bytes at the end of p begin a rune that p does not
// finish (0 when p ends on a whole rune or on bytes that are not UTF-8).
func cutRune(p []byte) int {
	for k := 1; k <= utf8.UTFMax-1 && k <= len(p); k++ {
		c := p[len(p)-k]
		if c < utf8.RuneSelf {
			return 0
		}
		if utf8.RuneStart(c) {
			if !utf8.FullRune(p[len(p)-k:]) {
				return k
			}
			return 0
		}
	}
	return 0
}

// event appends one event line; r.mu is held.
func (r *Recording) event(code, data string) {
	if r.ended {
		return
	}
	now := time.Now()
	if len(r.buf) == 0 {
		r.first = now
	}
	if !r.begun {
		r.begun = true
		r.buf = cast.AppendHeader(r.buf, cast.Header{Width: r.width, Height: r.height, Timestamp: r.start.Unix()})
	}
	r.buf = cast.AppendEvent(r.buf, cast.Event{Time: now.Sub(r.start).Seconds(), Code: code, Data: data})
	switch {
	case len(r.buf) >= recordChunkBytes:
		r.flushLocked()
	case r.timer == nil:
		r.timer = time.AfterFunc(recordChunkAge, r.Flush)
	}
}

// Flush records the events not yet recorded as one chunk.
func (r *Recording) Flush() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.flushLocked()
}

func (r *Recording) flushLocked() {
	if r.timer != nil {
		r.timer.Stop()
		r.timer = nil
	}
	if len(r.buf) == 0 {
		return
	}
	row := r.s.Row(KindRecording)
	row.Request = map[string]string{"events": string(r.buf), "chunk": strconv.Itoa(r.chunk)}
	row.RequestBytes, row.ResponseBytes = r.in, r.out
	row.DurationMicro = time.Since(r.first).Microseconds()
	r.chunk++
	r.buf, r.in, r.out = r.buf[:0], 0, 0
	if cap(r.buf) > 4*recordChunkBytes {
		r.buf = nil // one huge event: do not keep its buffer
	}
	if _, err := r.s.Record(row); err != nil && !r.failed {
		// Session.Record logged it; the recording now has a gap, which
		// replay reports by the missing chunk number.
		r.failed = true
		r.s.log.Error("session recording: a chunk was not recorded; the recording has a gap", "chunk", r.chunk-1, "err", err)
	}
}

// end records what is left, cut runes included, and takes nothing more:
// the session is closing.
func (r *Recording) end() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.ended {
		return
	}
	for dir, code := range [2]string{cast.Output, cast.Input} {
		if c := r.carry[dir]; len(c) > 0 {
			r.carry[dir] = nil
			r.event(code, string(c))
		}
	}
	r.flushLocked()
	r.ended = true
}
