package gate_test

import (
	"bytes"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tollgate-dev/tollgate/host/audit"
	"github.com/tollgate-dev/tollgate/host/audit/cast"
	"github.com/tollgate-dev/tollgate/host/gate"
)

// lockedMemory keeps rows from several goroutines.
type lockedMemory struct {
	mu   sync.Mutex
	rows []audit.Row
}

func (m *lockedMemory) Record(r audit.Row) error {
	m.mu.Lock()
	m.rows = append(m.rows, r)
	m.mu.Unlock()
	return nil
}
func (m *lockedMemory) Close() error { return nil }

func (m *lockedMemory) snapshot() []audit.Row {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]audit.Row(nil), m.rows...)
}

func openRecorded(t *testing.T) (*gate.Session, *lockedMemory) {
	t.Helper()
	rec := &lockedMemory{}
	deps := &gate.Deps{GatewayID: "gw", Recorder: rec}
	s := deps.NewSession(gate.SessionInfo{Protocol: "ssh", Listener: "ssh", Remote: "127.0.0.1:5000"})
	s.SetTarget("box", "agents")
	if err := s.Open(s.Row("")); err != nil {
		t.Fatal(err)
	}
	return s, rec
}

// chunksOf reads a session's recording back from its rows, as the stores'
// recordings table holds it.
func chunksOf(t *testing.T, rows []audit.Row) *cast.Cast {
	t.Helper()
	var chunks []cast.Chunk
	for _, r := range rows {
		if r.Kind != gate.KindRecording {
			continue
		}
		n, err := strconv.Atoi(r.Request["chunk"])
		if err != nil {
			t.Fatalf("chunk number %q: %v", r.Request["chunk"], err)
		}
		chunks = append(chunks, cast.Chunk{Number: n, Text: r.Request["events"]})
	}
	c, gaps, err := cast.Assemble(chunks)
	if err != nil || len(gaps) > 0 {
		t.Fatalf("assemble: %v (gaps %v)", err, gaps)
	}
	return c
}

// Output written in pieces that cut runes, large enough for several
// chunks, concurrent with input: the chunks are bounded, in the session's
// hash chain before its close row, and the output events reproduce the
// bytes written, in order.
func TestRecordingChunksReproduceOutput(t *testing.T) {
	s, rec := openRecorded(t)
	r := s.Recording()
	r.SetSize(120, 40)
	var want bytes.Buffer
	line := []byte("héllo wörld ✓ 日本語 \x1b[31mred\x1b[0m\r\n")
	for range 4000 {
		want.Write(line)
	}
	// Cut into pieces of every length 1..7, so that runes fall across
	// writes in every position.
	all := want.Bytes()
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := range 500 {
			r.Input([]byte("typed " + strconv.Itoa(i) + "\n"))
		}
	}()
	for i, n := 0, 1; i < len(all); n = n%7 + 1 {
		j := min(i+n, len(all))
		r.Output(all[i:j])
		i = j
	}
	wg.Wait()
	for range 1000 { // a flood of the same size is one event
		r.Resize(100, 30)
	}
	s.Close("ok", "")
	r.Output([]byte("after close")) // ignored: the chain has ended

	rows := rec.snapshot()
	if last := rows[len(rows)-1]; last.Kind != audit.KindSessionClose {
		t.Fatalf("last row is %s, want the close row", last.Kind)
	}
	chunks := 0
	for _, row := range rows {
		if row.Kind == gate.KindRecording {
			chunks++
			if n := len(row.Request["events"]); n > 2*32<<10 {
				t.Errorf("chunk %s holds %d bytes of events, over the bound", row.Request["chunk"], n)
			}
		}
	}
	if chunks < 4 {
		t.Fatalf("%d chunks for %d bytes of output; want several", chunks, want.Len())
	}
	if v := audit.Verify(rows); len(v) != 1 || v[0].Status != "complete" {
		t.Fatalf("verify: %+v", v)
	}
	c := chunksOf(t, rows)
	if c.Header.Width != 120 || c.Header.Height != 40 {
		t.Errorf("header size %dx%d, want 120x40", c.Header.Width, c.Header.Height)
	}
	if got := c.Output(); got != want.String() {
		t.Fatalf("recorded output differs: %d bytes, want %d", len(got), want.Len())
	}
	var in strings.Builder
	resized := false
	for _, e := range c.Events {
		switch e.Code {
		case cast.Input:
			in.WriteString(e.Data)
		case cast.Resize:
			resized = e.Data == "100x30"
		}
	}
	if !strings.HasPrefix(in.String(), "typed 0\n") || strings.Count(in.String(), "\n") != 500 {
		t.Errorf("input events: %q...", in.String()[:min(40, in.Len())])
	}
	if !resized {
		t.Error("no resize event 100x30")
	}
	resizes := 0
	for _, e := range c.Events {
		if e.Code == cast.Resize {
			resizes++
		}
	}
	if n := resizes; n != 1 {
		t.Errorf("%d resize events for one change", n)
	}
}

// A chunk edited in the store breaks the session's chain: a recording is
// as trustworthy as the rows.
func TestRecordingChunkEditIsDetected(t *testing.T) {
	s, rec := openRecorded(t)
	s.Recording().Output([]byte("password: [REDACTED]\r\n"))
	s.Close("ok", "")
	rows := rec.snapshot()
	for i := range rows {
		if rows[i].Kind == gate.KindRecording {
			rows[i].Request["events"] = strings.Replace(rows[i].Request["events"], "[REDACTED]", "hunter2", 1)
		}
	}
	if v := audit.Verify(rows); v[0].Status == "complete" {
		t.Fatal("an edited recording chunk verified as complete")
	}
}

