package audit_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tollgate-dev/tollgate/host/audit"
	"github.com/tollgate-dev/tollgate/host/audit/clickhouse"
	"github.com/tollgate-dev/tollgate/host/audit/spool"
	"github.com/tollgate-dev/tollgate/internal/testenv"
)

func openStore(t testing.TB, addr string) *clickhouse.Store {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s, err := clickhouse.Open(ctx, clickhouse.Options{Addrs: []string{addr}, Database: "audit_test"})
	if err != nil {
		t.Fatalf("open store: %v", err)
	}
	return s
}

// distinctEvents counts the events of a session as an analyst sees them.
func distinctEvents(t testing.TB, s *clickhouse.Store, session string) (total, distinct int) {
	t.Helper()
	_, rows, err := s.Query(context.Background(),
		"SELECT count(), uniqExact(event_id) FROM audit_test.events FINAL WHERE session_id = toUUID('"+session+"')")
	if err != nil {
		t.Fatal(err)
	}
	total, _ = strconv.Atoi(rows[0][0])
	distinct, _ = strconv.Atoi(rows[0][1])
	return total, distinct
}

func rowsFor(session string, n int) []audit.Row {
	var c audit.SessionChain
	out := make([]audit.Row, n)
	for i := range out {
		r := audit.Row{EventID: fmt.Sprintf("%s-%012x", session[:23], i), Time: time.Now(), GatewayID: "gw", SessionID: session,
			Seq: uint64(i + 1), Protocol: "http", Target: "orders", Kind: "http.request", Subject: "agent",
			Request: map[string]string{"method": "GET", "path": "/x/" + strconv.Itoa(i)}, Status: "200"}
		c.Seal(&r)
		out[i] = r
	}
	return out
}

func newSession() string {
	return fmt.Sprintf("%08x-0000-4000-8000-%012x", time.Now().UnixNano()&0xffffffff, time.Now().UnixNano()&0xffffffffffff)
}

