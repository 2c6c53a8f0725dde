package trail

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"time"

	"github.com/tollgate-dev/tollgate/host/audit"
	"github.com/tollgate-dev/tollgate/host/audit/cast"
)

// ErrNoRecording is returned by Recording for a session with no recorded
// chunk (not a terminal session, unknown, or its rows not yet stored).
var ErrNoRecording = errors.New("trail: no recording for this session")

// Recording reads a session's terminal recording from the recordings
// table: its chunks in order, as one cast, and the chunk numbers missing
// from it (chunks the spool had no room for). The chunks are rows of the
// session's hash chain: `gateway audit verify --session ID` checks them.
func (t *Trail) Recording(ctx context.Context, session string) (*cast.Cast, []int, error) {
	_, rows, err := t.query(ctx, "recording",
		"SELECT toString(chunk) AS chunk, events FROM "+t.table("recordings")+" FINAL "+
			"WHERE session_id = {session:UUID} ORDER BY seq",
		map[string]string{"session": session})
	if err != nil {
		return nil, nil, err
	}
	if len(rows) == 0 {
		return nil, nil, fmt.Errorf("%w %s", ErrNoRecording, session)
	}
	chunks := make([]cast.Chunk, 0, len(rows))
	for _, r := range rows {
		if len(r) != 2 {
			return nil, nil, fmt.Errorf("trail: recording: %d columns, want 2", len(r))
		}
		n, err := strconv.Atoi(r[0])
		if err != nil {
			return nil, nil, fmt.Errorf("trail: recording: chunk %q: %w", r[0], err)
		}
		chunks = append(chunks, cast.Chunk{Number: n, Text: r[1]})
	}
	c, gaps, err := cast.Assemble(chunks)
	if err != nil {
		return nil, gaps, fmt.Errorf("trail: recording of %s: %w", session, err)
	}
	return c, gaps, nil
}

// MaxRecordedSessions bounds the sessions one RecordedSessions returns.
const MaxRecordedSessions = 500

// RecordedSessions lists the sessions opened at or after since that have
// a recording, newest first (at most MaxRecordedSessions), for the
// console. Columns: session, opened, protocol, target, subject, status.
// GLOBAL IN: on a cluster both tables are Distributed, and a plain IN of
// one in the other is refused (distributed_product_mode).
func (t *Trail) RecordedSessions(ctx context.Context, since time.Time) (Table, error) {
	cols, rows, err := t.query(ctx, "recorded sessions",
		"SELECT toString(session_id) AS session, toString(opened_at) AS opened, protocol, target, subject, "+
			"if(closed = 1, status, 'open') AS status FROM "+t.table("sessions")+" FINAL "+
			"WHERE opened_at >= {since:DateTime} AND session_id GLOBAL IN "+
			"(SELECT session_id FROM "+t.table("recordings")+" WHERE ts >= {since:DateTime}) "+
			"ORDER BY opened_at DESC LIMIT "+itoa(MaxRecordedSessions),
		map[string]string{"since": dateTime(since)})
	return Table{cols, rows}, err
}

// RecordingFromRows assembles a session's recording from its rows (the
// file store, or rows read for verification), as Recording does from the
// recordings table: its session.recording rows in sequence order,
// leaving out those in minimal form.
func RecordingFromRows(rows []audit.Row, session string) (*cast.Cast, []int, error) {
	var recs []audit.Row
	for _, r := range rows {
		if r.SessionID != session || r.Kind != audit.KindRecording {
			continue
		}
		if _, minimal := r.Annotations[audit.AnnotationSpoolFull]; minimal {
			continue
		}
		recs = append(recs, r)
	}
	if len(recs) == 0 {
		return nil, nil, fmt.Errorf("%w %s", ErrNoRecording, session)
	}
	slices.SortFunc(recs, func(a, b audit.Row) int { return cmp.Compare(a.Seq, b.Seq) })
	chunks := make([]cast.Chunk, 0, len(recs))
	for _, r := range recs {
		n, err := strconv.Atoi(r.Request["chunk"])
		if err != nil || n < 0 {
			return nil, nil, fmt.Errorf("trail: recording of %s: row %d: chunk %q is not a number", session, r.Seq, r.Request["chunk"])
		}
		chunks = append(chunks, cast.Chunk{Number: n, Text: r.Request["events"]})
	}
	c, gaps, err := cast.Assemble(chunks)
	if err != nil {
		return nil, gaps, fmt.Errorf("trail: recording of %s: %w", session, err)
	}
	return c, gaps, nil
}
