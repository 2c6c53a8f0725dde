package postgres

import (
	"context"
	"strconv"

	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/tollgate-dev/tollgate/host/event"
)

// rowsPass reports whether result rows go through the batch (a plugin
// wants them, or the target has sensitive columns to mask) and whether
// the chain wants them: asked once per statement, not per batch.
func (s *session) rowsPass(st *stmt) (pass, chain bool) {
	chain = s.wants(st, "pg.rows")
	return chain || len(s.target.sensitive) > 0, chain
}

// refreshCatalog makes s.cat the target database's current catalog of
// sensitive columns, reading it when stale. An error means statements
// must not run: what is sensitive is unknown.
func (s *session) refreshCatalog() error {
	if len(s.target.sensitive) == 0 {
		return nil
	}
	if s.catEntry == nil {
		s.catEntry = s.l.catalogs.entry(s.target, s.database)
	}
	cat, err := s.catEntry.get(context.Background(), s.target, s.database)
	if err != nil {
		s.l.deps.Log.Error("postgres: sensitive columns not resolved", "session_id", s.id, "target", s.targetName, "err", err)
		return err
	}
	s.mu.Lock()
	s.cat = cat
	s.mu.Unlock()
	return nil
}

// schemaChangedLocked notes a command that may have changed the columns a
// sensitive glob resolves to: the catalog is read again before the next
// statement is judged.
func (s *session) schemaChangedLocked(o *op, tag string) {
	if len(s.target.sensitive) == 0 {
		return
	}
	// CREATE TABLE AS and SELECT INTO report a SELECT tag.
	if schemaChanging(tag) || (len(tag) > 6 && tag[:6] == "SELECT" && (containsWordFold(o.sql, "into") || containsWordFold(o.sql, "create"))) {
		s.l.catalogs.entry(s.target, s.database).invalidate()
	}
}

// Errors, notices and notifications carry data back too
//
// `SELECT secret::int FROM api_keys` returns the secret inside "invalid
// input syntax for type integer"; RAISE NOTICE and pg_notify can carry
// anything. Each ErrorResponse, NoticeResponse and NotificationResponse
// is a pg.error, pg.notice or pg.notify event for the chain (fields
// sqlstate, severity, message, detail, hint, where; channel and payload
// for a notification), and goes to the client as the plugins left it.
// When the statement that caused an error or notice reads a sensitive
// column, its message, detail, hint and where are withheld before any
// plugin sees them; the SQLSTATE stays, so the client still knows what
// kind of failure it was.

const withheldText = "the server's message is withheld: the statement reads a sensitive column"

// passMessageLocked returns the bytes to relay for an ErrorResponse
// ('E'), NoticeResponse ('N') or NotificationResponse ('A'); nil drops it.
func (s *session) passMessageLocked(o *op, typ byte, msg []byte) []byte {
	sensitive := o != nil && o.st != nil && o.st.sensitive && typ != 'A'
	kind := "pg.error"
	switch typ {
	case 'N':
		kind = "pg.notice"
	case 'A':
		kind = "pg.notify"
	}
	wants := s.wants(opStmt(o), kind)
	if !sensitive && !wants {
		return msg
	}
	body := msg[5:]
	if typ == 'A' {
		var n pgproto3.NotificationResponse
		if err := n.Decode(body); err != nil {
			return nil
		}
		f := map[string]string{"channel": n.Channel, "payload": n.Payload, "pid": strconv.FormatUint(uint64(n.PID), 10)}
		v := s.processMessageLocked(o, kind, f)
		if v.Action == event.Deny || v.Action == event.Hold {
			return nil
		}
		n.Channel, n.Payload = f["channel"], f["payload"]
		b, _ := n.Encode(nil)
		return b
	}
	var e pgproto3.ErrorResponse
	if typ == 'E' {
		if err := e.Decode(body); err != nil {
			return msg // the client's own decoder will say
		}
	} else {
		var n pgproto3.NoticeResponse
		if err := n.Decode(body); err != nil {
			return msg
		}
		e = pgproto3.ErrorResponse(n)
	}
	if sensitive {
		e.Message, e.Detail, e.Hint, e.Where, e.InternalQuery = withheldText, "tollgate session "+s.id, "", "", ""
		o.st.annot = append(o.st.annot, event.Annotation{Key: "mask.withheld", Value: kind})
	}
	f := map[string]string{"sqlstate": e.Code, "severity": e.Severity, "message": e.Message,
		"detail": e.Detail, "hint": e.Hint, "where": e.Where}
	if wants {
		v := s.processMessageLocked(o, kind, f)
		switch {
		case (v.Action == event.Deny || v.Action == event.Hold) && typ == 'N':
			return nil
		case v.Action == event.Deny || v.Action == event.Hold:
			f["message"], f["detail"], f["hint"], f["where"] = "the server's message is withheld by policy: "+denyText(v), "tollgate session "+s.id, "", ""
		}
	}
	e.Message, e.Detail, e.Hint, e.Where = f["message"], f["detail"], f["hint"], f["where"]
	var b []byte
	if typ == 'E' {
		b, _ = e.Encode(nil)
	} else {
		n := pgproto3.NoticeResponse(e)
		b, _ = n.Encode(nil)
	}
	return b
}

// processMessageLocked runs one message event through the chain; a
// failing chain withholds the message (deny).
func (s *session) processMessageLocked(o *op, kind string, f map[string]string) event.Verdict {
	if o != nil && o.sql != "" {
		f["sql"] = o.sql
	}
	ev := &event.Event{Phase: event.Response, Protocol: "postgres", Kind: kind, SessionID: s.id,
		Target: s.targetName, Principal: s.principal, Fields: f}
	v := s.callPluginsLocked(opStmt(o), ev)
	if o != nil && o.st != nil && len(v.Annotations) > 0 {
		o.st.annot = append(o.st.annot, v.Annotations...)
	}
	return v
}

// checkSensitive judges a statement against the target's sensitive
// columns before the chain sees it; a non-empty result is why it is
// refused. It marks the statement sensitive when it names a sensitive
// column or its table, so that its errors and notices are withheld.
func (s *session) checkSensitive(st *stmt, sql string) string {
	if len(s.target.sensitive) == 0 {
		return ""
	}
	if err := s.refreshCatalog(); err != nil {
		return "the sensitive columns of target " + s.targetName + " could not be resolved, so no statement runs: " + err.Error()
	}
	s.mu.Lock()
	cat := s.cat
	s.mu.Unlock()
	return s.analyzeSensitive(st, sql, cat)
}
