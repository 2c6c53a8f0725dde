package embedded

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tollgate-dev/tollgate/host/audit"
	"github.com/tollgate-dev/tollgate/host/audit/audittest"
	"github.com/tollgate-dev/tollgate/host/audit/schema"
)

// openStore opens a store on dir (a new temporary one when ""), failing
// with a pointer to `make deps` when the library is missing.
func openStore(t testing.TB, dir string) *Store {
	t.Helper()
	if dir == "" {
		dir = t.TempDir()
	}
	s, err := Open(context.Background(), Options{Dir: dir, Database: "audit"})
	if errors.Is(err, ErrNoLibrary) {
		t.Fatalf("libchdb.so is needed for these tests: run `make deps` (.ci/install-chdb): %v", err)
	}
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

var query = audittest.Query

func TestSchemaAppliesTwice(t *testing.T) {
	dir := t.TempDir()
	s := openStore(t, dir)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = openStore(t, dir) // idempotent: every statement again, the version once
	audittest.CheckSchema(t, s, schema.Version)
}

func TestOneStorePerProcess(t *testing.T) {
	openStore(t, "")
	if _, err := Open(context.Background(), Options{Dir: t.TempDir()}); err == nil {
		t.Fatal("a second store opened while the first is open")
	}
}

func TestQueryIsReadOnly(t *testing.T) {
	s := openStore(t, "")
	for _, q := range []string{"INSERT INTO events (seq) VALUES (1)", "DROP TABLE events", "SELECTX 1", "  optimize table events",
		"SELECT 1; DROP TABLE events", "SELECT 1; SELECT 2;", "/* x */ SET readonly = 0"} {
		if _, _, err := s.Query(context.Background(), q); err == nil {
			t.Errorf("%q ran", q)
		}
	}
	// readonly=1 is in force: not even a setting may change.
	if _, _, err := s.Query(context.Background(), "SELECT 1 SETTINGS max_threads = 1"); err == nil || !strings.Contains(err.Error(), "readonly") {
		t.Errorf("readonly=1 not in force: %v", err)
	}
	if _, _, err := s.Query(context.Background(), "SELECT * FROM events WHERE seq = 1 -- trailing comment"); err != nil {
		t.Errorf("trailing comment: %v", err)
	}
	if got := query(t, s, "SELECT count() FROM system.tables WHERE database = 'audit' AND name = 'events'"); got[0][0] != "1" {
		t.Fatal("events was dropped")
	}
	// Placeholders become literals, and a ? inside a literal stays.
	got := query(t, s, "SELECT ?, ?, '?', ?", "it's ; \\ x", 42, time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC))
	if want := [][]string{{"it's ; \\ x", "42", "?", "2026-01-02T03:04:05Z"}}; !reflect.DeepEqual(got, want) {
		t.Errorf("bound = %q, want %q", got, want)
	}
}

