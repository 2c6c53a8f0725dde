// Package cast is the asciicast v2 format of session recordings
// (https://docs.asciinema.org/manual/asciicast/v2/): a header line, a JSON
// object with version 2, width, height and timestamp, then one line per
// event, [time, code, data], time in seconds from the start, code "o"
// (output), "i" (input) or "r" (resize, data "COLSxROWS").
//
// A session's recording is stored in chunks (audit rows of kind
// audit.KindRecording): chunk 0 starts with the header line, and each
// chunk holds whole event lines, so the chunks' text in order is a .cast
// file. Data is JSON text, so it is UTF-8: the recorder holds back a
// rune cut between two writes until it is whole, and a byte that is not
// UTF-8 at all is recorded as U+FFFD (a terminal shows it so too).
package cast

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"
)

// Event codes.
const (
	Output = "o"
	Input  = "i"
	Resize = "r"
)

// Header is a cast's first line.
type Header struct {
	Version   int   `json:"version"`
	Width     int   `json:"width"`
	Height    int   `json:"height"`
	Timestamp int64 `json:"timestamp,omitempty"` // Unix seconds of the start
}

// Event is one line after the header.
type Event struct {
	Time float64 // seconds since the start
	Code string
	Data string
}

// MaxLine bounds one line the decoder reads: the recorder writes events of
// at most 32 KiB of data, which JSON escaping can grow sixfold.
const MaxLine = 1 << 20

// AppendHeader appends h as a header line (with its newline).
func AppendHeader(b []byte, h Header) []byte {
	h.Version = 2
	j, _ := json.Marshal(h) // a struct of ints: cannot fail
	b = append(b, j...)
	return append(b, '\n')
}

// AppendEvent appends e as an event line (with its newline). Invalid
// UTF-8 in Data becomes U+FFFD.
func AppendEvent(b []byte, e Event) []byte {
	b = append(b, '[')
	b = strconv.AppendFloat(b, e.Time, 'f', 6, 64)
	b = append(b, ", "...)
	b = appendString(b, e.Code)
	b = append(b, ", "...)
	b = appendString(b, e.Data)
	return append(b, "]\n"...)
}

func appendString(b []byte, s string) []byte {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false) // terminal text, never put into HTML as is
	enc.Encode(s)            // a string: cannot fail
	return append(b, bytes.TrimSuffix(buf.Bytes(), []byte("\n"))...)
}

// ParseHeader reads a header line.
func ParseHeader(line []byte) (Header, error) {
	var h Header
	if err := json.Unmarshal(line, &h); err != nil {
		return h, fmt.Errorf("cast: header: %w", err)
	}
	if h.Version != 2 {
		return h, fmt.Errorf("cast: header: version %d, want 2", h.Version)
	}
	if h.Width < 0 || h.Height < 0 {
		return h, errors.New("cast: header: negative size")
	}
	return h, nil
}

// ParseEvent reads an event line.
func ParseEvent(line []byte) (Event, error) {
	var raw []json.RawMessage
	if err := json.Unmarshal(line, &raw); err != nil {
		return Event{}, fmt.Errorf("cast: event: %w", err)
	}
	if len(raw) != 3 {
		return Event{}, fmt.Errorf("cast: event: %d elements, want 3", len(raw))
	}
	var e Event
	if err := json.Unmarshal(raw[0], &e.Time); err != nil {
		return Event{}, fmt.Errorf("cast: event time: %w", err)
	}
	if e.Time < 0 || math.IsNaN(e.Time) || math.IsInf(e.Time, 0) {
		return Event{}, errors.New("cast: event time out of range")
	}
	if err := json.Unmarshal(raw[1], &e.Code); err != nil {
		return Event{}, fmt.Errorf("cast: event code: %w", err)
	}
	if err := json.Unmarshal(raw[2], &e.Data); err != nil {
		return Event{}, fmt.Errorf("cast: event data: %w", err)
	}
	return e, nil
}

// ParseSize reads a resize event's data, "COLSxROWS".
func ParseSize(data string) (cols, rows int, err error) {
	c, r, ok := strings.Cut(data, "x")
	if ok {
		if cols, err = strconv.Atoi(c); err == nil {
			rows, err = strconv.Atoi(r)
		}
	}
	if !ok || err != nil || cols <= 0 || rows <= 0 {
		return 0, 0, fmt.Errorf("cast: resize %q: want COLSxROWS", data)
	}
	return cols, rows, nil
}

// Cast is a whole recording.
type Cast struct {
	Header Header
	Events []Event
}

// Decode reads a .cast file: a header line, then event lines (blank lines
// are skipped). Times must not go backwards.
func Decode(r io.Reader) (*Cast, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), MaxLine)
	c := &Cast{}
	n := 0
	for sc.Scan() {
		line := bytes.TrimSpace(sc.Bytes())
		n++
		if len(line) == 0 {
			continue
		}
		if c.Header.Version == 0 {
			h, err := ParseHeader(line)
			if err != nil {
				return nil, fmt.Errorf("line %d: %w", n, err)
			}
			c.Header = h
			continue
		}
		e, err := ParseEvent(line)
		if err != nil {
			return nil, fmt.Errorf("line %d: %w", n, err)
		}
		if k := len(c.Events); k > 0 && e.Time < c.Events[k-1].Time {
			return nil, fmt.Errorf("line %d: cast: event time %.6f goes back from %.6f", n, e.Time, c.Events[k-1].Time)
		}
		c.Events = append(c.Events, e)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("cast: line %d: %w", n+1, err)
	}
	if c.Header.Version == 0 {
		return nil, errors.New("cast: no header line")
	}
	return c, nil
}

// Encode writes c as a .cast file.
func (c *Cast) Encode(w io.Writer) error {
	b := AppendHeader(nil, c.Header)
	for _, e := range c.Events {
		b = AppendEvent(b, e)
		if len(b) >= 64<<10 {
			if _, err := w.Write(b); err != nil {
				return fmt.Errorf("cast: write: %w", err)
			}
			b = b[:0]
		}
	}
	if _, err := w.Write(b); err != nil {
		return fmt.Errorf("cast: write: %w", err)
	}
	return nil
}

// Output is the concatenated data of the output events: what the client's
// terminal received.
func (c *Cast) Output() string {
	var b strings.Builder
	for _, e := range c.Events {
		if e.Code == Output {
			b.WriteString(e.Data)
		}
	}
	return b.String()
}

// Chunk is one stored chunk of a recording.
type Chunk struct {
	Number int    // 0, 1, ...: the recorder's count
	Text   string // header line (chunk 0) and event lines
}

// Assemble joins a recording's chunks, in the order given, into one cast.
// Missing chunk numbers (a chunk the spool had no room for, see
// audit.Minimal) are reported in gaps; the cast goes on past them.
func Assemble(chunks []Chunk) (c *Cast, gaps []int, err error) {
	var b strings.Builder
	if len(chunks) > 0 && chunks[0].Number != 0 {
		// The header went with chunk 0: a terminal's usual size stands in.
		b.Write(AppendHeader(nil, Header{Width: 80, Height: 24}))
	}
	next := 0
	for _, ch := range chunks {
		if ch.Number < next {
			continue // a duplicate
		}
		for ; next < ch.Number; next++ {
			gaps = append(gaps, next)
		}
		next = ch.Number + 1
		b.WriteString(ch.Text)
	}
	c, err = Decode(strings.NewReader(b.String()))
	if err != nil {
		return nil, gaps, err
	}
	return c, gaps, nil
}