func TestPipelineShipsEveryRowOnceThroughAClickHouseCrash(t *testing.T) {
	ch := testenv.StartClickHouse(t)
	store := openStore(t, ch.Addr())
	p, err := audit.OpenPipeline(audit.PipelineOptions{Store: store, Spool: spool.Options{Dir: t.TempDir()},
		BatchRows: 5000, BatchAge: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	sid := newSession()
	rows := rowsFor(sid, 100_000)
	for i, r := range rows {
		if i == 40_000 {
			ch.Kill() // mid-load: inserts fail, rows wait in the spool
		}
		if i == 60_000 {
			ch.Restart(t)
		}
		if err := p.Record(r); err != nil {
			t.Fatalf("Record %d: %v", i, err)
		}
	}
	if err := p.CloseContext(contextWithTimeout(t, 60*time.Second)); err != nil {
		t.Fatal(err)
	}
	check := openStore(t, ch.Addr())
	defer check.Close()
	total, distinct := distinctEvents(t, check, sid)
	if total != len(rows) || distinct != len(rows) {
		t.Fatalf("analyst view: %d rows, %d distinct, want %d each", total, distinct, len(rows))
	}
}

func contextWithTimeout(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// The child half of TestPipelineSurvivesSIGKILL: records rows towards a
// store that is down, reports when they are in the spool, and waits to be
// killed.
func TestPipelineChildRecordsAndWaits(t *testing.T) {
	dir, addr, sid := os.Getenv("PIPELINE_CHILD_SPOOL"), os.Getenv("PIPELINE_CHILD_CH"), os.Getenv("PIPELINE_CHILD_SESSION")
	if dir == "" {
		return // only meaningful as the child process
	}
	store := openStore(t, addr)
	p, err := audit.OpenPipeline(audit.PipelineOptions{Store: store, Spool: spool.Options{Dir: dir, Sync: spool.SyncAlways},
		BatchRows: 1000, BatchAge: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range rowsFor(sid, 5000) {
		if err := p.Record(r); err != nil {
			t.Fatal(err)
		}
	}
	for p.Stats().Spooled < 5000 {
		time.Sleep(10 * time.Millisecond)
	}
	fmt.Println("SPOOLED")
	time.Sleep(time.Hour)
}

func TestPipelineSurvivesSIGKILL(t *testing.T) {
	ch := testenv.StartClickHouse(t)
	openStore(t, ch.Addr()).Close() // schema in place
	dir, sid := t.TempDir(), newSession()
	// The child's batches are held back (BatchAge one hour, 1000-row
	// batches shipped only when full), so most rows are only spooled when
	// it dies.
	cmd := exec.Command(os.Args[0], "-test.run", "^TestPipelineChildRecordsAndWaits$", "-test.v")
	cmd.Env = append(os.Environ(), "PIPELINE_CHILD_SPOOL="+dir, "PIPELINE_CHILD_CH="+ch.Addr(), "PIPELINE_CHILD_SESSION="+sid)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 4096)
	var seen strings.Builder
	for !strings.Contains(seen.String(), "SPOOLED") {
		n, err := out.Read(buf)
		if err != nil {
			t.Fatalf("child ended early: %v\n%s", err, seen.String())
		}
		seen.Write(buf[:n])
	}
	cmd.Process.Kill()
	cmd.Wait()

	store := openStore(t, ch.Addr())
	p, err := audit.OpenPipeline(audit.PipelineOptions{Store: store, Spool: spool.Options{Dir: dir}, BatchAge: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(60 * time.Second)
	check := openStore(t, ch.Addr())
	defer check.Close()
	for {
		total, distinct := distinctEvents(t, check, sid)
		if total == 5000 && distinct == 5000 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after the restart: %d rows (%d distinct), want 5000", total, distinct)
		}
		time.Sleep(100 * time.Millisecond)
	}
	p.Close()
}

func TestPipelineRefusesWhenTheSpoolIsFull(t *testing.T) {
	ch := testenv.StartClickHouse(t)
	store := openStore(t, ch.Addr())
	ch.Kill() // the store is away: everything stays spooled
	dir := t.TempDir()
	p, err := audit.OpenPipeline(audit.PipelineOptions{Store: store, Spool: spool.Options{Dir: dir, MaxBytes: 256 << 10}, BatchAge: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	sid := newSession()
	accepted := 0
	deadline := time.Now().Add(30 * time.Second)
	for _, r := range rowsFor(sid, 100_000) {
		err := p.Record(r)
		if err == audit.ErrFull {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		accepted++
		if accepted%200 == 0 {
			time.Sleep(5 * time.Millisecond) // let the writer fill the spool
		}
		if time.Now().After(deadline) {
			t.Fatal("the spool never filled")
		}
	}
	if accepted == 0 || accepted == 100_000 {
		t.Fatalf("accepted %d rows before refusing", accepted)
	}
	if st := p.Stats(); st.Refused == 0 {
		t.Fatalf("stats: %+v", st)
	}
	if err := p.Admit(); err != audit.ErrFull {
		t.Fatalf("Admit while full = %v", err)
	}
	p.CloseContext(contextWithTimeout(t, 2*time.Second))

	// The store comes back: every accepted row arrives, none is lost.
	ch.Restart(t)
	store = openStore(t, ch.Addr())
	p, err = audit.OpenPipeline(audit.PipelineOptions{Store: store, Spool: spool.Options{Dir: dir, MaxBytes: 256 << 10}, BatchAge: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	check := openStore(t, ch.Addr())
	defer check.Close()
	deadline = time.Now().Add(60 * time.Second)
	for {
		total, _ := distinctEvents(t, check, sid)
		if total == accepted {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after recovery %d rows, want the %d accepted", total, accepted)
		}
		time.Sleep(100 * time.Millisecond)
	}
	p.Close()
}
