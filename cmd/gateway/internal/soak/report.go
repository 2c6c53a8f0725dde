package soak

import (
	"fmt"
	"io"
	"slices"
	"strings"
	"time"
)

// Rows is what the audit store holds per marker: Final as analysts read it
// (FROM events FINAL), Stored without FINAL (a replayed batch shows here
// until ClickHouse merges it away).
type Rows struct {
	Final, Stored map[string]int
}

// Window is a span of the soak (a fault and its recovery, or the quiet
// time before the first), for reporting answers against rows.
type Window struct {
	Name       string
	Start, End time.Time
	// Repaired is where recovery counts from (the kill or stop of a
	// process, or the repair of a fault clients cannot see coming back);
	// the recovery is from then to the first request sent after it and
	// served, on the slower protocol. Zero: nothing to recover from.
	Repaired time.Time
	Note     string
}

// Recovery is the time from w.Repaired to the first request sent since
// and served (OK), on the protocol that took longer (a protocol with no
// such request in the results is left out).
func (w Window) Recovery(results []Result) time.Duration {
	if w.Repaired.IsZero() {
		return 0
	}
	first := map[string]time.Time{}
	for _, r := range results {
		if r.Outcome == OK && !r.Sent.Before(w.Repaired) && r.Marker != "" {
			if f, ok := first[r.Proto]; !ok || r.At.Before(f) {
				first[r.Proto] = r.At
			}
		}
	}
	var d time.Duration
	for _, f := range first {
		d = max(d, f.Sub(w.Repaired))
	}
	return d
}

// Tally is the reconciliation of one set of results with the rows.
type Tally struct {
	Sent, OK, Refused, NoAnswer int
	// Answered (OK + Refused) with exactly one row, with none (lost), and
	// with more than one in the analyst view.
	Matched, Missing, Duplicated int
	// Stored copies beyond one (without FINAL): replays FINAL hides.
	StoredExtra int
	// NoAnswer requests that nonetheless have a row (they ran), and with
	// more than one.
	NoAnswerWithRow, NoAnswerDuplicated int
	// Fatal: PostgreSQL statements answered by a FATAL (the session
	// ended), counted in NoAnswer; FatalWithRow of them have their row.
	Fatal, FatalWithRow int
	Unmasked            int // OK postgres results carrying the raw secret
	MissingMarkers      []Result
}

// Reconcile matches every result with its rows.
func Reconcile(results []Result, rows Rows) Tally {
	var t Tally
	for _, r := range results {
		if r.Marker == "" {
			continue // a failed login: no action, no marker
		}
		t.Sent++
		n, stored := rows.Final[r.Marker], rows.Stored[r.Marker]
		if stored > 1 {
			t.StoredExtra += stored - 1
		}
		switch r.Outcome {
		case OK, Refused:
			if r.Outcome == OK {
				t.OK++
				if r.Proto == "postgres" && !r.Masked {
					t.Unmasked++
				}
			} else {
				t.Refused++
			}
			switch {
			case n == 1:
				t.Matched++
			case n == 0:
				t.Missing++
				t.MissingMarkers = append(t.MissingMarkers, r)
			default:
				t.Duplicated++
			}
		case NoAnswer:
			t.NoAnswer++
			if strings.HasPrefix(r.Detail, "FATAL") {
				t.Fatal++
				if n >= 1 {
					t.FatalWithRow++
				}
			}
			if n >= 1 {
				t.NoAnswerWithRow++
			}
			if n > 1 {
				t.NoAnswerDuplicated++
			}
		}
	}
	return t
}

// Answered is OK + Refused.
func (t Tally) Answered() int { return t.OK + t.Refused }

// Rows is the number of answered actions found in the analyst view.
func (t Tally) Rows() int { return t.Matched + t.Duplicated }

// In returns the results answered (or failed) within w.
func In(results []Result, w Window) []Result {
	var out []Result
	for _, r := range results {
		if !r.At.Before(w.Start) && r.At.Before(w.End) {
			out = append(out, r)
		}
	}
	return out
}

// Latencies per protocol, of answered requests.
type Latencies struct {
	N                  int
	P50, P99, P999, Mx time.Duration
}