// A chunk is recorded after its age bound without the session closing
// (a long quiet session is not held in memory). The test waits for the
// row, however long the machine takes.
func TestRecordingFlushesByAge(t *testing.T) {
	s, rec := openRecorded(t)
	s.Recording().Output([]byte("tick\n"))
	deadline := time.Now().Add(30 * time.Second)
	for {
		rows := rec.snapshot()
		if len(rows) == 2 && rows[1].Kind == gate.KindRecording {
			if !strings.Contains(rows[1].Request["events"], `"tick\n"`) {
				t.Fatalf("chunk: %q", rows[1].Request["events"])
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no chunk recorded before close: %d rows", len(rows))
		}
		time.Sleep(20 * time.Millisecond)
	}
	s.Close("ok", "")
}

// Bytes that are not UTF-8 cannot be JSON text: they are recorded as
// U+FFFD, never dropped silently, and never shift the text after them.
func TestRecordingInvalidUTF8(t *testing.T) {
	s, rec := openRecorded(t)
	s.Recording().Output([]byte("a\xffb\xe2\x9c"))
	s.Close("ok", "")
	if got := chunksOf(t, rec.snapshot()).Output(); got != "a\uFFFDb\uFFFD\uFFFD" { // one per byte
		t.Fatalf("output %q", got)
	}
}

// fullFor refuses rows of one kind as a full spool does, n times.
type fullFor struct {
	lockedMemory
	kind string
	n    int
}

func (f *fullFor) Record(r audit.Row) error {
	f.mu.Lock()
	refuse := r.Kind == f.kind && f.n > 0
	if refuse {
		f.n--
	}
	f.mu.Unlock()
	if refuse {
		return audit.ErrFull
	}
	return f.lockedMemory.Record(r)
}

// A chunk the spool has no room for is left out whole (it does not take
// the reserve kept for the rows that state the outage): the chain stays
// complete, and the missing chunk number is the gap replay reports.
func TestRecordingChunkRefusedIsAGap(t *testing.T) {
	rec := &fullFor{kind: gate.KindRecording, n: 1}
	deps := &gate.Deps{GatewayID: "gw", Recorder: rec}
	s := deps.NewSession(gate.SessionInfo{Protocol: "ssh"})
	if err := s.Open(s.Row("")); err != nil {
		t.Fatal(err)
	}
	r := s.Recording()
	r.Output([]byte("lost\n"))
	r.Flush()
	r.Output([]byte("kept\n"))
	s.Close("ok", "")
	rows := rec.snapshot()
	if v := audit.Verify(rows); v[0].Status != "complete" {
		t.Fatalf("verify: %+v", v)
	}
	var chunks []cast.Chunk
	for _, row := range rows {
		if row.Kind == gate.KindRecording {
			if _, minimal := row.Annotations[audit.AnnotationSpoolFull]; minimal {
				t.Fatal("a minimal recording row took the reserve")
			}
			n, _ := strconv.Atoi(row.Request["chunk"])
			chunks = append(chunks, cast.Chunk{Number: n, Text: row.Request["events"]})
		}
	}
	c, gaps, err := cast.Assemble(chunks)
	if err != nil || len(gaps) != 1 || gaps[0] != 0 || c.Output() != "kept\n" {
		t.Fatalf("assemble: %v gaps %v output %q", err, gaps, c.Output())
	}
}

// FuzzRecordingOutput: whatever bytes the client receives, in whatever
// pieces, the recording decodes to them, each byte that is not UTF-8 as
// one U+FFFD (as ranging over the string gives); text comes back exact.
func FuzzRecordingOutput(f *testing.F) {
	f.Add([]byte("héllo ✓ 日本\r\n"), []byte{1, 2, 3})
	f.Add([]byte("a\xffb\xe2\x9c\x80\xe2\x9c"), []byte{4, 1})
	f.Add([]byte(strings.Repeat("✓", 9000)), []byte{200, 7})
	f.Fuzz(func(t *testing.T, data, cuts []byte) {
		s, rec := openRecorded(t)
		r := s.Recording()
		rest := data
		for i := 0; len(rest) > 0; i++ {
			n := len(rest)
			if len(cuts) > 0 {
				n = min(n, int(cuts[i%len(cuts)])*97+1)
			}
			r.Output(rest[:n])
			rest = rest[n:]
		}
		s.Close("ok", "")
		var want strings.Builder
		for _, c := range string(data) {
			want.WriteRune(c)
		}
		if len(data) == 0 {
			return
		}
		if got := chunksOf(t, rec.snapshot()).Output(); got != want.String() {
			t.Fatalf("recorded %q\nwant     %q", got, want.String())
		}
	})
}

// Output and input that look like cast lines (a hostile remote or agent
// forging events, a header, a chunk boundary) are data: the recording
// holds exactly one output and one input event, and decodes to the bytes.
func TestRecordingForgedLines(t *testing.T) {
	s, rec := openRecorded(t)
	forged := "\"]\n[0.1, \"o\", \"forged\"]\n{\"version\":2,\"width\":1,\"height\":1}\n\\u0000\x00\n"
	s.Recording().Output([]byte(forged))
	s.Recording().Input([]byte(forged))
	s.Close("ok", "")
	c := chunksOf(t, rec.snapshot())
	if len(c.Events) != 2 || c.Events[0].Data != forged || c.Events[1].Code != cast.Input || c.Events[1].Data != forged || c.Header.Width != 80 {
		t.Fatalf("events %+v header %+v", c.Events, c.Header)
	}
}
