package ssh

import (
	"strings"
	"testing"
	"unicode/utf8"
)

// The screen reads the line under the cursor as a terminal shows it,
// from what bash 5.2's readline wrote in a pty (recorded with TERM=xterm,
// 30 columns for the wrapped cases).
func TestScreenLine(t *testing.T) {
	for _, tc := range []struct {
		name   string
		width  int
		out    string
		line   string
		before string
	}{
		{"prompt", 80, "\x1b[?2004hroot@vm:/tmp# ", "root@vm:/tmp# ", "root@vm:/tmp# "},
		{"typed", 80, "\x1b[?2004hroot@vm:/tmp# echo hello", "root@vm:/tmp# echo hello", "root@vm:/tmp# echo hello"},
		{"backspaces", 80, "tg$ echo hello\x08 \x08\x08 \x08XY", "tg$ echo helXY", "tg$ echo helXY"},
		{"kill line", 80, "tg$ echo \x08\x08\x08\x08\x08\x1b[K", "tg$ ", "tg$ "},
		{"after output", 80, "tg$ ls\r\na b\r\n\x1b[?2004htg$ ", "tg$ ", "tg$ "},
		{"title and colours", 80, "\x1b]0;root@vm: ~\x07\x1b[01;32mroot\x1b[00m:~# rm", "root:~# rm", "root:~# rm"},
		{"cursor home then insert", 80, "tg$ echo rm -rf /\rtg$ \x1b[1P\x1b[1P\x1b[1P\x1b[1P\x1b[1P", "tg$ rm -rf /", "tg$ "},
		{"insert in the middle", 80, "tg$ ech 1\x08\x08\x1b[1@o", "tg$ echo 1", "tg$ echo"},
		// Readline lets the terminal wrap, then moves up over the rows.
		{"wrapped", 30, "root@vm:/tmp# echo 0123456789012345678901234567890123456789", "root@vm:/tmp# echo 0123456789012345678901234567890123456789", "root@vm:/tmp# echo 0123456789012345678901234567890123456789"},
		{"wrapped, edited at the start", 30, "root@vm:/tmp# echo 0123456789012345678901234567890123456789" +
			"\r\x1b[A\x1b[C\x1b[C\x1b[C\x1b[C\x1b[C\x1b[C\x1b[C\x1b[C\x1b[C\x1b[C\x1b[C\x1b[C\x1b[C\x1b[C\x1b[C\x1b[C\x1b[C" +
			"Zo 0123456789012345678901234567890123456789 \x1b[A\x1b[A\x1b[C\x1b[C\x1b[C\x1b[C\x1b[C\x1b[C\x1b[C\x1b[C\x1b[C\x1b[C\x1b[C\x1b[C\x1b[C\x1b[C\x1b[C\x1b[C\x1b[C\x1b[C",
			"root@vm:/tmp# echZo 0123456789012345678901234567890123456789", "root@vm:/tmp# echZo"},
		{"utf-8 split", 80, "tg$ echo h\xc3", "tg$ echo h", "tg$ echo h"},
		{"utf-8", 80, "tg$ echo h\xc3\xa9", "tg$ echo hé", "tg$ echo hé"},
		{"clear screen", 80, "tg$ junk\x1b[H\x1b[2Jtg$ ls", "tg$ ls", "tg$ ls"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := newScreen(tc.width)
			s.Write([]byte(tc.out))
			line, n := s.line()
			if strings.TrimRight(line, " ") != strings.TrimRight(tc.line, " ") || line[:n] != tc.before {
				t.Fatalf("line %q, before the cursor %q; want %q, %q", line, line[:n], tc.line, tc.before)
			}
		})
	}
}

// The keys of a line, with simple editing, and the key that submits it.
func TestLineEditor(t *testing.T) {
	for _, tc := range []struct {
		keys, typed string
		edited      bool
		submitAt    int // index of the submitting key, -1 for none
	}{
		{"ls -la\r", "ls -la", false, 6},
		{"ls\n", "ls", false, 2},
		{"rm -rf /tmpx\x7f\x7f\x7f\x7f\r", "rm -rf /", false, 16},
		{"junk\x15ls\r", "ls", false, 7},
		{"echo one two\x17\x17rm\r", "echo rm", false, 16},
		{"junk\x03ls\r", "ls", false, 7},
		{"\x1b[Als\r", "ls", true, 5},
		{"\x1b[200~pasted\x1b[201~\r", "pasted", false, 18},
		{"ls\x0f", "ls", false, 2},
		{"\x04", "", false, -1},
		{"rm\x04", "rm", false, 2},
		{"\x01ls", "ls", true, -1},
		{"h\xc3\xa9\r", "hé", false, 3},
	} {
		var e lineEditor
		at := -1
		for i := 0; i < len(tc.keys); i++ {
			if e.key(tc.keys[i]) {
				at = i
				break
			}
		}
		if string(e.buf) != tc.typed || e.edited != tc.edited || at != tc.submitAt {
			t.Errorf("%q: typed %q edited %v submit at %d; want %q %v %d", tc.keys, string(e.buf), e.edited, at, tc.typed, tc.edited, tc.submitAt)
		}
	}
}

