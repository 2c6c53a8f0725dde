package ssh

import (
	"strings"
	"unicode/utf8"
)

// screen is the little of a terminal the gateway needs to read the line
// a shell shows while the user edits it: the rows of the current line,
// the cursor, and auto-wrap, fed with what the remote writes (the remote
// echo, readline's redraws, prompts, output). It is not a terminal
// emulator: colours, scroll regions and absolute positions are ignored.
// Readline wraps long lines by letting the terminal wrap and moves back
// over them with cursor-up, so rows entered by wrapping are marked as
// continuations of the row above, and the line under the cursor is the
// run of rows joined by such wraps.
type screen struct {
	width   int
	rows    []termRow
	row     int
	col     int
	pending bool   // the last column was written: the next character wraps
	feeds   uint64 // line feeds written: a new line shows it moved on

	st     int // parser state
	params []byte
	utf    []byte // an incomplete UTF-8 sequence
}

type termRow struct {
	cells []rune
	cont  bool // entered by wrapping from the row above
}

// maxRows bounds the rows kept: a line longer than this many rows is
// read by its end.
const maxRows = 256

const (
	stGround = iota
	stEsc
	stCSI
	stString    // OSC, DCS, APC, PM, SOS: until BEL or ST
	stStringEsc // ESC seen inside a string
	stCharset   // ESC ( and the like: one more byte
)

func newScreen(width int) *screen {
	s := &screen{rows: []termRow{{}}}
	s.resize(width)
	return s
}

func (s *screen) resize(width int) {
	if width <= 0 || width > 4096 {
		width = 80
	}
	s.width = width
	if s.col >= width {
		s.col = width - 1
	}
}

// Write feeds the remote's output.
func (s *screen) Write(p []byte) (int, error) {
	for _, b := range p {
		s.byte(b)
	}
	return len(p), nil
}

func (s *screen) byte(b byte) {
	switch s.st {
	case stEsc:
		switch b {
		case '[':
			s.st, s.params = stCSI, s.params[:0]
		case ']', 'P', '_', '^', 'X':
			s.st = stString
		case '(', ')', '*', '+', '-', '.', '/', '#', '%', ' ':
			s.st = stCharset
		default:
			s.st = stGround // ESC 7, ESC 8, ESC =, ESC >, ESC M...: nothing the line needs
		}
		return
	case stCSI:
		if b >= 0x40 && b <= 0x7e {
			s.st = stGround
			s.csi(b)
			return
		}
		if len(s.params) < 64 {
			s.params = append(s.params, b)
		}
		return
	case stString:
		switch b {
		case 0x07:
			s.st = stGround
		case 0x1b:
			s.st = stStringEsc
		}
		return
	case stStringEsc:
		if b == '\\' {
			s.st = stGround
		} else {
			s.st = stString
		}
		return
	case stCharset:
		s.st = stGround
		return
	}
	if len(s.utf) > 0 || b >= 0x80 {
		s.utf = append(s.utf, b)
		if !utf8.FullRune(s.utf) && len(s.utf) < utf8.UTFMax {
			return
		}
		r, _ := utf8.DecodeRune(s.utf)
		s.utf = s.utf[:0]
		s.put(r)
		return
	}
	switch b {
	case 0x1b:
		s.st = stEsc
	case '\r':
		s.col, s.pending = 0, false
	case '\n', '\v', '\f':
		s.feeds++
		s.down(1)
	case '\b':
		if s.col > 0 {
			s.col--
		}
		s.pending = false
	case '\t':
		s.col = min((s.col/8+1)*8, s.width-1)
		s.pending = false
	default:
		if b >= 0x20 && b != 0x7f {
			s.put(rune(b))
		}
	}
}

// put writes r at the cursor, wrapping first when the last column was
// written.
func (s *screen) put(r rune) {
	if s.pending {
		s.down(1)
		s.rows[s.row].cont = true
		s.col, s.pending = 0, false
	}
	cells := s.rows[s.row].cells
	for len(cells) <= s.col {
		cells = append(cells, ' ')
	}
	cells[s.col] = r
	s.rows[s.row].cells = cells
	if s.col == s.width-1 {
		s.pending = true
	} else {
		s.col++
	}
}

