// Package sqlclass splits a PostgreSQL query string into statements and
// classifies each one (read, write, DDL, ...) for the guard plugin's
// policy rules.
//
// The classifier is syntactic and deliberately pessimistic: when it cannot
// tell what a statement does, the answer is Unknown (which policy denies by
// default), never Read. It is pure Go without reflection or regexp so that
// it compiles for GOOS=wasip1.
//
// Choices worth knowing when writing policy:
//
//   - TRUNCATE is DDL (it empties a table outright, takes an ACCESS
//     EXCLUSIVE lock and has no WHERE), so "deny DDL" rules catch it.
//   - SELECT ... INTO t and CREATE TABLE ... AS are DDL (they create a
//     table). SELECT ... FOR UPDATE/NO KEY UPDATE/SHARE/KEY SHARE is Write
//     (it locks rows); Command is "SELECT FOR UPDATE" or "SELECT FOR SHARE".
//   - Function calls are matched by name against a built-in list (see
//     funcClass): server-signalling, file-system, large-object import/export,
//     replication, dblink and set_config calls are Admin (set_config of a
//     read-only switch is LiftReadOnly, above); nextval, setval,
//     advisory locks and large-object writes are Write; pg_notify is
//     Session; functions that run a query given as text (query_to_xml,
//     ts_stat, ...) are Unknown. Any other function, including user-defined
//     ones, is assumed not to write.
//   - COPY ... FROM STDIN is Write, COPY ... TO STDOUT is Read (or the class
//     of the copied query), COPY ... PROGRAM and COPY to or from a server
//     file are Admin.
//   - MERGE is a write under the same rule as UPDATE and DELETE: Command
//     is "MERGE", and HasWhere holds only when every WHEN clause whose
//     action is UPDATE or DELETE has its own AND condition (a MERGE that
//     only inserts or does nothing has it too). The ON condition does not
//     count: it is mandatory join syntax (ON true is valid), and a WHEN
//     NOT MATCHED BY SOURCE action touches exactly the rows the join did
//     not find. So "MERGE ... ON t.id = s.id WHEN MATCHED THEN DELETE" is
//     an unbounded write, "... WHEN MATCHED AND s.gone THEN DELETE" is not.
//   - LOCK [TABLE] is its own class, Lock, not an ordinary write.
//     (SELECT ... FOR UPDATE and advisory-lock functions stay Write.)
//   - Statements that can turn a read-only session or transaction
//     read-write are their own class, LiftReadOnly: SET (SESSION|LOCAL)
//     default_transaction_read_only or transaction_read_only to anything
//     but a constant the server reads as true (off, DEFAULT, E'...' all
//     lift), RESET of either, RESET ALL, BEGIN / START TRANSACTION / SET
//     TRANSACTION / SET SESSION CHARACTERISTICS AS TRANSACTION with READ
//     WRITE among the modes, and set_config() naming either parameter as
//     a constant (unless the value is a true constant). Parameter names
//     match in any case, quoted or not, as the server looks them up.
//     DISCARD ALL also lifts read-only but stays DCL (it restores the
//     session's role); the guard's rules see it under both classes.
//   - SET ROLE, SET SESSION AUTHORIZATION (also SET role = ... and
//     SET "session_authorization" = ...), RESET ROLE, RESET SESSION
//     AUTHORIZATION and DISCARD ALL are DCL: they change or restore the
//     effective role. RESET ALL is not (the server's RESET ALL skips role
//     and session_authorization). SET session_replication_role is Admin.
//   - Wrappers that execute or store an inner statement (WITH, EXPLAIN
//     ANALYZE, PREPARE ... AS, COPY (query), DECLARE ... CURSOR) take the
//     inner class when it is more dangerous, and then report the inner
//     Command (e.g. "DELETE") with its Tables and HasWhere.
//   - HasWhere is syntactic: DELETE FROM t WHERE true has a WHERE.
//   - Table names are unquoted, schema-qualified as written, and unquoted
//     identifiers are folded to lower case as the server does.
package sqlclass

import "sync"

// Class is the kind of a statement.
type Class uint8

