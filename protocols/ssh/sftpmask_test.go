package ssh

import (
	"bufio"
	"bytes"
	"fmt"
	"math"
	"strings"
	"testing"
)

// replaceSpans builds what a masking plugin returns: orig with each span
// replaced by repl(span).
func replaceSpans(orig []byte, spans [][2]int, repl func([]byte) []byte) []byte {
	var out []byte
	prev := 0
	for _, s := range spans {
		out = append(out, orig[prev:s[0]]...)
		out = append(out, repl(orig[s[0]:s[1]])...)
		prev = s[1]
	}
	return append(out, orig[prev:]...)
}

var sftpStrategies = map[string]func([]byte) []byte{
	"redact":  func([]byte) []byte { return []byte("[REDACTED:aws-access-key]") },
	"hash":    func([]byte) []byte { return []byte("hash:0123456789abcdef") },
	"partial": func(v []byte) []byte { return append(bytes.Repeat([]byte{'*'}, len(v)-4), v[len(v)-4:]...) },
	"deleted": func([]byte) []byte { return nil },
}

// Whatever a strategy does to lengths, the ranges found are the secrets
// (partial: all but the four bytes it keeps), and the overwritten text
// keeps the original's length with every other byte.
func TestSFTPChanged(t *testing.T) {
	const key, secret, token = "AKIAZ7XQ4WRT2LMN5KPB", "q8Xr2LmN4vB7kP1sT9wZ3yH6jD0fG5aC8eR2uV4x", "ghp_R7tK2mQ9xL4vN8bW3zJ6pF1sH5dG0cY2aE7u"
	text := "[default]\naws_access_key_id = " + key + "\naws_secret_access_key = " + secret + "\n" + strings.Repeat("filler ", 9) + "token=" + token
	orig := []byte(text)
	var spans [][2]int
	for _, s := range []string{key, secret, token} {
		i := strings.Index(text, s)
		spans = append(spans, [2]int{i, i + len(s)})
	}
	for name, repl := range sftpStrategies {
		got := sftpChanged(orig, replaceSpans(orig, spans, repl))
		want := spans
		if name == "partial" {
			want = nil
			for _, s := range spans {
				want = append(want, [2]int{s[0], s[1] - 4})
			}
		}
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("%s: changed %v, want %v", name, got, want)
		}
		out := sftpOverwrite(append([]byte(nil), orig...), got)
		if len(out) != len(orig) || bytes.Contains(out, []byte(secret[:20])) || bytes.Contains(out, []byte(key[4:])) || bytes.Contains(out, []byte(token[4:20])) {
			t.Errorf("%s: %q", name, out)
		}
	}
	if got := sftpChanged(orig, orig); got != nil {
		t.Errorf("unchanged: %v", got)
	}
	// Text the chain adds (nothing of orig missing) changes no byte.
	if got := sftpChanged([]byte("abc"), []byte("abc!")); got != nil {
		t.Errorf("appended: %v", got)
	}
}

// The read-ahead: the widened read, and what of its answer the client
// gets (bytes with a checked window after them, the rest at the end of
// the file).
func TestSFTPWidenTrim(t *testing.T) {
	const W = sftpMaskWindow
	if s, n := sftpWiden(0, 32<<10); s != 0 || n != 32<<10+W {
		t.Errorf("widen at 0: %d %d", s, n)
	}
	if s, n := sftpWiden(100<<10, 32<<10); s != 100<<10-W || n != 32<<10+2*W {
		t.Errorf("widen at 100K: %d %d", s, n)
	}
	if _, n := sftpWiden(1<<40, 1<<31); n != sftpMaxRead {
		t.Errorf("huge read: %d", n)
	}
	for _, tc := range []struct {
		name     string
		off      uint64
		n        uint32
		got      int // bytes of the widened answer
		from, to int
		ok       bool
	}{
		{"full", 100 << 10, 32 << 10, 32<<10 + 2*W, W, W + 32<<10, true},
		// Short: the bytes without a full window after them wait for the
		// client's next read, which ends within the window (the end).
		{"file ends in the window after", 100 << 10, 32 << 10, 32<<10 + W + 5, W, 32<<10 + 5, true},
		{"file ends in the read", 100 << 10, 32 << 10, W + 20<<10, W, W + 20<<10 - W, true},
		{"the last bytes", 100 << 10, 32 << 10, W + 100, W, W + 100, true},
		{"end of file", 100 << 10, 32 << 10, W, 0, 0, false},
		{"past the end", 100 << 10, 32 << 10, 10, 0, 0, false},
		{"at the top of the offsets", math.MaxUint64 - 10, 32 << 10, W + 10, W, W + 10, true},
	} {
		s, asked := sftpWiden(tc.off, tc.n)
		from, to, ok := sftpTrim(tc.off, tc.n, s, asked, tc.got)
		if ok != tc.ok || (ok && (from != tc.from || to != tc.to)) {
			t.Errorf("%s: [%d, %d) %v, want [%d, %d) %v", tc.name, from, to, ok, tc.from, tc.to, tc.ok)
		}
	}
}

