package audit_test

import (
	"errors"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/tollgate-dev/tollgate/host/audit"
	"github.com/tollgate-dev/tollgate/host/audit/clickhouse"
	"github.com/tollgate-dev/tollgate/host/audit/spool"
	"github.com/tollgate-dev/tollgate/internal/testenv"
)

// A pipeline opens towards a ClickHouse that is not running yet (its
// port has nothing listening), reports the store unreachable, keeps rows
// in the spool, and once a real server starts on that port applies the
// schema and ships every row exactly once.
func TestPipelineStartsWhileClickHouseIsDown(t *testing.T) {
	ch := testenv.NewClickHouse(t)
	store, err := clickhouse.Connect(clickhouse.Options{Addrs: []string{ch.Addr()}, Database: "audit_test"})
	if err != nil {
		t.Fatalf("Connect must not need the server: %v", err)
	}
	p, err := audit.OpenPipeline(audit.PipelineOptions{Store: store, Spool: spool.Options{Dir: t.TempDir()},
		BatchRows: 100, BatchAge: 50 * time.Millisecond})
	if err != nil {
		t.Fatalf("OpenPipeline with the store down: %v", err)
	}
	waitFor(t, "the store reported unreachable", func() bool { return !p.Stats().StoreReachable })
	sid := newSession()
	rows := rowsFor(sid, 500)
	for i, r := range rows {
		if err := p.Record(r); err != nil {
			t.Fatalf("Record %d while the store is down: %v", i, err)
		}
	}
	waitFor(t, "every row in the spool", func() bool { return p.Stats().Spooled == uint64(len(rows)) })
	if st := p.Stats(); st.StoreReachable || st.StoreOutages != 1 || st.StoreError == "" {
		t.Fatalf("stats during the outage: %+v", st)
	}
	ch.Start(t)
	waitFor(t, "the store reachable again", func() bool { return p.Stats().StoreReachable })
	if err := p.CloseContext(contextWithTimeout(t, 60*time.Second)); err != nil {
		t.Fatal(err)
	}
	check := openStore(t, ch.Addr())
	defer check.Close()
	total, distinct := distinctEvents(t, check, sid)
	if total != len(rows) || distinct != len(rows) {
		t.Fatalf("after the outage: %d rows, %d distinct, want %d each", total, distinct, len(rows))
	}
}