// Statement classes.
const (
	Unknown Class = iota
	Read
	Write
	DDL
	DCL
	Admin
	Transaction
	Session
	LiftReadOnly // makes the session or transaction read-write (SET default_transaction_read_only = off, BEGIN READ WRITE, ...)
	Lock         // LOCK TABLE
)

var classNames = [...]string{"unknown", "read", "write", "ddl", "dcl", "admin", "transaction", "session", "lift_read_only", "lock"}

// String returns the lower-case name of the class ("read", "ddl", ...).
func (c Class) String() string {
	if int(c) < len(classNames) {
		return classNames[c]
	}
	return "unknown"
}

// rank orders classes by danger: Read < Transaction < Session <
// LiftReadOnly < Lock < Write < DDL < DCL < Admin < Unknown. Out-of-range
// values rank as Unknown.
func rank(c Class) int {
	switch c {
	case Read:
		return 0
	case Transaction:
		return 1
	case Session:
		return 2
	case LiftReadOnly:
		return 3
	case Lock:
		return 4
	case Write:
		return 5
	case DDL:
		return 6
	case DCL:
		return 7
	case Admin:
		return 8
	}
	return rankUnknown
}

const rankUnknown = 9

// Statement is one classified statement of a query.
type Statement struct {
	Class    Class
	Command  string   // upper-case leading command, e.g. "SELECT", "DELETE", "CREATE TABLE", "WITH" resolved to the effective one
	Tables   []string // best-effort target table names for writes/DDL (schema-qualified as written, unquoted), may be empty
	HasWhere bool     // UPDATE/DELETE: a top-level WHERE exists; MERGE: every UPDATE/DELETE action has its own AND condition
	Text     string   // the statement's own text (trimmed), for the audit row
}

// Classify splits a query string into statements the way PostgreSQL's simple
// query protocol would (semicolons outside quotes, comments, dollar quotes)
// and classifies each. It never panics; malformed input (an unterminated
// quote or comment) yields a single Unknown statement covering the rest.
//
// If the query contains a plain string literal with a backslash, it is read
// both with standard_conforming_strings on and off; if the two readings do
// not agree, the whole query is one Unknown statement.
func Classify(sql string) []Statement {
	out, bs := classify(sql, false)
	if !bs {
		return out
	}
	alt, _ := classify(sql, true)
	if sameStatements(out, alt) {
		return out
	}
	return []Statement{{Class: Unknown, Text: trimSpace(sql)}}
}

// Worst returns the most dangerous class among statements (Unknown counts as
// the most dangerous), for a one-line verdict. An empty list (an empty query
// executes nothing) is Read.
func Worst(stmts []Statement) Class {
	w := Read
	for _, s := range stmts {
		if rank(s.Class) > rank(w) {
			w = s.Class
		}
	}
	if rank(w) == rankUnknown {
		return Unknown
	}
	return w
}

func sameStatements(a, b []Statement) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		x, y := &a[i], &b[i]
		if x.Class != y.Class || x.Command != y.Command || x.HasWhere != y.HasWhere || x.Text != y.Text || len(x.Tables) != len(y.Tables) {
			return false
		}
		for j := range x.Tables {
			if x.Tables[j] != y.Tables[j] {
				return false
			}
		}
	}
	return true
}

// tokPool recycles token buffers; statements never reference them.
var tokPool = sync.Pool{New: func() any { return new([]token) }}

func classify(sql string, scsOff bool) ([]Statement, bool) {
	bp := tokPool.Get().(*[]token)
	spans, toks, bs := split(sql, scsOff, (*bp)[:0])
	defer func() {
		if cap(toks) <= 1<<16 {
			*bp = toks[:0]
			tokPool.Put(bp)
		}
	}()
	if len(spans) == 0 {
		return nil, bs
	}
	out := make([]Statement, 0, len(spans))
	c := ctx{s: sql}
	for _, sp := range spans {
		st := Statement{Text: trimSpace(sql[sp.start:sp.end])}
		if sp.bad || sp.unbalanced {
			st.Class = Unknown
		} else {
			c.depth = 0
			r := c.stmt(toks[sp.t0:sp.t1])
			st.Class = r.class
			st.Command = r.cmd
			st.Tables = r.tables
			st.HasWhere = r.dml && r.hasWhere && isDMLCmd(r.cmd)
		}
		out = append(out, st)
	}
	return out, bs
}