// LatencyOf computes the percentiles of proto's answered requests.
func LatencyOf(results []Result, proto string) Latencies {
	var d []time.Duration
	for _, r := range results {
		if r.Proto == proto && r.Outcome != NoAnswer && r.Marker != "" {
			d = append(d, r.Latency())
		}
	}
	if len(d) == 0 {
		return Latencies{}
	}
	slices.Sort(d)
	q := func(p float64) time.Duration { return d[min(len(d)-1, int(p*float64(len(d))))] }
	return Latencies{N: len(d), P50: q(0.50), P99: q(0.99), P999: q(0.999), Mx: d[len(d)-1]}
}

// Sample is one reading of a gateway process.
type Sample struct {
	At         time.Duration // since the soak started
	Gateway    string
	RSS        int64 // bytes, from /proc
	Heap       int64 // bytes of live heap objects (the admin /metrics)
	Goroutines int64
	SpoolBytes int64
}

// PrintReport writes the figures: BENCH lines per protocol, the windows'
// table, and the samples over time.
func PrintReport(w io.Writer, name string, elapsed time.Duration, results []Result, rows Rows, windows []Window, samples []Sample, pluginErrors int) Tally {
	all := Reconcile(results, rows)
	for _, proto := range []string{"postgres", "http"} {
		l := LatencyOf(results, proto)
		fmt.Fprintf(w, "BENCH soak/%s/%s %.0f req/s p50=%s p99=%s p999=%s max=%s n=%d\n", name, proto,
			float64(l.N)/elapsed.Seconds(), l.P50.Round(time.Microsecond), l.P99.Round(time.Microsecond),
			l.P999.Round(time.Microsecond), l.Mx.Round(time.Millisecond), l.N)
	}
	var maxRSS, maxHeap, maxG int64
	for _, s := range samples {
		maxRSS, maxHeap, maxG = max(maxRSS, s.RSS), max(maxHeap, s.Heap), max(maxG, s.Goroutines)
	}
	fmt.Fprintf(w, "BENCH soak/%s/gateway max_rss=%dMiB max_heap=%dMiB max_goroutines=%d plugin_errors=%d\n", name, maxRSS>>20, maxHeap>>20, maxG, pluginErrors)
	fmt.Fprintf(w, "BENCH soak/%s/audit answered=%d rows=%d missing=%d duplicated=%d stored_extra=%d no_answer=%d no_answer_with_row=%d pg_fatal=%d pg_fatal_with_row=%d unmasked=%d\n",
		name, all.Answered(), all.Rows(), all.Missing, all.Duplicated, all.StoredExtra, all.NoAnswer, all.NoAnswerWithRow, all.Fatal, all.FatalWithRow, all.Unmasked)

	fmt.Fprintf(w, "\n| window | answered (ok+refused) | rows | missing | dup | client errors (no answer) | recovery | note |\n|---|---|---|---|---|---|---|---|\n")
	for _, win := range windows {
		t := Reconcile(In(results, win), rows)
		rec := "-"
		if d := win.Recovery(results); d > 0 {
			rec = d.Round(time.Millisecond).String()
		}
		fmt.Fprintf(w, "| %s | %d (%d+%d) | %d | %d | %d | %d | %s | %s |\n", win.Name, t.Answered(), t.OK, t.Refused, t.Rows(), t.Missing, t.Duplicated, t.NoAnswer, rec, win.Note)
	}
	fmt.Fprintf(w, "| **all** | %d (%d+%d) | %d | %d | %d | %d | | |\n", all.Answered(), all.OK, all.Refused, all.Rows(), all.Missing, all.Duplicated, all.NoAnswer)

	fmt.Fprintf(w, "\n| t | gateway | RSS MiB | heap MiB | goroutines | spool KiB |\n|---|---|---|---|---|---|\n")
	step := max(1, len(samples)/24) // about two dozen lines whatever the length
	for i, s := range samples {
		if i%step == 0 || i == len(samples)-1 {
			fmt.Fprintf(w, "| %s | %s | %d | %d | %d | %d |\n", s.At.Round(time.Second), s.Gateway, s.RSS>>20, s.Heap>>20, s.Goroutines, s.SpoolBytes>>10)
		}
	}
	return all
}
