package ssh

import (
	"context"
	"io"
	"strings"
	"sync"
	"testing"
	"time"
)

// fakeReadline is a remote shell's line editor on a terminal, as the
// input gate meets it: it echoes keys into the screen, runs a line on CR
// and starts a fresh prompt on a new line on Ctrl-C, except for the
// first keep Ctrl-Cs, which it answers as bash does when the interrupt
// comes while readline is busy with a paste: "^C", then the same line
// drawn again in place, kept.
type fakeReadline struct {
	scr    *liveScreen
	keep   int
	hidden bool // a kept line is drawn on a fresh prompt only at the next key
	redraw bool
	line   []byte
	ran    chan string
	ctrlCs int
}

func (r *fakeReadline) run(t *testing.T, g *inputGate) {
	r.scr.Write([]byte("tg$ "))
	buf := make([]byte, 1024)
	for {
		n, err := g.Read(buf)
		for _, b := range buf[:n] {
			switch b {
			case 0x03:
				r.ctrlCs++
				if r.ctrlCs <= r.keep && r.hidden {
					r.scr.Write([]byte("^C\r\ntg$ "))
					r.redraw = true
					continue
				}
				if r.ctrlCs <= r.keep {
					r.scr.Write([]byte("^C\rtg$ " + string(r.line)))
					continue
				}
				r.line = r.line[:0]
				r.scr.Write([]byte("^C\r\ntg$ "))
			case '\r':
				r.scr.Write([]byte("\r\nran: " + string(r.line) + "\r\ntg$ "))
				r.ran <- string(r.line)
				r.line = r.line[:0]
			default:
				r.line = append(r.line, b)
				if r.redraw {
					r.redraw = false
					r.scr.Write([]byte("\rtg$ " + string(r.line)))
					continue
				}
				r.scr.Write([]byte{b})
			}
		}
		if err != nil {
			close(r.ran)
			if err != io.EOF {
				t.Errorf("gate: %v", err)
			}
			return
		}
	}
}

// A denied line pasted with the next one, to a remote that keeps the line
// through Ctrl-Cs: the gate holds the next line's keys until the remote
// shows a fresh prompt (sending Ctrl-C again), or, when it never does,
// refuses the next line too; a line whose echo brings the refused text
// back is refused; the refused text never runs.
func TestGateRefusedLineKept(t *testing.T) {
	for _, tc := range []struct {
		name    string
		keep    int
		hidden  bool
		ctrlCs  int
		refused []string // the lines the gate itself refuses
	}{
		{"kept once", 1, false, 2, nil},
		{"kept through every Ctrl-C", maxInterrupts, false, maxInterrupts + 1, []string{"echo after"}},
		{"kept behind a fresh prompt", 1, true, 2, []string{"rm -rf /echo after"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			scr := newLiveScreen(80)
			keys, client := io.Pipe()
			var mu sync.Mutex
			var decided, refused []string
			g := &inputGate{ctx: ctx, src: keys, scr: scr, decide: func(s submitted) bool {
				mu.Lock()
				defer mu.Unlock()
				decided = append(decided, s.line)
				if s.refuse != "" {
					refused = append(refused, s.line)
					return false
				}
				return !strings.Contains(s.line+"\n"+s.typed, "rm -rf /")
			}}
			r := &fakeReadline{scr: scr, keep: tc.keep, hidden: tc.hidden, ran: make(chan string, 16)}
			done := make(chan struct{})
			go func() {
				defer close(done)
				r.run(t, g)
			}()
			var ran []string
			next := func() string {
				t.Helper()
				select {
				case l := <-r.ran:
					ran = append(ran, l)
					return l
				case <-time.After(30 * time.Second):
					t.Fatalf("the remote ran nothing more after %q; decided %q", ran, decided)
					return ""
				}
			}
			if _, err := client.Write([]byte("rm -rf /\recho after\r")); err != nil {
				t.Fatal(err)
			}
			if tc.refused != nil {
				// The gate refused the line with "echo after" too; its
				// Ctrl-C found a fresh prompt, so the next line runs.
				if _, err := client.Write([]byte("echo again\r")); err != nil {
					t.Fatal(err)
				}
				if l := next(); l != "echo again" {
					t.Fatalf("ran %q", ran)
				}
			} else if l := next(); l != "echo after" {
				t.Fatalf("ran %q", ran)
			}
			client.Close()
			<-done
			for l := range r.ran {
				ran = append(ran, l)
			}
			mu.Lock()
			defer mu.Unlock()
			if len(ran) != 1 || r.ctrlCs != tc.ctrlCs || strings.Join(refused, "|") != strings.Join(tc.refused, "|") {
				t.Fatalf("ran %q with %d Ctrl-Cs (want %d), decided %q, refused by the gate %q (want %q)", ran, r.ctrlCs, tc.ctrlCs, decided, refused, tc.refused)
			}
			if decided[0] != "rm -rf /" {
				t.Fatalf("decided %q", decided)
			}
		})
	}
}
