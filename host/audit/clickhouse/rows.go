package clickhouse

import (
	"context"
	"fmt"
	"time"

	ch "github.com/ClickHouse/clickhouse-go/v2"

	"github.com/tollgate-dev/tollgate/host/audit"
	"github.com/tollgate-dev/tollgate/host/audit/schema"
)

// Rows reads events back as audit rows, each event once (FINAL), for
// verification: where is a trusted SQL condition with ? placeholders
// (e.g. "session_id = toUUID(?)"), or "" for every row.
func (s *Store) Rows(ctx context.Context, where string, args ...any) ([]audit.Row, error) {
	if err := s.ensureSchema(ctx); err != nil {
		return nil, err
	}
	q := "SELECT ts, ts_us, toString(event_id), toString(session_id), seq, kind, gateway_id, protocol, listener, target, " +
		"remote_addr, issuer, subject, email, groups, claim_keys, claim_values, access_rule, request_keys, request_values, " +
		"verdict, plugin, reason, annotation_keys, annotation_values, status, request_bytes, response_bytes, duration_us, " +
		"error, approval_id, approver, prev_hash, row_hash, signature FROM " + s.db + ".events FINAL"
	if where != "" {
		q += " WHERE " + where
	}
	q += " ORDER BY session_id, seq"
	rs, err := s.conn.Query(ch.Context(ctx, ch.WithSettings(s.read)), q, args...)
	if err != nil {
		return nil, fmt.Errorf("clickhouse: rows: %w", err)
	}
	defer rs.Close()
	var out []audit.Row
	for rs.Next() {
		var (
			r              audit.Row
			ts             time.Time
			us             uint32
			ck, cv, rk, rv []string
			ak, av         []string
		)
		if err := rs.Scan(&ts, &us, &r.EventID, &r.SessionID, &r.Seq, &r.Kind, &r.GatewayID, &r.Protocol, &r.Listener,
			&r.Target, &r.RemoteAddr, &r.Issuer, &r.Subject, &r.Email, &r.Groups, &ck, &cv, &r.AccessRule, &rk, &rv,
			&r.Verdict, &r.Plugin, &r.Reason, &ak, &av, &r.Status, &r.RequestBytes, &r.ResponseBytes, &r.DurationMicro,
			&r.Error, &r.ApprovalID, &r.Approver, &r.PrevHash, &r.RowHash, &r.Signature); err != nil {
			return nil, fmt.Errorf("clickhouse: rows: %w", err)
		}
		r.Time = schema.Join(ts, us)
		r.Claims, r.Request, r.Annotations = schema.Map(ck, cv), schema.Map(rk, rv), schema.Map(ak, av)
		out = append(out, r)
	}
	if err := rs.Err(); err != nil {
		return nil, fmt.Errorf("clickhouse: rows: %w", err)
	}
	return out, nil
}
