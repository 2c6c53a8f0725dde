package audittest

import (
	"crypto/ed25519"
	"fmt"
	"log/slog"
	"maps"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tollgate-dev/tollgate/host/audit"
	"github.com/tollgate-dev/tollgate/internal/testenv"
)

// Trail is what two runs of one gateway left, checkpoints included: run 1
// shut down cleanly, run 2 was killed.
type Trail struct {
	Rows       []audit.Row
	Gateway    string
	Run1, Run2 string
	// Sessions: Closed and Other are closed in run 1, UTF8 is closed and
	// its request holds bytes that are not UTF-8, OpenAtStop was open when
	// run 1 shut down, Killed was open when run 2 was killed, with a row
	// after run 2's last checkpoint.
	Closed, Other, UTF8, OpenAtStop, Killed string
}

// Want is the verdict Verify must give each chain of an untouched trail.
func (tr *Trail) Want() map[string]string {
	return map[string]string{
		tr.Closed: audit.StatusComplete, tr.Other: audit.StatusComplete, tr.UTF8: audit.StatusComplete,
		tr.OpenAtStop: audit.StatusOpen, tr.Killed: audit.StatusOpen,
		tr.Run1: audit.StatusComplete, tr.Run2: audit.StatusOpen,
	}
}

// NewTrail records a trail through audit.Checkpointing, signed with key
// when it is set. gateway names the gateway (distinct trails can share a
// store).
func NewTrail(t testing.TB, gateway string, key ed25519.PrivateKey) *Trail {
	t.Helper()
	state := filepath.Join(t.TempDir(), "checkpoint.json")
	tr := &Trail{Gateway: gateway}
	mem := &testenv.Recorder{}
	var inner audit.Recorder = mem
	if key != nil {
		inner = audit.Signing(mem, key)
	}
	opts := audit.CheckpointOptions{GatewayID: gateway, Key: key, Interval: time.Hour, StatePath: state,
		Log: slog.New(slog.DiscardHandler)}
	session := func(n int) []audit.Row {
		rows := SessionRows(time.Now(), "orders-db", "run-1", n)
		var c audit.SessionChain
		for i := range rows {
			rows[i].GatewayID = gateway
			c.Seal(&rows[i])
		}
		return rows
	}
	record := func(rec audit.Recorder, rows []audit.Row) {
		for _, r := range rows {
			if err := rec.Record(r); err != nil {
				t.Fatal(err)
			}
		}
	}

	cp := audit.Checkpointing(inner, opts)
	tr.Run1 = cp.Run()
	closed, other := session(6), session(5)
	tr.Closed, tr.Other = closed[0].SessionID, other[0].SessionID
	record(cp, closed)
	if err := cp.Checkpoint(); err != nil {
		t.Fatal(err)
	}
	utf := session(4)
	utf[1].Request["query"] = "SELECT '\xff\xfe broken \xc3'"
	utf[1].Claims["esc"] = "\x80"
	var c audit.SessionChain
	for i := range utf {
		c.Seal(&utf[i])
	}
	tr.UTF8 = utf[0].SessionID
	record(cp, other)
	record(cp, utf)
	if err := cp.Checkpoint(); err != nil {
		t.Fatal(err)
	}
	open := session(6)[:3]
	tr.OpenAtStop = open[0].SessionID
	record(cp, open)
	if err := cp.Close(); err != nil {
		t.Fatal(err)
	}

	cp2 := audit.Checkpointing(inner, opts)
	tr.Run2 = cp2.Run()
	killed := session(8)
	tr.Killed = killed[0].SessionID
	record(cp2, killed[:4])
	if err := cp2.Checkpoint(); err != nil {
		t.Fatal(err)
	}
	record(cp2, killed[4:5])
	// Run 2 is never closed: it was killed. (Its ticker runs for an hour
	// and is garbage with the test.)
	tr.Rows = mem.Rows()
	return tr
}

// Tamper is one attack on a trail's store, as a change to its rows and as
// the SQL that makes it on a ClickHouse store ({db} is the database).
type Tamper struct {
	Name string
	// Chain is the chain whose verdict changes, and Want that verdict.
	Chain func(*Trail) string
	Want  string
	// Apply changes rows (a copy); SQL does it in a store.
	Apply func(*Trail, []audit.Row) []audit.Row
	SQL   func(*Trail) string
}

