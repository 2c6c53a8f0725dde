package embedded

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/tollgate-dev/tollgate/host/audit/sqlparam"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/tollgate-dev/tollgate/host/audit"
	"github.com/tollgate-dev/tollgate/host/audit/schema"
)

// readOnlyPrefixes are the statements Query runs.
// ErrNotReadOnly is returned by Query for anything but one read.
var ErrNotReadOnly = errors.New("embedded: query: only one SELECT, SHOW, DESCRIBE, EXISTS or WITH statement is allowed")

// Query runs one read-only analyst statement and returns its result as
// text, like the server store: times in UTC RFC 3339, arrays as JSON, NULL
// as "NULL". args replace ? placeholders outside literals, as quoted
// literals. The statement runs with readonly=1.
func (s *Store) Query(ctx context.Context, sql string, args ...any) (cols []string, rows [][]string, err error) {
	sql, err = bind(sql, args)
	if err != nil {
		return nil, nil, err
	}
	sql = strings.TrimSpace(sql)
	sql = strings.TrimSpace(strings.TrimSuffix(sql, ";"))
	if !schema.ReadOnly(sql) || !oneStatement(sql) {
		return nil, nil, ErrNotReadOnly
	}
	if err := s.acquire(ctx); err != nil {
		return nil, nil, err
	}
	out, err := s.c.exec(readOnlySettings(sql), "JSONCompactEachRowWithNamesAndTypes")
	s.release()
	if err != nil {
		return nil, nil, fmt.Errorf("embedded: query: %w", err)
	}
	dec := json.NewDecoder(bytes.NewReader(out))
	dec.UseNumber()
	var types []string
	if dec.More() {
		if err := dec.Decode(&cols); err != nil {
			return nil, nil, fmt.Errorf("embedded: query: names: %w", err)
		}
		if err := dec.Decode(&types); err != nil {
			return nil, nil, fmt.Errorf("embedded: query: types: %w", err)
		}
	}
	for dec.More() {
		var raw []json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			return nil, nil, fmt.Errorf("embedded: query: %w", err)
		}
		row := make([]string, len(raw))
		for i, v := range raw {
			t := ""
			if i < len(types) {
				t = types[i]
			}
			row[i] = text(v, t)
		}
		rows = append(rows, row)
	}
	return cols, rows, nil
}

// readOnlySettings makes a SELECT run with readonly=1 (no writes, no
// setting changes).
//
// chDB applies a trailing SETTINGS clause even after the statement's own
// (a later setting in it is then refused: "Cannot modify ... in readonly
// mode"). SHOW, DESCRIBE, EXISTS and EXPLAIN take no clause; they only
// read anyway.
func readOnlySettings(sql string) string {
	s := schema.Leading(sql)
	for _, p := range []string{"SELECT", "WITH"} {
		if len(s) > len(p) && strings.EqualFold(s[:len(p)], p) && !isWord(s[len(p)]) {
			return sql + "\nSETTINGS readonly = 1"
		}
	}
	return sql
}

// text renders one JSON value of ClickHouse type t like the server store.
func text(v json.RawMessage, t string) string {
	v = bytes.TrimSpace(v)
	if string(v) == "null" {
		return "NULL"
	}
	base := t
	for _, w := range []string{"Nullable(", "LowCardinality("} {
		for strings.HasPrefix(base, w) {
			base = strings.TrimSuffix(strings.TrimPrefix(base, w), ")")
		}
	}
	if len(v) > 0 && v[0] == '"' {
		var s string
		if err := json.Unmarshal(v, &s); err != nil {
			return string(v)
		}
		switch {
		case base == "DateTime" || strings.HasPrefix(base, "DateTime("):
			if ts, err := time.ParseInLocation("2006-01-02 15:04:05", s, time.UTC); err == nil {
				return ts.Format(time.RFC3339)
			}
		case strings.HasPrefix(base, "DateTime64"):
			if ts, err := time.ParseInLocation("2006-01-02 15:04:05.999999999", s, time.UTC); err == nil {
				return ts.Format(time.RFC3339)
			}
		case base == "Date" || base == "Date32":
			if ts, err := time.ParseInLocation("2006-01-02", s, time.UTC); err == nil {
				return ts.Format(time.RFC3339)
			}
		}
		return s
	}
	if len(v) > 0 && (v[0] == '[' || v[0] == '{') {
		// Re-encode as Go does (the server store's json.Marshal).
		dec := json.NewDecoder(bytes.NewReader(v))
		dec.UseNumber()
		var x any
		if dec.Decode(&x) == nil {
			if b, err := json.Marshal(x); err == nil {
				return string(b)
			}
		}
	}
	return string(v)
}

