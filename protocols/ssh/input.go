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
// A refused line is already in the remote's line (its keys went as they
// came), so the gate sends Ctrl-C and then holds every further key until
// the remote shows the line is gone: a new line on the screen after the
// Ctrl-C, the remote quiet, and no refused text at the end of it. Bash
// can keep the line through an interrupt that comes while readline is
// busy with keys (not waiting for one; a paste under load): it redraws
// the same line in place, without a new one, and the keys that follow
// would be appended to the refused text and run with it. So the gate
// sends Ctrl-C again, at most maxInterrupts in all; when the remote still
// shows no clean line, the gate is unsure of it and refuses each line
// submitted (an empty one too), with Ctrl-C, until it has seen one. The
// keys held meanwhile go on afterwards, and the next line's prompt is
// read from a screen the gate saw clean; until a line is allowed, a line
// whose echo holds a refused text that its keys do not (the remote drew
// the kept line again) is refused too, and so is an empty line on a
// screen line that ends in one. What the gate cannot see (a program that
// draws no new line on Ctrl-C: an editor, a pager) ends in the
// fail-closed state, not in trusting it. The gate trusts no view here
// alone: the Ctrl-C is checked by the screen, the screen by the keys.
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

// maxInterrupts bounds the Ctrl-Cs sent to clear a refused line, and
// maxRefused the refused texts looked for until the remote shows a clean
// line.
const (
	maxInterrupts = 3
	maxRefused    = 8
)

// unsureReason refuses a line while the gate has not seen the remote's
// line clean since a refusal.
const unsureReason = "the shell showed no fresh prompt after a refused line, so its line may still hold it; type the line again at a fresh prompt"

// remnantReason refuses a line whose echo holds a refused line's text
// that its keys do not: what the remote kept of a refused line.
const remnantReason = "the shell's line still holds the text of a refused line; press Ctrl-C and type the line again"

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

// feeds counts the line feeds the remote wrote.
func (l *liveScreen) feeds() uint64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.s.feeds
}

// fresh waits, at most settleMax from since, until the remote has written
// a line feed since it counted mark and then been quiet for settleQuiet;
// it reports whether it did, and the line under the cursor then (before
// and after the cursor).
func (l *liveScreen) fresh(ctx context.Context, since time.Time, mark uint64) (ok bool, before, after string) {
	deadline := since.Add(settleMax)
	for {
		l.mu.Lock()
		text, n := l.s.line()
		moved := l.s.feeds != mark
		last, wake := l.last, l.wake
		l.mu.Unlock()
		now := time.Now()
		quiet := last.Add(settleQuiet)
		if moved && !now.Before(quiet) {
			return true, text[:n], text[n:]
		}
		wait := deadline.Sub(now)
		if wait <= 0 {
			return false, text[:n], text[n:]
		}
		if moved {
			wait = min(wait, quiet.Sub(now))
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return false, text[:n], text[n:]
		case <-wake:
		case <-t.C:
		}
		t.Stop()
	}
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
	refuse              string // refused by the gate itself, for this reason
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

	// After a refusal (with a terminal): the texts refused, not yet seen
	// gone from the remote's line; the Ctrl-Cs sent for them, while keys
	// are held; the screen's line feeds before the last one; and whether
	// the remote never showed a clean line (each line is refused).
	refused    []string
	interrupts int
	feedMark   uint64
	unsure     bool

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
		if g.interrupts > 0 {
			// The Ctrl-C went out (Read is called again once what it
			// returned was written): nothing more goes until the
			// remote shows the refused line gone.
			g.confirmClear()
			continue
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
	sub := submitted{source: "keys"}
	if typing && (typed != "" || edited) {
		g.scr.settle(g.ctx, g.at, typed)
		screenLine, _ := g.scr.snapshot()
		sub.line, sub.source = shellLine(screenLine, prompt, typed, edited)
		if strings.TrimSpace(typed) != sub.line {
			sub.typed = typed
		}
	}
	empty := sub.line == "" && strings.TrimSpace(typed) == ""
	switch {
	case g.unsure:
		// Even an empty line: it would run what the remote still holds.
		sub.refuse = unsureReason
	case len(g.refused) == 0:
	case empty:
		// Since the last refusal no line ran: an empty one must not run
		// a refused line the remote drew again after the gate saw a
		// fresh prompt.
		g.scr.settle(g.ctx, g.at, "")
		if screenLine, before := g.scr.snapshot(); g.endsRefused(before, screenLine[len(before):]) {
			sub.refuse = remnantReason
		}
	case !edited:
		// The echo should be the keys: a refused text in the echo
		// that the keys do not have is what the remote kept.
		for _, t := range g.refused {
			if strings.Contains(sub.line, t) && !strings.Contains(typed, t) {
				sub.refuse = remnantReason
			}
		}
	}
	if empty && sub.refuse == "" {
		g.out = []byte{key} // an empty line
		return
	}
	if g.decide(sub) {
		g.refused = g.refused[:0]
		g.out = []byte{key}
		return
	}
	for _, t := range []string{sub.line, typed} {
		if t = strings.TrimSpace(t); t != "" {
			if len(g.refused) == maxRefused {
				g.refused = append(g.refused[:0], g.refused[1:]...)
			}
			g.refused = append(g.refused, t)
		}
	}
	// Ctrl-C once the remote is quiet: bash notices an interrupt at once
	// only while it waits for a key, and one that comes while it is
	// still drawing can leave it without a new prompt.
	g.scr.settle(g.ctx, time.Now(), "")
	g.interrupt()
}

// endsRefused reports whether the remote's line (its parts before and
// after the cursor) may hold a refused text: something after the cursor,
// or a refused text at its end.
func (g *inputGate) endsRefused(before, after string) bool {
	if strings.TrimSpace(after) != "" {
		return true
	}
	before = strings.TrimRight(before, " ")
	for _, t := range g.refused {
		if strings.HasSuffix(before, t) {
			return true
		}
	}
	return false
}

// interrupt sends Ctrl-C for a refused line; Read then holds the keys
// until confirmClear has seen the line gone.
func (g *inputGate) interrupt() {
	g.feedMark = g.scr.feeds()
	g.interrupts++
	g.out = []byte{0x03}
}

// confirmClear waits for the remote's answer to the Ctrl-C just sent: a
// new line that ends in none of the refused texts, with nothing after
// the cursor, is the remote's fresh prompt. Otherwise (the remote kept
// the line and drew it again, or said nothing) it sends Ctrl-C again,
// and after maxInterrupts it stops, unsure of the remote's line.
func (g *inputGate) confirmClear() {
	ok, before, after := g.scr.fresh(g.ctx, time.Now(), g.feedMark)
	switch {
	case ok && !g.endsRefused(before, after):
		// The refused texts are kept until a line is allowed: the next
		// line must not bring one back (submit).
		g.interrupts, g.unsure = 0, false
	case g.interrupts < maxInterrupts && g.ctx.Err() == nil:
		g.interrupt()
	default:
		g.interrupts, g.unsure = 0, true
	}
}