// Tampers are the attacks every store must expose, each with its own
// verdict.
var Tampers = []Tamper{
	{
		Name: "delete the tail of a session", Want: audit.StatusTruncated,
		Chain: func(tr *Trail) string { return tr.Closed },
		Apply: func(tr *Trail, rows []audit.Row) []audit.Row {
			return drop(rows, func(r audit.Row) bool { return r.SessionID == tr.Closed && r.Seq >= 5 })
		},
		SQL: func(tr *Trail) string {
			return fmt.Sprintf("ALTER TABLE {db}.events DELETE WHERE session_id = toUUID('%s') AND seq >= 5", tr.Closed)
		},
	},
	{
		Name: "delete a whole session", Want: audit.StatusDeleted,
		Chain: func(tr *Trail) string { return tr.Other },
		Apply: func(tr *Trail, rows []audit.Row) []audit.Row {
			return drop(rows, func(r audit.Row) bool { return r.SessionID == tr.Other })
		},
		SQL: func(tr *Trail) string {
			return fmt.Sprintf("ALTER TABLE {db}.events DELETE WHERE session_id = toUUID('%s')", tr.Other)
		},
	},
	{
		Name: "delete a checkpoint", Want: audit.StatusCheckpointGap,
		Chain: func(tr *Trail) string { return tr.Run1 },
		Apply: func(tr *Trail, rows []audit.Row) []audit.Row {
			return drop(rows, func(r audit.Row) bool { return r.SessionID == tr.Run1 && r.Seq == 2 })
		},
		SQL: func(tr *Trail) string {
			return fmt.Sprintf("ALTER TABLE {db}.events DELETE WHERE session_id = toUUID('%s') AND seq = 2", tr.Run1)
		},
	},
	{
		Name: "delete a run's last checkpoint", Want: audit.StatusCheckpointMissing,
		Chain: func(tr *Trail) string { return tr.Run1 },
		Apply: func(tr *Trail, rows []audit.Row) []audit.Row {
			return drop(rows, func(r audit.Row) bool { return r.SessionID == tr.Run1 && r.Status == audit.CheckpointFinal })
		},
		SQL: func(tr *Trail) string {
			return fmt.Sprintf("ALTER TABLE {db}.events DELETE WHERE session_id = toUUID('%s') AND status = '%s'", tr.Run1, audit.CheckpointFinal)
		},
	},
	{
		Name: "edit a checkpoint", Want: audit.StatusCheckpointEdited,
		Chain: func(tr *Trail) string { return tr.Run2 },
		Apply: func(tr *Trail, rows []audit.Row) []audit.Row {
			for i, r := range rows {
				if r.SessionID == tr.Run2 && r.Seq == 2 {
					rows[i].Status = audit.CheckpointFinal
				}
			}
			return rows
		},
		SQL: func(tr *Trail) string {
			return fmt.Sprintf("ALTER TABLE {db}.events UPDATE status = '%s' WHERE session_id = toUUID('%s') AND seq = 2", audit.CheckpointFinal, tr.Run2)
		},
	},
}

func drop(rows []audit.Row, f func(audit.Row) bool) []audit.Row {
	out := rows[:0:0]
	for _, r := range rows {
		if !f(r) {
			out = append(out, r)
		}
	}
	return out
}

// CheckVerdicts checks that Verify of rows gives each chain in want its
// verdict, and that nothing else is reported as tampered.
func CheckVerdicts(t testing.TB, rows []audit.Row, o audit.VerifyOptions, want map[string]string) {
	t.Helper()
	for _, p := range Verdicts(rows, o, want) {
		t.Error(p)
	}
}

// Verdicts is CheckVerdicts' list of what differs.
func Verdicts(rows []audit.Row, o audit.VerifyOptions, want map[string]string) []string {
	want = maps.Clone(want)
	var out []string
	for _, f := range audit.VerifyWith(rows, o) {
		w, ok := want[f.SessionID]
		switch {
		case ok && f.Status != w:
			out = append(out, fmt.Sprintf("%s: %s (%s), want %s", f.SessionID, f.Status, f.Detail, w))
		case !ok && audit.Tampered(f.Status):
			out = append(out, fmt.Sprintf("%s: %s (%s), want no tampering", f.SessionID, f.Status, f.Detail))
		}
		delete(want, f.SessionID)
	}
	for id, w := range want {
		out = append(out, fmt.Sprintf("%s: no finding, want %s", id, w))
	}
	return out
}

// CheckStoreTampering records an untouched trail and one trail per
// Tamper into a store, makes each attack with its SQL (db names the
// database), and waits until the store's rows give every chain its
// verdict: mutations are asynchronous on ClickHouse.
func CheckStoreTampering(t *testing.T, db string, insert func([]audit.Row) error, exec func(string) error, read func() ([]audit.Row, error)) {
	t.Helper()
	clean := NewTrail(t, "gw-clean", nil)
	rows := clean.Rows
	want := clean.Want()
	var trails []*Trail
	for i, tc := range Tampers {
		tr := NewTrail(t, fmt.Sprintf("gw-tamper-%d", i), nil)
		trails = append(trails, tr)
		rows = append(rows, tr.Rows...)
		maps.Copy(want, tr.Want())
		want[tc.Chain(tr)] = tc.Want
	}
	if err := insert(rows); err != nil {
		t.Fatal(err)
	}
	back, err := read()
	if err != nil {
		t.Fatal(err)
	}
	untouched := clean.Want()
	for _, tr := range trails {
		maps.Copy(untouched, tr.Want())
	}
	CheckVerdicts(t, back, audit.VerifyOptions{}, untouched)
	for i, tc := range Tampers {
		if err := exec(strings.ReplaceAll(tc.SQL(trails[i]), "{db}", db)); err != nil {
			t.Fatalf("%s: %v", tc.Name, err)
		}
	}
	var problems []string
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		if back, err = read(); err != nil {
			t.Fatal(err)
		}
		if problems = Verdicts(back, audit.VerifyOptions{}, want); len(problems) == 0 {
			return
		}
	}
	for _, p := range problems {
		t.Error(p)
	}
}
