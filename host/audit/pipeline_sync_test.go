package audit_test

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tollgate-dev/tollgate/host/audit"
	"github.com/tollgate-dev/tollgate/host/audit/clickhouse"
	"github.com/tollgate-dev/tollgate/host/audit/spool"
	"github.com/tollgate-dev/tollgate/internal/testenv"
)

// downStore is a real ClickHouse store towards a server that is not
// running: rows stay in the spool, which is what these tests read.
func downStore(t testing.TB) audit.Store {
	t.Helper()
	ch := testenv.NewClickHouse(t) // a free port, nothing started on it
	s, err := clickhouse.Connect(clickhouse.Options{Addrs: []string{ch.Addr()}, Database: "audit_test"})
	if err != nil {
		t.Fatalf("connect (lazily) to a stopped ClickHouse: %v", err)
	}
	return s
}

// spooledIDs reads the event IDs in a spool directory, as a restarted
// gateway would replay them.
func spooledIDs(t *testing.T, dir string) map[string]int {
	t.Helper()
	sp, err := spool.Open(spool.Options{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	defer sp.Close()
	ids := map[string]int{}
	err = sp.Replay(func(_ spool.Pos, payload []byte) error {
		r, err := audit.DecodeRow(payload)
		if err != nil {
			return err
		}
		ids[r.EventID]++
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return ids
}

// Concurrent synced callers get their rows fsynced, and share fsyncs:
// the counters say how many rows each fsync covered.
func TestPipelineSyncedRowsAreDurableAndGrouped(t *testing.T) {
	dir := t.TempDir()
	p, err := audit.OpenPipeline(audit.PipelineOptions{Store: downStore(t), Spool: spool.Options{Dir: dir}})
	if err != nil {
		t.Fatal(err)
	}
	const workers, each = 8, 100
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sid := newSession()
			for i, r := range rowsFor(sid, each) {
				r.EventID = fmt.Sprintf("w%d-%d", w, i)
				tk, err := p.RecordTicket(r)
				if err == nil && tk == 0 {
					err = fmt.Errorf("ticket zero for an accepted row")
				}
				if err == nil {
					err = p.WaitDurable(context.Background(), tk)
				}
				if err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	st := p.Stats()
	if st.Fsyncs == 0 || st.Fsyncs > workers*each || st.FsyncedRows < workers*each {
		t.Fatalf("fsyncs %d covering %d rows, for %d synced rows", st.Fsyncs, st.FsyncedRows, workers*each)
	}
	t.Logf("%d synced rows from %d goroutines: %d fsyncs, %.1f rows per fsync",
		workers*each, workers, st.Fsyncs, float64(st.FsyncedRows)/float64(st.Fsyncs))
	// A spooled row waits for nobody: no fsync of the writer's own.
	before := p.Stats().Fsyncs
	if err := p.Record(rowsFor(newSession(), 1)[0]); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the spooled row in the spool", func() bool { return p.Stats().Spooled == workers*each+1 })
	if after := p.Stats().Fsyncs; after != before {
		t.Fatalf("a spooled row cost the writer an fsync (%d → %d)", before, after)
	}
	// The store is down: Close gives up shipping at once, rows stay spooled.
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	_ = p.CloseContext(ctx)
	if _, err := p.RecordTicket(rowsFor(newSession(), 1)[0]); err == nil {
		t.Fatal("RecordTicket after Close succeeded")
	}
	if n := len(spooledIDs(t, dir)); n != workers*each+1 {
		t.Fatalf("spool holds %d rows after close, want %d", n, workers*each+1)
	}
}

// TestPipelineSyncedChild is the child process of the SIGKILL test: it
// records synced rows from several goroutines and prints each row's ID
// once WaitDurable returned for it, until it is killed.
func TestPipelineSyncedChild(t *testing.T) {
	dir := os.Getenv("PIPELINE_SYNCED_SPOOL")
	if dir == "" {
		return // only meaningful as the child process
	}
	p, err := audit.OpenPipeline(audit.PipelineOptions{Store: downStore(t), Spool: spool.Options{Dir: dir}})
	if err != nil {
		t.Fatal(err)
	}
	var out sync.Mutex
	for w := range 8 {
		go func() {
			for i := 0; ; i++ {
				r := rowsFor(newSession(), 1)[0]
				r.EventID = fmt.Sprintf("w%d-%d", w, i)
				tk, err := p.RecordTicket(r)
				if err == nil {
					err = p.WaitDurable(context.Background(), tk)
				}
				if err != nil {
					fmt.Println("ERROR", err)
					return
				}
				out.Lock()
				fmt.Println("DURABLE", r.EventID)
				out.Unlock()
			}
		}()
	}
	time.Sleep(time.Hour)
}

// Every row WaitDurable confirmed is in the spool after a SIGKILL, which
// comes while rows are being recorded (the rows the pipeline had not
// confirmed may or may not be there).
func TestPipelineSyncedRowsSurviveSIGKILL(t *testing.T) {
	dir := t.TempDir()
	cmd := exec.Command(os.Args[0], "-test.run", "^TestPipelineSyncedChild$", "-test.v")
	cmd.Env = append(os.Environ(), "PIPELINE_SYNCED_SPOOL="+dir)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	confirmed := map[string]bool{}
	sc := bufio.NewScanner(out)
	for len(confirmed) < 2000 && sc.Scan() {
		line := sc.Text()
		if id, ok := strings.CutPrefix(line, "DURABLE "); ok {
			confirmed[id] = true
		} else if strings.HasPrefix(line, "ERROR") {
			t.Fatalf("child: %s", line)
		}
	}
	cmd.Process.Kill() // mid-stream: the child's goroutines are recording
	for sc.Scan() {    // what it printed before it died was confirmed too
		if id, ok := strings.CutPrefix(sc.Text(), "DURABLE "); ok {
			confirmed[id] = true
		}
	}
	cmd.Wait()
	if len(confirmed) < 2000 {
		t.Fatalf("child confirmed only %d rows before it ended", len(confirmed))
	}
	ids := spooledIDs(t, dir)
	missing := 0
	for id := range confirmed {
		if ids[id] != 1 {
			missing++
		}
	}
	if missing > 0 {
		t.Fatalf("%d of %d confirmed rows not in the spool exactly once after SIGKILL", missing, len(confirmed))
	}
	t.Logf("%d confirmed rows, %d in the spool", len(confirmed), len(ids))
}
