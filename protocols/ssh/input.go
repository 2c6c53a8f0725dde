package ssh

import (
	"context"
	"io"
	"strings"
	"sync"
	"time"
	"unicode/utf8"
)

// How a shell line is read (README "Interactive shells"):
//
// With a terminal, the client's keys go to the remote as they come, so
// that the remote echoes and edits the line; only the key that submits
// it (Enter: CR or LF; Ctrl-O, bash's operate-and-get-next; Ctrl-D on a
// non-empty line, which hands a cooked terminal's line to the program)
// is held until the line is decided. The line's text is the server's
// view first: the line the remote shows under the cursor (its echo, with
// readline's redraws, completions and history applied), less the prompt
// that was there when the first key of the line was typed. Where the
// remote shows nothing (echo off: a password prompt, stty -echo, a
// program reading raw keys) the client's own keys are used, with simple
// editing (backspace, Ctrl-U, Ctrl-W, Ctrl-C). Both views' simple
// commands go to the plugins, so a deny rule that matches either stops
// the line.
//
// Without a terminal there is no echo and no editing: the client's bytes
// are held a whole line at a time (continued while the line ends in a
// backslash or leaves a quote open) and go out only once the line is
// allowed, so a denied line never reaches the shell at all.

// maxLine bounds a line: a longer one is refused (without a terminal) or
// read by its end (the keys, with one).
const maxLine = 64 << 10

// Settling: after the submit key, the remote's echo is waited for until
// it shows the typed keys, or the remote has been quiet for settleQuiet,
// at most settleMax.
const (
	settleQuiet = 100 * time.Millisecond
	settleMax   = 2 * time.Second
)

// lineEditor follows the client's keys of the current line, with simple
// editing, and tells the key that submits it.
type lineEditor struct {
	buf    []rune
	st     int // 0 ground, 1 after ESC, 2 in CSI, 3 after ESC O
	utf    []byte
	edited bool // cursor keys or readline commands: the keys may not be the line
}

// key feeds one byte from the client and reports whether it submits
// the line.
func (e *lineEditor) key(b byte) bool {
	switch e.st {
	case 1:
		switch b {
		case '[':
			e.st = 2
		case 'O':
			e.st = 3
		default:
			e.st, e.edited = 0, true
		}
		return false
	case 2:
		if b >= 0x40 && b <= 0x7e {
			e.st = 0
			if b != '~' { // ESC[200~ and ESC[201~ only bracket a paste
				e.edited = true
			}
		}
		return false
	case 3:
		e.st, e.edited = 0, true
		return false
	}
	if len(e.utf) > 0 || b >= 0x80 {
		e.utf = append(e.utf, b)
		if !utf8.FullRune(e.utf) && len(e.utf) < utf8.UTFMax {
			return false
		}
		r, _ := utf8.DecodeRune(e.utf)
		e.utf = e.utf[:0]
		e.add(r)
		return false
	}
	switch b {
	case '\r', '\n', 0x0f:
		return true
	case 0x04:
		return len(e.buf) > 0
	case 0x7f, 0x08:
		if len(e.buf) > 0 {
			e.buf = e.buf[:len(e.buf)-1]
		}
	case 0x15, 0x03:
		e.buf = e.buf[:0]
	case 0x17:
		i := len(e.buf)
		for i > 0 && e.buf[i-1] == ' ' {
			i--
		}
		for i > 0 && e.buf[i-1] != ' ' {
			i--
		}
		e.buf = e.buf[:i]
	case 0x1b:
		e.st = 1
	case '\t':
		e.add('\t')
	default:
		if b >= 0x20 {
			e.add(rune(b))
		} else {
			e.edited = true // Ctrl-A, Ctrl-K, Ctrl-R...: readline edits
		}
	}
	return false
}

func (e *lineEditor) add(r rune) {
	if len(e.buf) < maxLine {
		e.buf = append(e.buf, r)
	}
}

func (e *lineEditor) reset() {
	e.buf, e.edited = e.buf[:0], false
}

// shellLine picks a submitted line's text: the screen's line after the
// prompt; else the typed keys when the screen ends with them; else,
// when nothing was echoed, the keys; else the whole screen line.
func shellLine(screenLine, prompt, typed string, edited bool) (line, source string) {
	l := strings.TrimRight(screenLine, " ")
	p := strings.TrimRight(prompt, " ")
	t := strings.TrimRight(typed, " ")
	switch {
	case p != "" && strings.HasPrefix(l, p) && len(l) > len(p):
		return strings.TrimSpace(l[len(p):]), "echo"
	case t != "" && !edited && strings.HasSuffix(l, t):
		return strings.TrimSpace(t), "echo"
	case l == p || strings.TrimSpace(l) == "":
		return strings.TrimSpace(typed), "keys"
	}
	return strings.TrimSpace(l), "screen"
}

// liveScreen is the screen the output pump writes and the input gate
// reads.
type liveScreen struct {
	mu   sync.Mutex
	s    *screen
	last time.Time
	wake chan struct{}
}

func newLiveScreen(width int) *liveScreen {
	return &liveScreen{s: newScreen(width), wake: make(chan struct{})}
}

func (l *liveScreen) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.s.Write(p)
	l.last = time.Now()
	close(l.wake)
	l.wake = make(chan struct{})
	return len(p), nil
}

func (l *liveScreen) resize(width int) {
	l.mu.Lock()
	l.s.resize(width)
	l.mu.Unlock()
}

// snapshot is the line under the cursor, and its part before the cursor.
func (l *liveScreen) snapshot() (line, before string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	text, n := l.s.line()
	return text, text[:n]
}

