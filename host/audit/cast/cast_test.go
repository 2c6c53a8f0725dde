package cast

import (
	"bytes"
	"strings"
	"testing"
)

func TestRoundTrip(t *testing.T) {
	c := &Cast{Header: Header{Width: 80, Height: 24, Timestamp: 1700000000}, Events: []Event{
		{0.1, Output, "hello \x1b[1mworld\x1b[0m\r\n"},
		{0.2, Input, "ls\n"},
		{0.25, Resize, "100x30"},
		{1.5, Output, "</script><b>\"quoted\"</b>\t\u2028"},
	}}
	var b bytes.Buffer
	if err := c.Encode(&b); err != nil {
		t.Fatal(err)
	}
	if first, _, _ := strings.Cut(b.String(), "\n"); first != `{"version":2,"width":80,"height":24,"timestamp":1700000000}` {
		t.Errorf("header line %s", first)
	}
	back, err := Decode(&b)
	if err != nil {
		t.Fatal(err)
	}
	if back.Header != (Header{2, 80, 24, 1700000000}) || len(back.Events) != 4 {
		t.Fatalf("decoded %+v", back)
	}
	for i, e := range back.Events {
		if e != c.Events[i] {
			t.Errorf("event %d: %+v, want %+v", i, e, c.Events[i])
		}
	}
	if w, h, err := ParseSize(back.Events[2].Data); err != nil || w != 100 || h != 30 {
		t.Errorf("size %d %d %v", w, h, err)
	}
}

// What a decoder must refuse: another version, a short event, time going
// back, a line over MaxLine, NaN times, no header.
func TestDecodeRefuses(t *testing.T) {
	for name, in := range map[string]string{
		"version 1":   `{"version":1,"width":80,"height":24}` + "\n",
		"no header":   "",
		"two fields":  `{"version":2}` + "\n[1.0, \"o\"]\n",
		"backwards":   `{"version":2}` + "\n[2.0, \"o\", \"a\"]\n[1.0, \"o\", \"b\"]\n",
		"negative":    `{"version":2}` + "\n[-1, \"o\", \"a\"]\n",
		"not number":  `{"version":2}` + "\n[\"1\", \"o\", \"a\"]\n",
		"data number": `{"version":2}` + "\n[1, \"o\", 5]\n",
		"huge line":   `{"version":2}` + "\n[1, \"o\", \"" + strings.Repeat("a", MaxLine) + "\"]\n",
		"neg size":    `{"version":2,"width":-1}` + "\n",
	} {
		if _, err := Decode(strings.NewReader(in)); err == nil {
			t.Errorf("%s: decoded", name)
		}
	}
	for _, bad := range []string{"", "80", "x24", "0x0", "-1x5", "80x24x1", "80 x24"} {
		if _, _, err := ParseSize(bad); err == nil {
			t.Errorf("ParseSize(%q) accepted", bad)
		}
	}
}

// Chunks in order make the cast; a missing chunk is a gap, reported, and
// a replayed duplicate is read once.
func TestAssemble(t *testing.T) {
	h := string(AppendHeader(nil, Header{Width: 90, Height: 20}))
	ev := func(t float64, d string) string { return string(AppendEvent(nil, Event{t, Output, d})) }
	c, gaps, err := Assemble([]Chunk{{0, h + ev(0.1, "a")}, {1, ev(0.2, "b")}, {1, ev(0.2, "b")}, {3, ev(0.4, "d")}})
	if err != nil {
		t.Fatal(err)
	}
	if c.Output() != "abd" || len(gaps) != 1 || gaps[0] != 2 || c.Header.Width != 90 {
		t.Fatalf("output %q gaps %v header %+v", c.Output(), gaps, c.Header)
	}
	// Chunk 0 lost: a default header stands in, and the gap says so.
	c, gaps, err = Assemble([]Chunk{{1, ev(0.2, "b")}})
	if err != nil || c.Output() != "b" || len(gaps) != 1 || c.Header.Width != 80 {
		t.Fatalf("without chunk 0: %v %v %+v", err, gaps, c)
	}
}

// FuzzDecode: the decoder never panics, and what it accepts encodes to a
// cast it reads back the same.
func FuzzDecode(f *testing.F) {
	f.Add([]byte(`{"version":2,"width":80,"height":24,"timestamp":1}` + "\n[0.5, \"o\", \"hi\\r\\n\"]\n[0.6, \"r\", \"10x5\"]\n"))
	f.Add([]byte(`{"version":2}` + "\n\n[1e3, \"i\", \"\\u001b[A\"]\n"))
	f.Add([]byte(`{"version":2,"width":1}` + "\n[0, \"o\", \"\\ud800\"]\n"))
	f.Add([]byte("[1, \"o\", \"x\"]\n"))
	f.Fuzz(func(t *testing.T, in []byte) {
		c, err := Decode(bytes.NewReader(in))
		if err != nil {
			return
		}
		var b bytes.Buffer
		if err := c.Encode(&b); err != nil {
			t.Fatal(err)
		}
		back, err := Decode(&b)
		if err != nil {
			t.Fatalf("re-decode of our own encoding: %v\n%s", err, b.String())
		}
		if len(back.Events) != len(c.Events) || back.Header != c.Header {
			t.Fatalf("round trip changed the cast: %+v vs %+v", back, c)
		}
		for i := range c.Events {
			if back.Events[i].Code != c.Events[i].Code || back.Events[i].Data != c.Events[i].Data {
				t.Fatalf("event %d changed: %+v vs %+v", i, back.Events[i], c.Events[i])
			}
		}
	})
}