// oneStatement is false when sql holds a ';' outside literals and
// comments (the trailing one is trimmed before).
func oneStatement(sql string) bool {
	ok := true
	sqlparam.Scan(sql, func(i int) int {
		if sql[i] == ';' {
			ok = false
			return len(sql)
		}
		return i
	})
	return ok
}

// bind replaces each ? outside literals with the next argument as a
// literal.
func bind(sql string, args []any) (string, error) {
	var pos []int
	sqlparam.Scan(sql, func(i int) int {
		if sql[i] == '?' {
			pos = append(pos, i)
		}
		return i
	})
	if len(pos) != len(args) {
		return "", fmt.Errorf("embedded: query has %d placeholders and %d arguments", len(pos), len(args))
	}
	if len(args) == 0 {
		return sql, nil
	}
	var b bytes.Buffer
	last := 0
	for k, i := range pos {
		b.WriteString(sql[last:i])
		if err := literal(&b, args[k]); err != nil {
			return "", err
		}
		last = i + 1
	}
	b.WriteString(sql[last:])
	return b.String(), nil
}

func literal(b *bytes.Buffer, v any) error {
	switch x := v.(type) {
	case nil:
		b.WriteString("NULL")
	case string:
		quote(b, x)
	case []byte:
		quote(b, string(x))
	case bool:
		if x {
			b.WriteString("true")
		} else {
			b.WriteString("false")
		}
	case int:
		b.WriteString(strconv.FormatInt(int64(x), 10))
	case int8, int16, int32, int64:
		fmt.Fprintf(b, "%d", x)
	case uint, uint8, uint16, uint32, uint64:
		fmt.Fprintf(b, "%d", x)
	case float32:
		return literal(b, float64(x))
	case float64:
		if math.IsNaN(x) || math.IsInf(x, 0) {
			return fmt.Errorf("embedded: argument %v is not a finite number", x)
		}
		b.WriteString(strconv.FormatFloat(x, 'g', -1, 64))
	case time.Time:
		b.WriteString("toDateTime64(")
		quote(b, x.UTC().Format("2006-01-02 15:04:05.000000"))
		b.WriteString(", 6, 'UTC')")
	case []string:
		writeArray(b, x)
	case fmt.Stringer:
		quote(b, x.String())
	default:
		return fmt.Errorf("embedded: argument of type %T is not supported", v)
	}
	return nil
}

// rowsSelect reads events columns for Rows, times as Unix seconds. Text
// columns come hex-encoded: JSON output would replace bytes that are not
// UTF-8, and the row must come back exactly as it was hashed.
var rowsSelect = func() string {
	str := func(cols ...string) string {
		for i, c := range cols {
			cols[i] = "hex(" + c + ")"
		}
		return strings.Join(cols, ", ")
	}
	arr := func(cols ...string) string {
		for i, c := range cols {
			cols[i] = "arrayMap(x -> hex(x), " + c + ")"
		}
		return strings.Join(cols, ", ")
	}
	return "SELECT toUnixTimestamp(ts), ts_us, toString(event_id), toString(session_id), seq, " +
		str("kind", "gateway_id", "protocol", "listener", "target", "remote_addr", "issuer", "subject", "email") + ", " +
		arr("groups", "claim_keys", "claim_values") + ", " + str("access_rule") + ", " + arr("request_keys", "request_values") + ", " +
		str("verdict", "plugin", "reason") + ", " + arr("annotation_keys", "annotation_values") + ", " + str("status") +
		", request_bytes, response_bytes, duration_us, " +
		str("error", "approval_id", "approver", "prev_hash", "row_hash", "signature") + " FROM "
}()

