package postgres

import (
	"context"
	"strings"

	"github.com/jackc/pgx/v5/pgproto3"
)

// Prepared statements: the server's view, not the client's
//
// A Bind runs whatever SQL the server holds under the statement name, so
// the SQL the chain judges and the audit row records must be that SQL.
// The gateway commits a statement name to its SQL only when the server
// answers the Parse with ParseComplete (a refused Parse, such as a second
// Parse of a name in use, 42P05, changes nothing), and forgets it only on
// CloseComplete. An unnamed Parse that the server processed and refused
// leaves no unnamed statement, as in PostgreSQL's exec_parse_message.
//
// The client pipelines, so a Bind often arrives before the answer to its
// Parse. A Parse earlier in the same Sync segment, with nothing since that
// could change prepared statements, is what the Bind uses: if that Parse
// fails, the server skips the Bind too. A Parse from an earlier segment
// still unanswered makes the Bind wait until the server has answered
// everything forwarded (settle).
//
// SQL can change prepared statements behind the protocol's back: PREPARE,
// DEALLOCATE and DISCARD, also run as dynamic SQL from a DO block or a
// procedure. After a statement that may have done so (its command tag is
// one of those, or its text names one of them and it is still running),
// the gateway does not trust a name it knows: before the Bind it closes
// the name and parses the SQL it judged again (its own Close and Parse,
// whose answers the client does not see), so the server runs exactly
// what was judged. A name the gateway never saw parsed (a SQL-level
// PREPARE) is refused with 26000. Functions defined by the DBA that run
// PREPARE through dynamic SQL inside a SELECT are not detected: declare
// them dangerous to the guard. Portals need no such care: a failed Bind
// aborts the transaction or the Sync segment, and portals do not outlive
// either.

// prepared is one statement name as the server confirmed it.
type prepared struct {
	sql     string
	oids    []uint32
	changes bool // mayChangeStatements(sql), decided once at Parse
	tainted bool // SQL may have replaced it since (see above)
}

// mayChangeStatements reports whether sql may create or drop prepared
// statements when run: a conservative look at its words, in one pass.
// Quoting and comments are ignored on purpose: a false positive costs a
// Parse, a miss would cost the guard.
func mayChangeStatements(sql string) bool {
	for i := 0; i < len(sql); {
		if !isWordByte(sql[i]) {
			i++
			continue
		}
		j := i
		for j < len(sql) && isWordByte(sql[j]) {
			j++
		}
		switch w := sql[i:j]; len(w) {
		case 2, 4, 7, 10:
			if strings.EqualFold(w, "do") || strings.EqualFold(w, "call") || strings.EqualFold(w, "prepare") ||
				strings.EqualFold(w, "discard") || strings.EqualFold(w, "execute") || strings.EqualFold(w, "deallocate") {
				return true
			}
		}
		i = j
	}
	return false
}

// containsWordFold reports whether w (lower case ASCII) occurs in s as a
// whole word, case-insensitively.
func containsWordFold(s, w string) bool {
	for i := 0; i+len(w) <= len(s); i++ {
		if i > 0 && isWordByte(s[i-1]) {
			continue
		}
		if !strings.EqualFold(s[i:i+len(w)], w) {
			continue
		}
		if j := i + len(w); j < len(s) && isWordByte(s[j]) {
			continue
		}
		return true
	}
	return false
}

func isWordByte(c byte) bool {
	return c == '_' || c == '$' || '0' <= c && c <= '9' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || c >= 0x80
}

// statementTags are the command tags after which a prepared statement the
// gateway knows may have been replaced.
func taintsStatements(tag string) bool {
	switch tag {
	case "PREPARE", "DEALLOCATE", "DEALLOCATE ALL", "DISCARD ALL", "DO", "CALL":
		return true
	}
	return false
}

// onParse forwards a Parse; the name is committed when the server
// answers ParseComplete (commitParseLocked).
func (s *session) onParse(m *pgproto3.Parse) bool {
	// A copy: the Backend decodes the next Parse into the same struct,
	// and the client is read while textSafe waits for the server.
	m = &pgproto3.Parse{Name: m.Name, Query: m.Query, ParameterOIDs: m.ParameterOIDs}
	if ok, alive := s.textSafe(m.Query, true); !ok {
		return alive
	}
	o := &op{kind: opParse, name: m.Name, sql: m.Query, oids: m.ParameterOIDs, seg: s.seg, epoch: s.stmtEpoch,
		sqlChanges: mayChangeStatements(m.Query)}
	s.parsing[m.Name] = o
	s.forward(m)
	s.push(o)
	return true
}

