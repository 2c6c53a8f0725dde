package trail

import (
	"bufio"
	"context"
	"crypto/ed25519"
	"fmt"
	"os"
	"time"

	"github.com/tollgate-dev/tollgate/host/audit"
)

// Scope is the part of the trail a verification covers: one session, the
// sessions opened since a time, or (zero) all of it. Every checkpoint is
// read whatever the scope: the part is checked against them.
type Scope struct {
	Session string
	Since   time.Time
}

// VerifyRows reads the rows the scope covers, with every gateway run's
// checkpoint chain.
func (t *Trail) VerifyRows(ctx context.Context, s Scope) ([]audit.Row, error) {
	if s.Since.IsZero() && s.Session == "" {
		rows, err := t.r.SessionRows(ctx, "")
		if err != nil {
			return nil, fmt.Errorf("trail: rows: %w", err)
		}
		return rows, nil
	}
	rows, err := t.CheckpointRows(ctx)
	if err != nil {
		return nil, err
	}
	if s.Session != "" {
		rs, err := t.r.SessionRows(ctx, s.Session)
		if err != nil {
			return nil, fmt.Errorf("trail: session %s: %w", s.Session, err)
		}
		return append(rows, OpenedSince(rs, s.Since)...), nil
	}
	// The sessions table knows when each session opened; their rows are
	// then read session by session (a one-session read is a point lookup).
	ids, err := t.SessionsOpenedSince(ctx, s.Since)
	if err != nil {
		return nil, err
	}
	for _, id := range ids {
		rs, err := t.r.SessionRows(ctx, id)
		if err != nil {
			return nil, fmt.Errorf("trail: session %s: %w", id, err)
		}
		rows = append(rows, rs...)
	}
	return rows, nil
}

// CheckpointRows reads every gateway run's checkpoint chain, run by run
// (the admin API reads rows by chain).
func (t *Trail) CheckpointRows(ctx context.Context) ([]audit.Row, error) {
	runs, err := t.CheckpointRuns(ctx)
	if err != nil {
		return nil, err
	}
	var rows []audit.Row
	for _, run := range runs {
		rs, err := t.r.SessionRows(ctx, run)
		if err != nil {
			return nil, fmt.Errorf("trail: checkpoints of run %s: %w", run, err)
		}
		rows = append(rows, rs...)
	}
	return rows, nil
}

// OpenedSince keeps the rows of sessions whose first row is at or after
// since (all rows when since is zero), and every checkpoint. A session is
// checked whole or not at all: cutting it at a time would look like a
// gap. rows is filtered in place.
func OpenedSince(rows []audit.Row, since time.Time) []audit.Row {
	if since.IsZero() {
		return rows
	}
	first := map[string]time.Time{}
	for _, r := range rows {
		if t, ok := first[r.SessionID]; !ok || r.Time.Before(t) {
			first[r.SessionID] = r.Time
		}
	}
	out := rows[:0]
	for _, r := range rows {
		// Checkpoints are kept whole: the part is checked against them.
		if r.Kind == audit.KindCheckpoint || !first[r.SessionID].Before(since) {
			out = append(out, r)
		}
	}
	return out
}

// ReadFile reads the file store's JSON lines: one session's rows and
// every checkpoint, or every row for session "".
func ReadFile(path, session string) ([]audit.Row, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("trail: %w", err)
	}
	defer f.Close()
	var rows []audit.Row
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 16<<20)
	for line := 1; sc.Scan(); line++ {
		r, err := audit.DecodeFileLine(sc.Bytes())
		if err != nil {
			return nil, fmt.Errorf("trail: %s:%d: not an audit row: %w", path, line, err)
		}
		if session == "" || r.SessionID == session || r.Kind == audit.KindCheckpoint {
			rows = append(rows, r)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("trail: %s: %w", path, err)
	}
	return rows, nil
}

// Report is a verification's outcome, as verify shows it.
type Report struct {
	// Findings are the chains to show, in the order audit.VerifyWith
	// gives them: with a Since, a run's checkpoint chain whose last
	// checkpoint is older is read for its links but not shown.
	Findings []audit.Finding
	// Tampered: some finding shows tampering (audit.Tampered).
	Tampered bool
	// MinimalRows were recorded in minimal form because the spool was
	// full, in MinimalSessions chains: an outage the trail states, not
	// tampering.
	MinimalRows, MinimalSessions int
}

// Verify checks rows (as VerifyRows or ReadFile and OpenedSince read
// them for s) and, with key, every close row's and checkpoint's
// signature.
func Verify(rows []audit.Row, s Scope, key ed25519.PublicKey) Report {
	o := audit.VerifyOptions{PublicKey: key}
	switch {
	case s.Session != "":
		o.InScope = func(sid string, _ time.Time, _ time.Duration) bool { return sid == s.Session }
	case !s.Since.IsZero():
		// A session is listed at most an interval after its first row:
		// one first listed later than that past since opened after it.
		o.InScope = func(_ string, listedAt time.Time, interval time.Duration) bool {
			return !listedAt.Before(s.Since.Add(interval + time.Second))
		}
	}
	lastCheckpoint := map[string]time.Time{}
	for _, r := range rows {
		if r.Kind == audit.KindCheckpoint && r.Time.After(lastCheckpoint[r.SessionID]) {
			lastCheckpoint[r.SessionID] = r.Time
		}
	}
	var rep Report
	for _, f := range audit.VerifyWith(rows, o) {
		if f.Minimal > 0 {
			rep.MinimalRows += f.Minimal
			rep.MinimalSessions++
		}
		if last, ok := lastCheckpoint[f.SessionID]; f.Checkpoints && ok && !s.Since.IsZero() && last.Before(s.Since) {
			continue
		}
		rep.Findings = append(rep.Findings, f)
		rep.Tampered = rep.Tampered || audit.Tampered(f.Status)
	}
	return rep
}
