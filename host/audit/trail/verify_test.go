package trail_test

import (
	"crypto/ed25519"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tollgate-dev/tollgate/host/audit"
	"github.com/tollgate-dev/tollgate/host/audit/audittest"
	"github.com/tollgate-dev/tollgate/host/audit/trail"
)

// The database is the one name in the SQL text: anything but a plain
// identifier is refused, not quoted.
func TestNewChecksTheDatabaseName(t *testing.T) {
	for _, name := range []string{"tollgate", "_a1", "Audit_2026", strings.Repeat("a", 128)} {
		if _, err := trail.New(nil, name); err != nil {
			t.Errorf("New(%q): %v", name, err)
		}
	}
	for _, name := range []string{"", "1db", "db.events", "db; DROP TABLE events", "db`", "`db`", "db--", "db name", "tölgate", "db\x00", strings.Repeat("a", 129)} {
		if _, err := trail.New(nil, name); !errors.Is(err, trail.ErrDatabaseName) {
			t.Errorf("New(%q) = %v, want ErrDatabaseName", name, err)
		}
	}
}

func TestVerifyReport(t *testing.T) {
	_, key, _ := ed25519.GenerateKey(nil)
	pub := key.Public().(ed25519.PublicKey)
	tr := audittest.NewTrail(t, "gw-report", key)
	findings := func(rep trail.Report) map[string]string {
		m := map[string]string{}
		for _, f := range rep.Findings {
			m[f.SessionID] = f.Status
		}
		return m
	}
	rep := trail.Verify(tr.Rows, trail.Scope{}, pub)
	if rep.Tampered || rep.MinimalRows != 0 || len(rep.Findings) != len(tr.Want()) {
		t.Errorf("untouched: %+v", rep)
	}
	for id, want := range tr.Want() {
		if got := findings(rep)[id]; got != want {
			t.Errorf("untouched: %s is %q, want %q", id, got, want)
		}
	}
	for _, tc := range audittest.Tampers {
		rep := trail.Verify(tc.Apply(tr, append([]audit.Row(nil), tr.Rows...)), trail.Scope{}, pub)
		if got := findings(rep)[tc.Chain(tr)]; !rep.Tampered || got != tc.Want {
			t.Errorf("%s: tampered %v, %q; want %q", tc.Name, rep.Tampered, got, tc.Want)
		}
	}
	// A wrong key is tampering.
	_, other, _ := ed25519.GenerateKey(nil)
	if rep := trail.Verify(tr.Rows, trail.Scope{}, other.Public().(ed25519.PublicKey)); !rep.Tampered {
		t.Error("a wrong key passes")
	}

	// Minimal rows are counted, and are not tampering.
	rows := audittest.SessionRows(time.Now(), "db", "run", 4)
	var c audit.SessionChain
	for i := range rows {
		if i == 1 || i == 2 {
			rows[i].Annotations = map[string]string{audit.AnnotationSpoolFull: "1"}
		}
		c.Seal(&rows[i])
	}
	rep = trail.Verify(rows, trail.Scope{}, nil)
	if rep.Tampered || rep.MinimalRows != 2 || rep.MinimalSessions != 1 {
		t.Errorf("minimal rows: %+v", rep)
	}

	// In the future nothing opened: no session, and the runs whose last
	// checkpoint is older are read but not shown.
	since := time.Now().Add(time.Hour)
	rep = trail.Verify(trail.OpenedSince(append([]audit.Row(nil), tr.Rows...), since), trail.Scope{Since: since}, pub)
	if rep.Tampered || len(rep.Findings) != 0 {
		t.Errorf("since an hour ahead: %+v", rep)
	}
	// One session: only it and the checkpoint chains.
	rep = trail.Verify(tr.Rows, trail.Scope{Session: tr.Closed}, pub)
	if rep.Tampered || findings(rep)[tr.Closed] != audit.StatusComplete || findings(rep)[tr.Run1] != audit.StatusComplete {
		t.Errorf("one session: %+v", rep)
	}
}

// A session is kept whole or not at all; checkpoints always.
func TestOpenedSince(t *testing.T) {
	t0 := time.Date(2026, 12, 7, 21, 0, 0, 0, time.UTC)
	rows := []audit.Row{
		{SessionID: "a", Seq: 1, Time: t0},
		{SessionID: "b", Seq: 1, Time: t0.Add(2 * time.Minute)},
		{SessionID: "a", Seq: 2, Time: t0.Add(3 * time.Minute)},
		{SessionID: "run", Seq: 1, Time: t0, Kind: audit.KindCheckpoint},
		{SessionID: "b", Seq: 2, Time: t0.Add(4 * time.Minute)},
	}
	var got []string
	for _, r := range trail.OpenedSince(append([]audit.Row(nil), rows...), t0.Add(time.Minute)) {
		got = append(got, r.SessionID)
	}
	if want := "b run b"; strings.Join(got, " ") != want {
		t.Errorf("OpenedSince = %v, want %s", got, want)
	}
	if got := trail.OpenedSince(rows, time.Time{}); len(got) != len(rows) {
		t.Errorf("OpenedSince(zero) kept %d of %d rows", len(got), len(rows))
	}
}

// ReadFile reads the file store: one session and every checkpoint, and
// names the line that is not a row.
func TestReadFile(t *testing.T) {
	tr := audittest.NewTrail(t, "gw-file", nil)
	path := filepath.Join(t.TempDir(), "audit.jsonl")
	rec, err := audit.OpenFile(path)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range tr.Rows {
		if err := rec.Record(r); err != nil {
			t.Fatal(err)
		}
	}
	if err := rec.Close(); err != nil {
		t.Fatal(err)
	}
	all, err := trail.ReadFile(path, "")
	if err != nil || len(all) != len(tr.Rows) {
		t.Fatalf("ReadFile: %d rows of %d, %v", len(all), len(tr.Rows), err)
	}
	one, err := trail.ReadFile(path, tr.Closed)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range one {
		if r.SessionID != tr.Closed && r.Kind != audit.KindCheckpoint {
			t.Errorf("ReadFile(%s) read a row of %s", tr.Closed, r.SessionID)
		}
	}
	if rep := trail.Verify(one, trail.Scope{Session: tr.Closed}, nil); rep.Tampered {
		t.Errorf("one session from the file: %+v", rep)
	}
	f, _ := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	f.WriteString("not json\n")
	f.Close()
	if _, err := trail.ReadFile(path, ""); err == nil || !strings.Contains(err.Error(), path+":"+itoa(len(tr.Rows)+1)+": not an audit row") {
		t.Errorf("a bad line: %v", err)
	}
}

func itoa(n int) string { return strconv.Itoa(n) }
