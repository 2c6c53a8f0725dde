package embedded

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/tollgate-dev/tollgate/host/audit"
	"github.com/tollgate-dev/tollgate/host/audit/schema"
)

// session is the shared sessions-table row.
type session = schema.Session

const sessionColumns = schema.SessionColumns

// sessionSelect reads sessionColumns with times as Unix seconds.
const sessionSelect = "toString(session_id), gateway_id, protocol, listener, target, remote_addr, issuer, subject, email, groups, claim_keys, claim_values, toUnixTimestamp(opened_at), opened_us, closed, toUnixTimestamp(closed_at), closed_us, status, duration_us, last_seq"

// upsertSessions rewrites the session rows for the sessions opened or
// closed in rows: read what is stored (FINAL), merge, insert. The caller
// holds the store's lock.
func (s *Store) upsertSessions(rows []audit.Row) error {
	ids, touched := schema.TouchedSessions(rows)
	if len(ids) == 0 {
		return nil
	}
	var in bytes.Buffer
	for i, id := range ids {
		if i > 0 {
			in.WriteString(", ")
		}
		in.WriteString("toUUID(")
		quote(&in, id)
		in.WriteString(")")
	}
	out, err := s.c.exec(fmt.Sprintf("SELECT %s FROM %s.sessions FINAL WHERE session_id IN (%s)", sessionSelect, s.db, in.String()),
		"JSONCompactEachRow")
	if err != nil {
		return err
	}
	byID := map[string]*session{}
	for _, line := range bytes.Split(bytes.TrimSpace(out), []byte("\n")) {
		if len(line) == 0 {
			continue
		}
		var v []json.RawMessage
		if err := json.Unmarshal(line, &v); err != nil || len(v) != 20 {
			return fmt.Errorf("session row %q: %v", line, err)
		}
		var (
			sess           session
			opened, closed int64
		)
		d := decoder{v: v}
		d.str(&sess.SessionID, &sess.GatewayID, &sess.Protocol, &sess.Listener, &sess.Target, &sess.RemoteAddr,
			&sess.Issuer, &sess.Subject, &sess.Email)
		d.arr(&sess.Groups, &sess.ClaimKeys, &sess.ClaimVals)
		d.num(&opened)
		d.num(&sess.OpenedUs)
		d.num(&sess.Closed)
		d.num(&closed)
		d.num(&sess.ClosedUs)
		d.str(&sess.Status)
		d.num(&sess.DurationUs)
		d.num(&sess.LastSeq)
		if d.err != nil {
			return fmt.Errorf("session row %q: %v", line, d.err)
		}
		sess.OpenedAt, sess.ClosedAt = time.Unix(opened, 0).UTC(), time.Unix(closed, 0).UTC()
		byID[sess.SessionID] = &sess
	}
	var b bytes.Buffer
	fmt.Fprintf(&b, "INSERT INTO %s.sessions (%s) FORMAT TabSeparated\n", s.db, sessionColumns)
	for _, sess := range schema.FoldSessions(ids, touched, byID) {
		writeTSV(&b, sess.Values())
	}
	_, err = s.c.exec(b.String(), "TabSeparated")
	return err
}

// decoder reads a JSONCompactEachRow row in order.
type decoder struct {
	v   []json.RawMessage
	i   int
	err error
}

func (d *decoder) next() json.RawMessage {
	if d.i >= len(d.v) {
		if d.err == nil {
			d.err = fmt.Errorf("row has %d columns, want more", len(d.v))
		}
		return json.RawMessage("null")
	}
	d.i++
	return d.v[d.i-1]
}

func (d *decoder) str(dst ...*string) {
	for _, p := range dst {
		if err := json.Unmarshal(d.next(), p); err != nil && d.err == nil {
			d.err = err
		}
	}
}

func (d *decoder) arr(dst ...*[]string) {
	for _, p := range dst {
		if err := json.Unmarshal(d.next(), p); err != nil && d.err == nil {
			d.err = err
		}
		if len(*p) == 0 {
			*p = nil
		}
	}
}

// num reads a number, quoted (64-bit integers) or not.
func (d *decoder) num(dst any) {
	raw := strings.Trim(string(d.next()), `"`)
	if err := json.Unmarshal([]byte(raw), dst); err != nil && d.err == nil {
		d.err = err
	}
}