// Rows reads events back as audit rows, each event once (FINAL), for
// verification: where is a trusted SQL condition with ? placeholders
// (e.g. "session_id = toUUID(?)"), or "" for every row.
func (s *Store) Rows(ctx context.Context, where string, args ...any) ([]audit.Row, error) {
	q := rowsSelect + s.db + ".events FINAL"
	if where != "" {
		q += " WHERE " + where
	}
	q += " ORDER BY session_id, seq"
	q, err := bind(q, args)
	if err != nil {
		return nil, err
	}
	if err := s.acquire(ctx); err != nil {
		return nil, err
	}
	out, err := s.c.exec(q, "JSONCompactEachRow")
	s.release()
	if err != nil {
		return nil, fmt.Errorf("embedded: rows: %w", err)
	}
	var rows []audit.Row
	for _, line := range bytes.Split(out, []byte("\n")) {
		if len(bytes.TrimSpace(line)) == 0 {
			continue
		}
		var v []json.RawMessage
		if err := json.Unmarshal(line, &v); err != nil {
			return nil, fmt.Errorf("embedded: rows: %w", err)
		}
		var (
			r              audit.Row
			ts             int64
			us             uint32
			ck, cv, rk, rv []string
			ak, av         []string
		)
		d := decoder{v: v}
		d.num(&ts)
		d.num(&us)
		d.plain(&r.EventID, &r.SessionID)
		d.num(&r.Seq)
		d.str(&r.Kind, &r.GatewayID, &r.Protocol, &r.Listener, &r.Target, &r.RemoteAddr, &r.Issuer, &r.Subject, &r.Email)
		d.arr(&r.Groups, &ck, &cv)
		d.str(&r.AccessRule)
		d.arr(&rk, &rv)
		d.str(&r.Verdict, &r.Plugin, &r.Reason)
		d.arr(&ak, &av)
		d.str(&r.Status)
		d.num(&r.RequestBytes)
		d.num(&r.ResponseBytes)
		d.num(&r.DurationMicro)
		d.str(&r.Error, &r.ApprovalID, &r.Approver, &r.PrevHash, &r.RowHash, &r.Signature)
		if d.err == nil && d.i != len(v) {
			d.err = fmt.Errorf("row has %d columns, want %d", len(v), d.i)
		}
		if d.err != nil {
			return nil, fmt.Errorf("embedded: rows: %w", d.err)
		}
		r.Time = schema.Join(time.Unix(ts, 0).UTC(), us)
		r.Claims, r.Request, r.Annotations = schema.Map(ck, cv), schema.Map(rk, rv), schema.Map(ak, av)
		rows = append(rows, r)
	}
	return rows, nil
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

func (d *decoder) plain(dst ...*string) {
	for _, p := range dst {
		if err := json.Unmarshal(d.next(), p); err != nil && d.err == nil {
			d.err = err
		}
	}
}

// str reads hex-encoded text.
func (d *decoder) str(dst ...*string) {
	for _, p := range dst {
		d.plain(p)
		*p = d.unhex(*p)
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
		for i, s := range *p {
			(*p)[i] = d.unhex(s)
		}
	}
}

func (d *decoder) unhex(s string) string {
	b, err := hex.DecodeString(s)
	if err != nil && d.err == nil {
		d.err = err
	}
	return string(b)
}

// num reads a number, quoted (64-bit integers) or not.
func (d *decoder) num(dst any) {
	raw := strings.Trim(string(d.next()), `"`)
	if err := json.Unmarshal([]byte(raw), dst); err != nil && d.err == nil {
		d.err = err
	}
}