// onCloseStatement forwards a Close of a statement; the name is forgotten
// on CloseComplete.
func (s *session) onCloseStatement(m *pgproto3.Close) {
	delete(s.parsing, m.Name)
	s.stmtEpoch++ // a Bind of this name in this segment must not use an earlier Parse
	s.forward(m)
	s.push(&op{kind: opClose, name: m.Name, closesStmt: true})
}

// statementSQL is the SQL a Bind of name will run, making sure of it
// first when the gateway's view could be stale, and whether running it
// may change prepared statements. ok is false when the gateway does not
// know the name (the Bind is then refused).
func (s *session) statementSQL(name string) (sql string, changes, ok bool) {
	o := s.parsing[name]
	if o != nil && o.seg == s.seg && o.epoch == s.stmtEpoch {
		return o.sql, o.sqlChanges, true // parsed in this segment: if that fails, so does the Bind
	}
	if o != nil && o.seg != s.seg {
		s.mu.Lock()
		answered := o.answered
		s.mu.Unlock()
		if !answered && !s.settle() {
			return "", false, false
		}
	}
	s.mu.Lock()
	p := s.prepared[name]
	unsure := s.stmtChanging > 0
	s.mu.Unlock()
	switch {
	case o != nil && o.seg == s.seg:
		// Parsed in this segment, but something that may replace
		// statements was sent since: parse it again, right before.
		s.reprepare(name, o.sql, o.oids, o.sqlChanges)
		return o.sql, o.sqlChanges, true
	case p == nil:
		return "", false, false
	case p.tainted || unsure:
		s.reprepare(name, p.sql, p.oids, p.changes)
	}
	return p.sql, p.changes, true
}

// reprepare makes the server's statement name hold sql: a Close and a
// Parse of the gateway's own, answered to the gateway. An error of the
// Parse reaches the client, as the error of its Bind, which the server
// then skips.
func (s *session) reprepare(name, sql string, oids []uint32, changes bool) {
	if name != "" {
		s.forward(&pgproto3.Close{ObjectType: 'S', Name: name})
		s.push(&op{kind: opClose, name: name, closesStmt: true, swallow: true})
	}
	s.forward(&pgproto3.Parse{Name: name, Query: sql, ParameterOIDs: oids})
	o := &op{kind: opParse, name: name, sql: sql, oids: oids, seg: s.seg, epoch: s.stmtEpoch, swallow: true, relayErr: true, sqlChanges: changes}
	s.parsing[name] = o
	s.push(o)
}

// commitParseLocked records the server's ParseComplete.
func (s *session) commitParseLocked(o *op) {
	o.answered = true
	s.prepared[o.name] = &prepared{sql: o.sql, oids: o.oids, changes: o.sqlChanges}
}

// refuseParseLocked records that the server processed o and refused it.
func (s *session) refuseParseLocked(o *op) {
	o.answered = true
	if o.name == "" {
		delete(s.prepared, "")
	}
}

// taintLocked marks every named statement as possibly replaced by SQL.
func (s *session) taintLocked() {
	for name, p := range s.prepared {
		if name != "" {
			p.tainted = true
		}
	}
}

// settle waits until the server has answered every message forwarded so
// far, so that what the gateway decides next rests on the server's state.
// The server answers what precedes a Flush without a Sync. False: the
// session is ending, or the client asked for it while the server waits
// for COPY data (which would never come).
func (s *session) settle() bool {
	s.mu.Lock()
	busy, copying, killed := s.headLocked() != nil, s.copyIn, s.killed != ""
	s.mu.Unlock()
	if killed {
		return false
	}
	if !busy {
		return true
	}
	if copying {
		s.setCloseErr("protocol violation: a statement sent during COPY FROM STDIN")
		s.fatal(codeProtocolViolation, "a statement was sent while the server waits for COPY data")
		return false
	}
	s.forward(&pgproto3.Flush{})
	if !s.flushUp() {
		return false
	}
	// The client is read meanwhile, as while a statement is held: a
	// client that writes its whole pipeline before reading any answer
	// must not wait on the relay while the relay waits on it.
	ctx, cancel := context.WithCancelCause(context.Background())
	defer cancel(nil)
	stop := s.watchClient(cancel)
	ok := s.waitAnswered(ctx)
	stop()
	return ok
}

// waitAnswered waits until the server has answered every queued op, the
// upstream ends, or ctx is done. True only if everything was answered
// and no answer ended the session: not if the client left meanwhile (the
// watcher cancels ctx) or the wait ran out.
func (s *session) waitAnswered(ctx context.Context) bool {
	wake := context.AfterFunc(ctx, func() {
		s.mu.Lock()
		s.settled.Broadcast()
		s.mu.Unlock()
	})
	defer wake()
	s.mu.Lock()
	defer s.mu.Unlock()
	for s.headLocked() != nil && !s.upGone && ctx.Err() == nil {
		s.settled.Wait()
	}
	return s.headLocked() == nil && !s.upGone && s.killed == ""
}
