package audit_test

import (
	"bufio"
	"context"
	"crypto/ed25519"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tollgate-dev/tollgate/host/audit"
	"github.com/tollgate-dev/tollgate/host/audit/audittest"
	"github.com/tollgate-dev/tollgate/host/audit/spool"
	"github.com/tollgate-dev/tollgate/internal/testenv"
)

// Every attack on the store gets its own verdict, signed or not.
func TestCheckpointsExposeTampering(t *testing.T) {
	pub, priv, _ := ed25519.GenerateKey(nil)
	for _, signed := range []bool{false, true} {
		var key ed25519.PrivateKey
		var o audit.VerifyOptions
		if signed {
			key, o.PublicKey = priv, pub
		}
		tr := audittest.NewTrail(t, "gw-unit", key)
		audittest.CheckVerdicts(t, tr.Rows, o, tr.Want())
		for _, tc := range audittest.Tampers {
			t.Run(tc.Name, func(t *testing.T) {
				want := tr.Want()
				want[tc.Chain(tr)] = tc.Want
				audittest.CheckVerdicts(t, tc.Apply(tr, append([]audit.Row(nil), tr.Rows...)), o, want)
			})
		}
	}
}

// A session rewritten whole, every hash recomputed, passes its own chain
// check; the checkpoint that saw its rows does not.
func TestCheckpointCatchesARewrittenSession(t *testing.T) {
	tr := audittest.NewTrail(t, "gw-unit", nil)
	var rows []audit.Row
	var c audit.SessionChain
	for _, r := range tr.Rows {
		if r.SessionID == tr.Closed {
			if r.Seq == 3 {
				r.Request = map[string]string{"path": "/innocent"}
			}
			c.Seal(&r)
		}
		rows = append(rows, r)
	}
	want := tr.Want()
	want[tr.Closed] = audit.StatusEdited
	audittest.CheckVerdicts(t, rows, audit.VerifyOptions{}, want)
}

func TestCheckpointSignatures(t *testing.T) {
	pub, priv, _ := ed25519.GenerateKey(nil)
	tr := audittest.NewTrail(t, "gw-unit", priv)
	rows := append([]audit.Row(nil), tr.Rows...)
	for i, r := range rows {
		if r.SessionID == tr.Run2 && r.Seq == 1 {
			rows[i].Signature = strings.Repeat("00", 64)
		}
	}
	want := tr.Want()
	want[tr.Run2] = audit.StatusCheckpointBadSig
	audittest.CheckVerdicts(t, rows, audit.VerifyOptions{PublicKey: pub}, want)

	unsigned := audittest.NewTrail(t, "gw-unit", nil)
	for _, f := range audit.VerifyWith(unsigned.Rows, audit.VerifyOptions{PublicKey: pub}) {
		if f.SessionID == unsigned.Run1 && f.Status != audit.StatusCheckpointUnsigned {
			t.Errorf("unsigned checkpoints with a key required: %+v", f)
		}
	}
}

// The file store keeps every row exactly as hashed, bytes that are not
// UTF-8 included, and verify reads them back exactly.
func TestFileStoreRoundTripsTheTrail(t *testing.T) {
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
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var back []audit.Row
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if !json.Valid(sc.Bytes()) {
			t.Fatalf("not JSON: %q", sc.Bytes())
		}
		r, err := audit.DecodeFileLine(sc.Bytes())
		if err != nil {
			t.Fatal(err)
		}
		back = append(back, r)
	}
	audittest.CheckVerdicts(t, back, audit.VerifyOptions{}, tr.Want())

	// raw_row cannot say something else than the columns an analyst reads.
	b, _ := os.ReadFile(path)
	for _, line := range strings.Split(string(b), "\n") {
		if strings.Contains(line, `"raw_row"`) {
			forged := strings.Replace(line, `broken`, `benign`, 1)
			if _, err := audit.DecodeFileLine([]byte(forged)); err == nil {
				t.Error("a raw_row that disagrees with the columns was accepted")
			}
		}
	}
}