// Any text and any spans, replaced by any strategy: no panic, the ranges
// are ordered and inside orig, and every byte of a span is changed.
// Secrets, text and replacements use disjoint alphabets, so a secret
// cannot be mistaken for the text around it; where the text between
// spans is at least an anchor long, the ranges are the spans exactly.
func FuzzSFTPChanged(f *testing.F) {
	f.Add([]byte("some text here and more text there"), []byte{5, 20, 3, 30}, uint8(0))
	f.Add([]byte("x"), []byte{0, 1}, uint8(3))
	f.Add(bytes.Repeat([]byte("abcdefghij"), 50), []byte{10, 100, 200, 40, 0, 1}, uint8(2))
	f.Fuzz(func(t *testing.T, text, cuts []byte, strategy uint8) {
		if len(text) > 4<<10 {
			return
		}
		orig := make([]byte, len(text))
		for k, c := range text {
			orig[k] = 'a' + c%26 // the text: lower case
		}
		var spans [][2]int
		pos := 0
		for k := 0; k+1 < len(cuts); k += 2 {
			s := pos + int(cuts[k])
			e := s + 1 + int(cuts[k+1])
			if e > len(orig) {
				break
			}
			for x := s; x < e; x++ {
				orig[x] = 'A' + orig[x]%26 // a secret: upper case
			}
			spans = append(spans, [2]int{s, e})
			pos = e
		}
		repl := []func([]byte) []byte{
			func([]byte) []byte { return []byte("[REDACTED:x]") },
			func([]byte) []byte { return []byte("#:0123456789") },
			func(v []byte) []byte { return bytes.Repeat([]byte{'*'}, len(v)) },
			func([]byte) []byte { return nil },
		}[strategy%4]
		masked := replaceSpans(orig, spans, repl)
		got := sftpChanged(orig, masked)
		covered := make([]bool, len(orig))
		prev := 0
		for _, r := range got {
			if r[0] < prev || r[1] <= r[0] || r[1] > len(orig) {
				t.Fatalf("ranges %v of %d bytes", got, len(orig))
			}
			for x := r[0]; x < r[1]; x++ {
				covered[x] = true
			}
			prev = r[1]
		}
		exact := true
		prev = 0
		for _, s := range spans {
			for x := s[0]; x < s[1]; x++ {
				if !covered[x] {
					t.Fatalf("byte %d of span %v kept: ranges %v", x, s, got)
				}
			}
			exact = exact && (s[0] == 0 || s[0]-prev >= minAnchor)
			prev = s[1]
		}
		exact = exact && (len(spans) == 0 || len(orig)-prev >= minAnchor || len(orig) == prev)
		if exact && fmt.Sprint(got) != fmt.Sprint(spans) && !(len(got) == 0 && len(spans) == 0) {
			t.Fatalf("ranges %v, spans %v", got, spans)
		}
	})
}

// With masking, file contents never pass unchecked: a DATA answer to no
// widened read becomes a failure, and a read id reused while pending
// ends the session.
func TestSFTPMaskUnmatched(t *testing.T) {
	a := newSFTPAudit(func(string, sftpOp, *sftpFile, string) {})
	a.mask = func(string, []byte) ([][2]int, string) { return nil, "" }
	for _, pkt := range [][]byte{
		sftpPkt(sftpData, uint32(9), "SECRET"), // no request
		sftpPkt(sftpData, uint32(1), "SECRET"), // answers an open
	} {
		if pkt[8] == 1 {
			if _, err := a.request(sftpPacketOf(t, sftpPkt(sftpOpen, uint32(1), "/x", uint32(1), uint32(0)))); err != nil {
				t.Fatal(err)
			}
		}
		out, err := a.response(sftpPacketOf(t, pkt))
		if err != nil || out == nil || out[4] != sftpStatus || bytes.Contains(out, []byte("SECRET")) {
			t.Errorf("answer %x: %x %v", pkt, out, err)
		}
	}
	read := sftpPkt(sftpRead, uint32(2), "h", uint64(0), uint32(10))
	if _, err := a.request(sftpPacketOf(t, read)); err != nil {
		t.Fatal(err)
	}
	if _, err := a.request(sftpPacketOf(t, read)); err == nil {
		t.Error("a reused read id was accepted")
	}
}

func sftpPacketOf(t *testing.T, raw []byte) sftpPacket {
	t.Helper()
	_, p, err := readSFTPPacket(bufio.NewReader(bytes.NewReader(raw)))
	if err != nil {
		t.Fatal(err)
	}
	return p
}