// waitFor polls cond; the deadline only bounds a hung test.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(60 * time.Second); !cond(); {
		if time.Now().After(deadline) {
			t.Fatalf("not reached within 60s: %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// The spool's reserve: once ordinary rows are refused (and Admit says
// so), session open rows and minimal rows are still taken, and close rows
// after the reserve is full; the trail of a session that went through it
// verifies, and counts its minimal rows.
func TestPipelineReserveTakesRefusalAndSessionRows(t *testing.T) {
	ch := testenv.NewClickHouse(t) // never started: the spool only fills
	store, err := clickhouse.Connect(clickhouse.Options{Addrs: []string{ch.Addr()}, Database: "audit_test"})
	if err != nil {
		t.Fatal(err)
	}
	const capBytes = 256 << 10
	p, err := audit.OpenPipeline(audit.PipelineOptions{Store: store,
		Spool: spool.Options{Dir: t.TempDir(), MaxBytes: capBytes, SegmentBytes: 64 << 10}, BatchRows: 100})
	if err != nil {
		t.Fatal(err)
	}
	defer p.CloseContext(contextWithTimeout(t, time.Second))

	sid := newSession()
	var chain audit.SessionChain
	var seq uint64
	var trail []audit.Row
	// record seals as a protocol does: on ErrFull, the minimal form of
	// the row in its place.
	record := func(r audit.Row) error {
		before := chain
		seq++
		r.SessionID, r.Seq, r.EventID, r.GatewayID, r.Protocol = sid, seq, audit.NewID(), "gw", "http"
		chain.Seal(&r)
		err := p.Record(r)
		if errors.Is(err, audit.ErrFull) && !audit.Reserved(&r) {
			m := audit.Minimal(r)
			chain = before
			chain.Seal(&m)
			if err = p.Record(m); err == nil {
				trail = append(trail, m)
				return nil
			}
		}
		if err != nil {
			seq--
			chain = before
			return err
		}
		trail = append(trail, r)
		return nil
	}
	open := audit.Row{Kind: audit.KindSessionOpen, Time: time.Now()}
	if err := record(open); err != nil {
		t.Fatal(err)
	}
	pad := strings.Repeat("x", 2000)
	big := func() audit.Row {
		return audit.Row{Kind: "http.request", Time: time.Now(), Status: "200",
			Request: map[string]string{"method": "GET", "path": "/x", "query": "pad=" + pad}}
	}
	full := 0
	for i := 0; p.Admit() == nil; i++ {
		if i > capBytes {
			t.Fatal("Admit never refused")
		}
		if err := record(big()); err != nil {
			t.Fatalf("a row refused before Admit refused: %v", err)
		}
	}
	// Admit refuses: the refusal's row is the minimal form of a full row.
	for range 5 {
		r := big()
		r.Status, r.Error = "503", "audit_unavailable: the audit trail cannot take more rows right now"
		if err := record(r); err != nil {
			t.Fatalf("a refusal row was not kept while the reserve has room: %v", err)
		}
		if last := trail[len(trail)-1]; last.Annotations[audit.AnnotationSpoolFull] == "" || last.Status != "503" ||
			len(last.Request["query"]) > 256 {
			t.Fatalf("refusal row not minimal: %+v", last)
		}
		full++
	}
	// Ordinary rows that fit no more are refused outright by Record.
	if err := p.Record(big()); !errors.Is(err, audit.ErrFull) {
		t.Fatalf("an ordinary row past the ordinary tier: %v, want ErrFull", err)
	}
	// Refusals fill the reserve; then they too are refused (and leave no
	// trace in the chain), but the close row still has its tier.
	for i := 0; ; i++ {
		if i > capBytes {
			t.Fatal("the reserve never filled")
		}
		r := big()
		r.Status = "503"
		if record(r) != nil {
			break
		}
		full++
	}
	if err := record(audit.CloseRow(trail[0], time.Now(), "done")); err != nil {
		t.Fatalf("close row refused: %v", err)
	}
	if st := p.Stats(); st.Reserved == 0 {
		t.Errorf("Reserved = 0: no row went to the reserve")
	}
	// Rows of the first loop may be minimal too: Admit estimates with the
	// average row, Record with the row itself. A refusal of the last loop
	// may go in whole: the spool's count of bytes can fall a little as
	// the queue moves to disk, and a row that fits is kept whole. Either
	// way every refusal recorded is in the trail.
	minimal, refusals := 0, 0
	for _, r := range trail {
		if r.Annotations[audit.AnnotationSpoolFull] != "" {
			minimal++
		}
		if r.Status == "503" {
			refusals++
		}
	}
	if refusals != full || minimal < 5 {
		t.Errorf("%d refusal rows (%d minimal) in the trail, want the %d recorded, at least 5 of them minimal", refusals, minimal, full)
	}
	fs := audit.Verify(trail)
	if len(fs) != 1 || fs[0].Status != audit.StatusComplete || fs[0].Minimal != minimal {
		t.Fatalf("verify: %+v, want complete with %d minimal rows", fs, minimal)
	}
}

// Rows of large requests queued for a store that is away: the copies kept
// in memory stay bounded by size (the spool holds the rest), and every row
// still ships exactly once when the store comes back.
func TestPipelineQueueBoundedByBytesDuringOutage(t *testing.T) {
	ch := testenv.NewClickHouse(t)
	store, err := clickhouse.Connect(clickhouse.Options{Addrs: []string{ch.Addr()}, Database: "audit_test"})
	if err != nil {
		t.Fatal(err)
	}
	p, err := audit.OpenPipeline(audit.PipelineOptions{Store: store,
		Spool: spool.Options{Dir: t.TempDir(), MaxBytes: 1 << 30}, BatchRows: 10_000, BatchAge: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	sid := newSession()
	rows := rowsFor(sid, 800)
	body := strings.Repeat("x", 100<<10)
	for i := range rows {
		rows[i].Request = map[string]string{"body": body}
		if err := p.Record(rows[i]); err != nil {
			t.Fatalf("Record %d: %v", i, err)
		}
	}
	waitFor(t, "every row in the spool", func() bool { return p.Stats().Spooled == uint64(len(rows)) })
	if q := p.Stats().QueuedBytes; q > 64<<20 {
		t.Fatalf("%d MiB of rows held in memory for a store that is away, want at most 64", q>>20)
	}
	ch.Start(t)
	waitFor(t, "the store reachable again", func() bool { return p.Stats().StoreReachable })
	waitFor(t, "every row shipped", func() bool { return p.Stats().Shipped == uint64(len(rows)) })
	if err := p.CloseContext(contextWithTimeout(t, 120*time.Second)); err != nil {
		t.Fatal(err)
	}
	check := openStore(t, ch.Addr())
	defer check.Close()
	if total, distinct := distinctEvents(t, check, sid); total != len(rows) || distinct != len(rows) {
		t.Fatalf("after the outage: %d rows, %d distinct, want %d each", total, distinct, len(rows))
	}
}

// Rows that reach the writer one at a time (a quiet load) while the store
// is away: the rows queued in memory hold about their own size, not the
// buffer each arrived in. Each writer tick used to queue its rows as a
// slice of the pending buffer, which starts at 64 rows, so a queue of one
// row per tick pinned 64 times its rows (1,500 rows: 44 MiB; 40,000 rows,
// the queue's bound, over a gigabyte) while QueuedBytes said 1 MiB.
func TestPipelineQueueHoldsItsRowsNotTheirBuffers(t *testing.T) {
	ch := testenv.NewClickHouse(t)
	store, err := clickhouse.Connect(clickhouse.Options{Addrs: []string{ch.Addr()}, Database: "audit_test"})
	if err != nil {
		t.Fatal(err)
	}
	p, err := audit.OpenPipeline(audit.PipelineOptions{Store: store,
		Spool: spool.Options{Dir: t.TempDir()}, BatchRows: 10_000, BatchAge: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the store reported unreachable", func() bool { return !p.Stats().StoreReachable })
	sid := newSession()
	rows := rowsFor(sid, 1500)
	before := heapInUse()
	for i := range rows {
		if err := p.Record(rows[i]); err != nil {
			t.Fatalf("Record %d: %v", i, err)
		}
		// One row per writer tick (it appends every 2 ms).
		for deadline := time.Now().Add(60 * time.Second); p.Stats().Spooled != uint64(i+1); {
			if time.Now().After(deadline) {
				t.Fatalf("row %d not in the spool within 60s", i)
			}
			time.Sleep(200 * time.Microsecond)
		}
	}
	held := heapInUse() - before
	st := p.Stats()
	t.Logf("%d rows queued for a store that is away: heap +%d KiB, QueuedBytes %d KiB", len(rows), held>>10, st.QueuedBytes>>10)
	// The queue holds the Rows (456 bytes; their strings and maps were
	// made before the baseline), 0.7 MiB, plus what the retries leave; the
	// bug held 29 KiB a row.
	if held > 20<<20 {
		t.Errorf("%d rows queued one per tick hold %d MiB of heap, want under 20 MiB (the Rows, about 0.5 KiB each)", len(rows), held>>20)
	}
	if st.QueuedBytes < int64(len(rows))*456 {
		t.Errorf("QueuedBytes %d does not count the Rows themselves (%d rows of 456 bytes)", st.QueuedBytes, len(rows))
	}
	ch.Start(t)
	waitFor(t, "every row shipped", func() bool { return p.Stats().Shipped == uint64(len(rows)) })
	if err := p.CloseContext(contextWithTimeout(t, 60*time.Second)); err != nil {
		t.Fatal(err)
	}
	check := openStore(t, ch.Addr())
	defer check.Close()
	if total, distinct := distinctEvents(t, check, sid); total != len(rows) || distinct != len(rows) {
		t.Fatalf("after the outage: %d rows, %d distinct, want %d each", total, distinct, len(rows))
	}
}

// heapInUse is the live heap after a full collection.
func heapInUse() int64 {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return int64(m.HeapAlloc)
}