// Checkpoints come on their own every interval, only when rows came in.
func TestCheckpointInterval(t *testing.T) {
	var rec memRec
	cp := audit.Checkpointing(&rec, audit.CheckpointOptions{GatewayID: "gw", Interval: 20 * time.Millisecond})
	time.Sleep(100 * time.Millisecond)
	if n := rec.count(audit.KindCheckpoint); n != 1 {
		t.Fatalf("%d checkpoints with nothing recorded, want the start one", n)
	}
	for _, r := range audittest.SessionRows(time.Now(), "t", "r", 3) {
		cp.Record(r)
	}
	deadline := time.Now().Add(5 * time.Second)
	for rec.count(audit.KindCheckpoint) < 2 {
		if time.Now().After(deadline) {
			t.Fatal("no checkpoint after rows came in")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err := cp.Close(); err != nil {
		t.Fatal(err)
	}
	if n := rec.count(audit.KindCheckpoint); n != 3 {
		t.Fatalf("%d checkpoints, want start, interval, final", n)
	}
}

// Checkpoints travel with the rows: through the spool while ClickHouse is
// down, and into it once it is back, where the whole trail verifies.
func TestCheckpointsSurviveAClickHouseOutage(t *testing.T) {
	ch := testenv.StartClickHouse(t)
	store := openStore(t, ch.Addr())
	spoolDir := t.TempDir()
	p, err := audit.OpenPipeline(audit.PipelineOptions{Store: store, Spool: spool.Options{Dir: spoolDir},
		BatchRows: 100, BatchAge: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	ch.Kill()
	cp := audit.Checkpointing(p, audit.CheckpointOptions{GatewayID: "gw-outage", Interval: time.Hour})
	var sessions []string
	for i := range 3 {
		rows := audittest.SessionRows(time.Now(), "orders-db", "run-outage", 4+i)
		sessions = append(sessions, rows[0].SessionID)
		for _, r := range rows {
			if err := cp.Record(r); err != nil {
				t.Fatal(err)
			}
		}
		if err := cp.Checkpoint(); err != nil {
			t.Fatal(err)
		}
	}
	if err := cp.Close(); err != nil {
		t.Fatal(err)
	}
	// The next start replays what the spool still holds.
	ch.Restart(t)
	p, err = audit.OpenPipeline(audit.PipelineOptions{Store: openStore(t, ch.Addr()), Spool: spool.Options{Dir: spoolDir}})
	if err != nil {
		t.Fatal(err)
	}
	defer p.CloseContext(contextWithTimeout(t, 30*time.Second))
	check := openStore(t, ch.Addr())
	defer check.Close()
	want := map[string]string{cp.Run(): audit.StatusComplete}
	for _, s := range sessions {
		want[s] = audit.StatusComplete
	}
	var problems []string
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		back, err := check.Rows(context.Background(), "")
		if err != nil {
			t.Fatal(err)
		}
		if problems = audittest.Verdicts(back, audit.VerifyOptions{}, want); len(problems) == 0 {
			return
		}
	}
	t.Fatal(problems)
}

// A session no checkpoint lists, inside a cleanly ended run, was added
// afterwards; unless another run under the same gateway ID still runs.
func TestUncheckpointedSession(t *testing.T) {
	// A second process under the same gateway ID, running all along.
	var other memRec
	audit.Checkpointing(&other, audit.CheckpointOptions{GatewayID: "gw-unit", Interval: time.Hour})
	tr := audittest.NewTrail(t, "gw-unit", nil)
	var run1 []audit.Row
	for _, r := range tr.Rows {
		if r.SessionID != tr.Run2 && r.SessionID != tr.Killed {
			run1 = append(run1, r)
		}
	}
	// Forged inside run 1's window: same gateway, times between its start
	// and its final checkpoint.
	var start, end time.Time
	for _, r := range run1 {
		if r.SessionID == tr.Run1 && r.Seq == 1 {
			start = r.Time
		}
		if r.SessionID == tr.Run1 && r.Status == audit.CheckpointFinal {
			end = r.Time
		}
	}
	forged := audittest.SessionRows(start, "orders-db", "run-1", 2)
	var c audit.SessionChain
	for i := range forged {
		forged[i].GatewayID, forged[i].Time = "gw-unit", start.Add(end.Sub(start)/2)
		c.Seal(&forged[i])
	}
	want := tr.Want()
	delete(want, tr.Run2)
	delete(want, tr.Killed)
	want[forged[0].SessionID] = audit.StatusUncheckpointed
	audittest.CheckVerdicts(t, append(run1, forged...), audit.VerifyOptions{}, want)

	// Run 2 started after the rows: it changes nothing.
	want = tr.Want()
	want[forged[0].SessionID] = audit.StatusUncheckpointed
	audittest.CheckVerdicts(t, append(append([]audit.Row(nil), tr.Rows...), forged...), audit.VerifyOptions{}, want)

	// The other process, open since before the rows, may yet list them.
	want = tr.Want()
	want[forged[0].SessionID] = audit.StatusComplete
	all := append(append(append([]audit.Row(nil), tr.Rows...), forged...), other.Rows()...)
	audittest.CheckVerdicts(t, all, audit.VerifyOptions{}, want)
}
