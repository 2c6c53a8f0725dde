package trail

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Event is one audit row as a tail shows it.
type Event struct {
	EventID   string
	Time      time.Time // with microseconds, UTC
	SessionID string
	Kind      string
	Target    string
	Subject   string
	Method    string // HTTP
	Path      string // HTTP
	SQL       string // PostgreSQL
	Verdict   string
	Status    string
}

// Request is the event's request on one line: method, path and SQL, as
// the protocol recorded them.
func (e Event) Request() string {
	return strings.Join(strings.Fields(e.Method+" "+e.Path+" "+e.SQL), " ")
}

// Filter narrows a tail; an empty field matches every row.
type Filter struct {
	Target    string
	Principal string // the subject
}

// Follower reads the rows that land in the trail, each once, in the
// order of (time, microseconds, session, seq). Not safe for concurrent
// use.
type Follower struct {
	t      *Trail
	filter Filter
	from   time.Time            // the newest row returned so far
	seen   map[string]time.Time // event ID -> time, for rows at or after from - Lag
}

// Lag is how far back each read looks before the newest row returned:
// rows arrive in batches, so a row may land after a newer one was read.
const Lag = 10 * time.Second

// MaxTailRows bounds one read of a Follower.
const MaxTailRows = 10000

// Follow returns a Follower of the rows at or after from that f accepts.
func (t *Trail) Follow(from time.Time, f Filter) *Follower {
	return &Follower{t: t, filter: f, from: from.UTC(), seen: map[string]time.Time{}}
}

// Next returns the rows that landed since the last call and were not
// returned before (at most MaxTailRows), oldest first.
func (f *Follower) Next(ctx context.Context) ([]Event, error) {
	window := f.from.Add(-Lag)
	where := "ts >= {from:DateTime}"
	params := map[string]string{"from": dateTime(window)}
	if f.filter.Target != "" {
		where += " AND target = {target:String}"
		params["target"] = f.filter.Target
	}
	if f.filter.Principal != "" {
		where += " AND subject = {principal:String}"
		params["principal"] = f.filter.Principal
	}
	_, rows, err := f.t.query(ctx, "tail",
		"SELECT toString(event_id), ts, ts_us, toString(session_id), kind, target, subject, "+
			"request_values[indexOf(request_keys, 'method')], request_values[indexOf(request_keys, 'path')], "+
			"request_values[indexOf(request_keys, 'sql')], verdict, status FROM "+f.t.table("events")+" "+
			"WHERE "+where+" ORDER BY ts, ts_us, session_id, seq LIMIT "+itoa(MaxTailRows), params)
	if err != nil {
		return nil, err
	}
	var out []Event
	for _, r := range rows {
		if len(r) != 12 {
			return nil, fmt.Errorf("trail: tail: a row of %d columns, want 12", len(r))
		}
		if _, dup := f.seen[r[0]]; dup {
			continue
		}
		ts, err := time.Parse(time.RFC3339, r[1])
		if err != nil {
			return nil, fmt.Errorf("trail: tail: ts %q: %w", r[1], err)
		}
		us, err := strconv.ParseUint(r[2], 10, 32)
		if err != nil {
			return nil, fmt.Errorf("trail: tail: ts_us %q: %w", r[2], err)
		}
		e := Event{EventID: r[0], Time: ts.Add(time.Duration(us) * time.Microsecond).UTC(), SessionID: r[3], Kind: r[4],
			Target: r[5], Subject: r[6], Method: r[7], Path: r[8], SQL: r[9], Verdict: r[10], Status: r[11]}
		f.seen[e.EventID] = e.Time
		if e.Time.After(f.from) {
			f.from = e.Time
		}
		out = append(out, e)
	}
	// A row older than the next read's window cannot come back.
	next := f.from.Add(-Lag).Truncate(time.Second)
	for id, t := range f.seen {
		if t.Before(next) {
			delete(f.seen, id)
		}
	}
	return out, nil
}

// itoa formats the package's row limits: ClickHouse 18.16 takes a LIMIT
// only as a number in the text, not as an expression.
func itoa(n int) string { return strconv.Itoa(n) }