// settle waits until the screen's line ends with typed, or the remote
// was quiet for settleQuiet since since (or its last output), at most
// settleMax.
func (l *liveScreen) settle(ctx context.Context, since time.Time, typed string) {
	deadline := since.Add(settleMax)
	typed = strings.TrimRight(typed, " ")
	for {
		l.mu.Lock()
		text, _ := l.s.line()
		last, wake := l.last, l.wake
		l.mu.Unlock()
		if typed != "" && strings.HasSuffix(strings.TrimRight(text, " "), typed) {
			return
		}
		quietFrom := since
		if last.After(quietFrom) {
			quietFrom = last
		}
		now := time.Now()
		wait := min(quietFrom.Add(settleQuiet).Sub(now), deadline.Sub(now))
		if wait <= 0 {
			return
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-wake:
		case <-t.C:
		}
		t.Stop()
	}
}

// submitted is one line, as the input gate read it.
type submitted struct {
	line, typed, source string
}

// inputGate is the client's input on its way to a shell: an io.Reader
// that yields what may go upstream now and blocks while a line is
// decided. decide answers whether the line may go; on a refusal the
// gate sends refusal (Ctrl-C with a terminal, nothing without).
type inputGate struct {
	ctx    context.Context
	src    io.Reader
	scr    *liveScreen // nil without a terminal
	decide func(submitted) bool

	buf     []byte
	pending []byte // read from the client, not yet looked at
	out     []byte // may go upstream
	key     byte   // the submit key being held
	holding bool
	at      time.Time // when it came

	ed     lineEditor
	typing bool   // keys came since the last submitted line
	prompt string // the screen before the cursor when they began

	line []byte // without a terminal: the line so far
	skip bool   // without a terminal: dropping the rest of a refused line
	err  error
}

func (g *inputGate) Read(p []byte) (int, error) {
	for {
		if len(g.out) > 0 {
			n := copy(p, g.out)
			g.out = g.out[n:]
			return n, nil
		}
		if g.holding {
			g.holding = false
			g.submit()
			continue
		}
		if len(g.pending) == 0 {
			if g.err != nil {
				return 0, g.err
			}
			if g.buf == nil {
				g.buf = make([]byte, 32<<10)
			}
			n, err := g.src.Read(g.buf)
			g.pending, g.err = g.buf[:n], err
			if g.scr == nil && err != nil && len(g.line) > 0 && !g.skip {
				// The client's last line, without a newline: the shell
				// runs it at end of input, so it is decided too.
				g.pending = append(g.pending, '\n')
			}
			continue
		}
		if g.scr == nil {
			g.scanLines()
		} else {
			g.scanKeys()
		}
	}
}

// scanKeys passes keys on up to a submit key, which it holds.
func (g *inputGate) scanKeys() {
	for i, b := range g.pending {
		if !g.typing {
			g.typing = true
			_, g.prompt = g.scr.snapshot()
		}
		if b == 0x03 {
			// Ctrl-C discards the line; the next key starts another.
			g.ed.reset()
			g.typing = false
			continue
		}
		if g.ed.key(b) {
			g.out, g.key, g.holding, g.at = g.pending[:i], b, true, time.Now()
			g.pending = g.pending[i+1:]
			return
		}
	}
	g.out, g.pending = g.pending, nil
}

// scanLines collects a whole line (continued while it does not split:
// a trailing backslash, an open quote) and decides it before any of it
// goes.
func (g *inputGate) scanLines() {
	for i, b := range g.pending {
		if g.skip {
			if b == '\n' {
				g.skip = false
			}
			continue
		}
		g.line = append(g.line, b)
		if len(g.line) > maxLine {
			g.line = g.line[:0]
			g.skip = b != '\n'
			g.decide(submitted{line: "", source: "too-long"})
			continue
		}
		if b != '\n' {
			continue
		}
		text := string(g.line[:len(g.line)-1])
		if _, err := Split(text); err != nil && (strings.HasPrefix(err.Error(), "unterminated") || err.Error() == "trailing backslash") {
			continue
		}
		g.pending = g.pending[i+1:]
		line := g.line
		g.line = nil
		if strings.TrimSpace(text) == "" || g.decide(submitted{line: text, typed: text, source: "keys"}) {
			g.out = line
		}
		return
	}
	g.pending = nil
}

// submit decides the held line once the echo settled, and lets its key
// go, or Ctrl-C instead.
func (g *inputGate) submit() {
	typed := string(g.ed.buf)
	edited := g.ed.edited
	key := g.key
	prompt := g.prompt
	typing := g.typing
	g.ed.reset()
	g.typing = false
	if !typing || (typed == "" && !edited) {
		g.out = []byte{key} // an empty line
		return
	}
	g.scr.settle(g.ctx, g.at, typed)
	screenLine, _ := g.scr.snapshot()
	line, source := shellLine(screenLine, prompt, typed, edited)
	if line == "" && strings.TrimSpace(typed) == "" {
		g.out = []byte{key}
		return
	}
	sub := submitted{line: line, source: source}
	if strings.TrimSpace(typed) != line {
		sub.typed = typed
	}
	if g.decide(sub) {
		g.out = []byte{key}
		return
	}
	// Ctrl-C once the remote is quiet: bash notices an interrupt only
	// while it waits for a key, and one that comes while it is still
	// drawing can leave it without a new prompt.
	g.scr.settle(g.ctx, time.Now(), "")
	g.out = []byte{0x03}
}