func TestRoundTripAndReplay(t *testing.T) {
	s := openStore(t, "")
	ctx := context.Background()
	batch, bare := audittest.RoundTripBatch()
	if err := s.Insert(ctx, batch); err != nil {
		t.Fatal(err)
	}
	if err := s.Insert(ctx, batch); err != nil { // a replay of the whole batch
		t.Fatal(err)
	}
	if n := query(t, s, "SELECT count() FROM events FINAL")[0][0]; n != strconv.Itoa(len(batch)) {
		t.Fatalf("FINAL shows %s rows, want %d (each event once)", n, len(batch))
	}
	n := query(t, s, "SELECT count() FROM events")[0][0]
	t.Logf("without FINAL the table holds %s rows for %d events (deduplication token)", n, len(batch))
	if n != strconv.Itoa(len(batch)) {
		t.Errorf("the replay was stored again: %s rows, want %d", n, len(batch))
	}

	back, err := s.Rows(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	audittest.CheckRoundTrip(t, batch, back, bare)

	// One session through a where clause with a placeholder.
	one, err := s.Rows(ctx, "session_id = toUUID(?)", batch[0].SessionID)
	if err != nil || len(one) != 6 {
		t.Fatalf("Rows(session) = %d rows, %v", len(one), err)
	}

	audittest.CheckSessions(t, s, batch, 3)
}

// A replay the deduplication window does not catch (another batch
// boundary) is still shown once by FINAL.
func TestReplayOtherBatching(t *testing.T) {
	s := openStore(t, "")
	ctx := context.Background()
	rows := audittest.SessionRows(time.Now(), "orders-db", "r", 10)
	if err := s.Insert(ctx, rows); err != nil {
		t.Fatal(err)
	}
	if err := s.Insert(ctx, rows[3:]); err != nil {
		t.Fatal(err)
	}
	if n := query(t, s, "SELECT count() FROM events FINAL")[0][0]; n != "10" {
		t.Fatalf("FINAL shows %s rows, want 10", n)
	}
	got := query(t, s, "SELECT target, closed, last_seq FROM sessions FINAL")
	if want := [][]string{{"orders-db", "1", "10"}}; !reflect.DeepEqual(got, want) {
		t.Fatalf("sessions = %v, want %v", got, want)
	}
}

func TestExampleQueries(t *testing.T) {
	s := openStore(t, "")
	start := time.Now().UTC().Add(-time.Minute)
	if err := s.Insert(context.Background(), audittest.SessionRows(start, "orders-db", "run-42", 9)); err != nil {
		t.Fatal(err)
	}
	audittest.RunExampleQueries(t, s, start)
}

func TestCanceledContext(t *testing.T) {
	s := openStore(t, "")
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := s.Insert(ctx, audittest.SessionRows(time.Now(), "x", "r", 2)); !errors.Is(err, context.Canceled) {
		t.Errorf("Insert on a canceled context: %v", err)
	}
	if _, _, err := s.Query(ctx, "SELECT 1"); !errors.Is(err, context.Canceled) {
		t.Errorf("Query on a canceled context: %v", err)
	}
}

var benchMeasured bool

// BenchmarkEmbeddedInsert inserts 100,000 rows in 10,000-row batches
// through Store.Insert (sessions of 100 rows) and prints the rate. It
// measures once; run it with -benchtime=1x.
func BenchmarkEmbeddedInsert(b *testing.B) {
	if benchMeasured {
		return
	}
	benchMeasured = true
	const total, batch = 100_000, 10_000
	var rows []audit.Row
	start := time.Now().Add(-time.Hour)
	for len(rows) < total {
		rows = append(rows, audittest.SessionRows(start.Add(time.Duration(len(rows))*time.Millisecond), "orders-db", "bench", 100)...)
	}
	s := openStore(b, "")
	ctx := context.Background()
	b.ResetTimer()
	t0 := time.Now()
	for i := 0; i < total; i += batch {
		if err := s.Insert(ctx, rows[i:i+batch]); err != nil {
			b.Fatal(err)
		}
	}
	rate := total / time.Since(t0).Seconds()
	b.StopTimer()
	if got := query(b, s, "SELECT count() FROM events")[0][0]; got != strconv.Itoa(total) {
		b.Fatalf("events holds %s rows, want %d", got, total)
	}
	fmt.Printf("BENCH embedded_insert %.0f rows/s ratio=1.00 vs embedded_insert\n", rate)
	b.ReportMetric(rate, "rows/s")
}

// Attacks made in the store itself (ALTER ... DELETE and UPDATE) each
// show with their own verdict; a request with bytes that are not UTF-8
// comes back exactly.
func TestCheckpointsExposeTamperingInTheStore(t *testing.T) {
	s := openStore(t, "")
	ctx := context.Background()
	audittest.CheckStoreTampering(t, "audit",
		func(rows []audit.Row) error { return s.Insert(ctx, rows) },
		func(sql string) error { _, err := s.c.exec(sql, "TSV"); return err },
		func() ([]audit.Row, error) { return s.Rows(ctx, "") })
}

// Session recordings land in the recordings table and read back whole.
func TestRecordings(t *testing.T) {
	audittest.CheckRecording(t, openStore(t, ""), "audit")
}
