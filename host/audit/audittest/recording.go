package audittest

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/tollgate-dev/tollgate/host/audit"
	"github.com/tollgate-dev/tollgate/host/audit/trail"
	"github.com/tollgate-dev/tollgate/host/gate"
)

// RecordingStore is a store both written and read.
type RecordingStore interface {
	Insert(ctx context.Context, rows []audit.Row) error
	trail.Store
}

// rowsOf keeps what a session records.
type rowsOf struct{ rows []audit.Row }

func (r *rowsOf) Record(row audit.Row) error { r.rows = append(r.rows, row); return nil }
func (r *rowsOf) Close() error               { return nil }

// CheckRecording records a session's terminal recording with gate (several
// chunks, a rune cut between writes, a resize), inserts its rows into s
// twice (delivery is at least once), and reads it back through the trail
// from the recordings table of database db: the output is byte for byte
// what was written, once. A chunk in minimal form (spool full) is left out
// and reported as a gap.
func CheckRecording(t *testing.T, s RecordingStore, db string) {
	t.Helper()
	ctx := context.Background()
	mem := &rowsOf{}
	sess := (&gate.Deps{GatewayID: "gw", Recorder: mem}).NewSession(gate.SessionInfo{Protocol: "ssh", Listener: "ssh", Remote: "127.0.0.1:1"})
	sess.SetTarget("box", "agents")
	if err := sess.Open(sess.Row("")); err != nil {
		t.Fatal(err)
	}
	rec := sess.Recording()
	rec.SetSize(132, 43)
	var want strings.Builder
	for i := range 3000 {
		line := "line " + strings.Repeat("é", i%7) + " \x1b[32mok\x1b[0m 'q' \\ \t\r\n"
		want.WriteString(line)
		b := []byte(line)
		rec.Output(b[:6]) // "line é" cut inside é when i%7 > 0
		rec.Output(b[6:])
	}
	rec.Input([]byte("exit\n"))
	rec.Resize(100, 30)
	sess.Close("exit 0", "")
	chunks := 0
	for _, r := range mem.rows {
		if r.Kind == audit.KindRecording {
			chunks++
		}
	}
	if chunks < 3 {
		t.Fatalf("%d chunks; want several", chunks)
	}
	for range 2 {
		if err := s.Insert(ctx, mem.rows); err != nil {
			t.Fatalf("insert: %v", err)
		}
	}
	tr, err := trail.New(trail.FromStore(s), db)
	if err != nil {
		t.Fatal(err)
	}
	c, gaps, err := tr.Recording(ctx, sess.ID())
	if err != nil || len(gaps) > 0 {
		t.Fatalf("recording: %v (gaps %v)", err, gaps)
	}
	if got := c.Output(); got != want.String() {
		t.Fatalf("stored output differs: %d bytes, want %d", len(got), want.Len())
	}
	if c.Header.Width != 132 || c.Header.Height != 43 {
		t.Errorf("header %+v", c.Header)
	}
	if last := c.Events[len(c.Events)-1]; last.Code != "r" || last.Data != "100x30" {
		t.Errorf("last event %+v, want the resize", last)
	}
	tab, err := tr.RecordedSessions(ctx, time.Now().Add(-time.Hour))
	if err != nil || len(tab.Rows) == 0 || tab.Rows[0][0] != sess.ID() || tab.Rows[0][2] != "ssh" {
		t.Fatalf("recorded sessions: %v %v", tab.Rows, err)
	}
	if _, _, err := tr.Recording(ctx, UUID()); err == nil {
		t.Error("a session without recording read as one")
	}

	// A chunk the spool took in minimal form: not in the recordings
	// table, and replay names the gap.
	var minimal []audit.Row
	for _, r := range mem.rows {
		if r.Kind == audit.KindRecording && r.Request["chunk"] == "1" {
			m := audit.Minimal(r)
			m.SessionID = UUID()
			minimal = append(minimal, m)
		}
	}
	other := mem.rows[:0:0]
	for _, r := range mem.rows {
		if r.Kind == audit.KindRecording && r.Request["chunk"] != "1" {
			r.SessionID = minimal[0].SessionID
			other = append(other, r)
		}
	}
	if err := s.Insert(ctx, append(other, minimal...)); err != nil {
		t.Fatal(err)
	}
	if _, gaps, err := tr.Recording(ctx, minimal[0].SessionID); err != nil || len(gaps) != 1 || gaps[0] != 1 {
		t.Fatalf("with chunk 1 minimal: err %v, gaps %v; want gap [1]", err, gaps)
	}
}