// down moves the cursor n rows down (a line feed keeps the column: the
// remote sends \r\n), adding rows at the bottom, which are not
// continuations unless put marks them.
func (s *screen) down(n int) {
	s.pending = false
	for range n {
		s.row++
		if s.row == len(s.rows) {
			s.rows = append(s.rows, termRow{})
		}
	}
	if len(s.rows) > maxRows {
		drop := len(s.rows) - maxRows
		s.rows = append(s.rows[:0], s.rows[drop:]...)
		s.row -= drop
	}
}

func (s *screen) csi(final byte) {
	if len(s.params) > 0 && (s.params[0] < '0' || s.params[0] > ';') {
		return // private (?2004h...) or intermediate: modes, not text
	}
	ps := strings.Split(string(s.params), ";")
	n := func(i, def int) int {
		if i >= len(ps) || ps[i] == "" {
			return def
		}
		v := 0
		for _, c := range ps[i] {
			if c < '0' || c > '9' {
				return def
			}
			v = min(v*10+int(c-'0'), 1<<16)
		}
		if v == 0 {
			return def
		}
		return v
	}
	row := &s.rows[s.row]
	switch final {
	case 'A': // up
		s.row = max(s.row-n(0, 1), 0)
	case 'B': // down
		s.down(n(0, 1))
	case 'C': // right
		s.col = min(s.col+n(0, 1), s.width-1)
	case 'D': // left
		s.col = max(s.col-n(0, 1), 0)
	case 'E':
		s.down(n(0, 1))
		s.col = 0
	case 'F':
		s.row, s.col = max(s.row-n(0, 1), 0), 0
	case 'G', '`':
		s.col = min(n(0, 1)-1, s.width-1)
	case 'H', 'f': // the row is the screen's, which is not known here
		s.col = min(n(1, 1)-1, s.width-1)
	case 'K':
		switch n(0, 0) {
		case 0:
			if s.col < len(row.cells) {
				row.cells = row.cells[:s.col]
			}
		case 1:
			for i := 0; i <= s.col && i < len(row.cells); i++ {
				row.cells[i] = ' '
			}
		default:
			row.cells = row.cells[:0]
		}
	case 'J':
		switch n(0, 0) {
		case 0:
			if s.col < len(row.cells) {
				row.cells = row.cells[:s.col]
			}
			s.rows = s.rows[:s.row+1]
		case 2, 3:
			s.rows = []termRow{{}}
			s.row = 0
		}
	case '@': // insert blanks
		k := min(n(0, 1), s.width)
		if s.col < len(row.cells) {
			tail := append([]rune(nil), row.cells[s.col:]...)
			row.cells = append(row.cells[:s.col], append([]rune(strings.Repeat(" ", k)), tail...)...)
			if len(row.cells) > s.width {
				row.cells = row.cells[:s.width]
			}
		}
	case 'P': // delete characters
		if s.col < len(row.cells) {
			k := min(n(0, 1), len(row.cells)-s.col)
			row.cells = append(row.cells[:s.col], row.cells[s.col+k:]...)
		}
	case 'X': // erase characters
		for i := s.col; i < s.col+n(0, 1) && i < len(row.cells); i++ {
			row.cells[i] = ' '
		}
	default:
		return // SGR and the rest: no movement
	}
	s.pending = false
}

// line is the logical line under the cursor (its rows joined where they
// wrapped), and how much of it lies before the cursor.
func (s *screen) line() (text string, beforeCursor int) {
	start, end := s.row, s.row
	for start > 0 && s.rows[start].cont {
		start--
	}
	for end+1 < len(s.rows) && s.rows[end+1].cont {
		end++
	}
	var b []rune
	for i := start; i <= end; i++ {
		cells := s.rows[i].cells
		if i < end {
			// A wrapped row is full: pad one that was erased.
			for len(cells) < s.width {
				cells = append(cells, ' ')
			}
		}
		if i == s.row {
			beforeCursor = len(b) + min(s.col, len(cells))
			if s.pending {
				beforeCursor = len(b) + len(cells)
			}
		}
		b = append(b, cells...)
	}
	return string(b), len(string(b[:beforeCursor]))
}