// Which text a line is decided on.
func TestShellLine(t *testing.T) {
	for _, tc := range []struct {
		screen, prompt, typed string
		edited                bool
		line, source          string
	}{
		{"tg$ ls -la", "tg$ ", "ls -la", false, "ls -la", "echo"},
		// The echo wins over the keys: history, completion.
		{"tg$ rm -rf /", "tg$ ", "", true, "rm -rf /", "echo"},
		{"tg$ echo hello", "tg$ ", "ec\thello", false, "echo hello", "echo"},
		// Nothing echoed (a password prompt, stty -echo): the keys.
		{"tg$ ", "tg$ ", "rm -rf /", false, "rm -rf /", "keys"},
		{"Password: ", "Password: ", "hunter2", false, "hunter2", "keys"},
		// The prompt not known (keys typed ahead of it): the keys when the
		// screen ends with them, else the whole line.
		{"tg$ ls", "old output", "ls", false, "ls", "echo"},
		{"tg$ rm -rf /", "old output", "rm -rf /x", true, "tg$ rm -rf /", "screen"},
	} {
		line, source := shellLine(tc.screen, tc.prompt, tc.typed, tc.edited)
		if line != tc.line || source != tc.source {
			t.Errorf("%q %q %q: %q (%s), want %q (%s)", tc.screen, tc.prompt, tc.typed, line, source, tc.line, tc.source)
		}
	}
}

// A shell line's fields carry the commands of both views, so that a rule
// matching either stops it.
func TestInputFields(t *testing.T) {
	f := inputFields(submitted{line: "tg$ ls", typed: "true; rm -rf /", source: "screen"}, "root")
	if f["line"] != "tg$ ls" || f["typed"] != "true; rm -rf /" || !strings.Contains(f["commands"], "rm -rf /") || f["command"] != "" || f["source"] != "screen" {
		t.Fatalf("fields: %q", f)
	}
}

// The screen takes any bytes without panicking, and its line is valid
// UTF-8 with the cursor inside it.
func FuzzScreen(f *testing.F) {
	for _, s := range []string{
		"\x1b[?2004hroot@vm:/tmp# echo hello\x08 \x08",
		"root@vm:/tmp# echo 0123456789012345678901234567890123456789\r\x1b[A\x1b[5CZ\x1b[2A\x1b[3C",
		"\x1b]0;title\x07\x1b[01;32mx\x1b[K\x1b[3P\x1b[2@\x1b[4X\x1b[J\x1b[2J\x1b[5;7H\x1b[9G\x1b[2E\x1b[F",
		"\x1bP1$r\x1b\\\x1b(B\x1b7\x1b8\t\v\f\xc3\xa9\xff\xfe",
		"\x1b[99999999999A\x1b[;;;;C\x1b[-1D",
	} {
		f.Add(s, uint8(80))
	}
	f.Fuzz(func(t *testing.T, out string, width uint8) {
		s := newScreen(int(width))
		s.Write([]byte(out))
		line, n := s.line()
		if n < 0 || n > len(line) || !utf8.ValidString(line[:n]) {
			t.Fatalf("cursor %d in %q", n, line)
		}
		if len(s.rows) > maxRows || s.row < 0 || s.row >= len(s.rows) || s.col < 0 || s.col >= s.width {
			t.Fatalf("cursor %d,%d of %d rows, width %d", s.row, s.col, len(s.rows), s.width)
		}
	})
}

// The editor takes any keys; it never holds more than maxLine runes.
func FuzzLineEditor(f *testing.F) {
	for _, s := range []string{"ls -la\r", "rm -rf /tmpx\x7f\x7f\x7f\x7f\r", "\x1b[A\x01\x1b[3~\x0f", "\x1b[200~a\nb\x1b[201~\x04", "\xc3\xa9\x17\x15\x03"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, keys string) {
		var e lineEditor
		for i := 0; i < len(keys); i++ {
			if e.key(keys[i]) {
				if c := keys[i]; c != '\r' && c != '\n' && c != 0x0f && c != 0x04 {
					t.Fatalf("%q submitted the line", c)
				}
				e.reset()
			}
		}
		if len(e.buf) > maxLine {
			t.Fatalf("%d runes held", len(e.buf))
		}
	})
}
