package sqlclass

import "strings"

// maxNesting bounds the recursion into nested statements (CTE bodies,
// EXPLAIN, PREPARE, parenthesized DML); deeper input is Unknown.
const maxNesting = 32

// result is the classification of one (possibly nested) statement.
type result struct {
	class    Class
	cmd      string
	tables   []string
	dml      bool // contains an UPDATE or DELETE whose WHERE is tracked
	hasWhere bool // all such UPDATE/DELETE parts have a top-level WHERE
}

func (r *result) raise(c Class) {
	if rank(c) > rank(r.class) {
		r.class = c
	}
}

func (r *result) raiseCmd(c Class, cmd string) {
	if rank(c) > rank(r.class) {
		r.class = c
		r.cmd = cmd
	}
}

func isDMLCmd(cmd string) bool { return cmd == "UPDATE" || cmd == "DELETE" || cmd == "MERGE" }

// merge folds a nested statement's result into r: the worse class wins and
// brings its command (an UPDATE/DELETE wins a tie, so that a WHERE rule can
// see it); tables accumulate; HasWhere holds only if every UPDATE/DELETE
// part has one.
func (r *result) merge(o result) {
	if rank(o.class) > rank(r.class) || rank(o.class) == rank(r.class) && isDMLCmd(o.cmd) && !isDMLCmd(r.cmd) {
		r.class = o.class
		r.cmd = o.cmd
	}
	r.tables = append(r.tables, o.tables...)
	if o.dml {
		if r.dml {
			r.hasWhere = r.hasWhere && o.hasWhere
		} else {
			r.dml = true
			r.hasWhere = o.hasWhere
		}
	}
}

type ctx struct {
	s     string
	depth int
}

func (c *ctx) text(t token) string { return c.s[t.start:t.end] }

// eqFold compares s with the lower-case ASCII keyword kw, folding only
// ASCII letters as the server does for keywords.
func eqFold(s, kw string) bool {
	if len(s) != len(kw) {
		return false
	}
	for i := 0; i < len(s); i++ {
		b := s[i]
		if b >= 'A' && b <= 'Z' {
			b += 'a' - 'A'
		}
		if b != kw[i] {
			return false
		}
	}
	return true
}

// kw reports whether t[i] exists and is the unquoted keyword k.
func (c *ctx) kw(t []token, i int, k string) bool {
	return i >= 0 && i < len(t) && t[i].kind == tkWord && eqFold(c.text(t[i]), k)
}

func is(t []token, i int, k tokKind) bool { return i >= 0 && i < len(t) && t[i].kind == k }

// match returns the index of the ')' matching the '(' at t[i], or -1.
func match(t []token, i int) int {
	d := t[i].depth
	for j := i + 1; j < len(t); j++ {
		if t[j].kind == tkRParen && t[j].depth == d {
			return j
		}
	}
	return -1
}

func lowerASCII(s string) string {
	for i := 0; i < len(s); i++ {
		if s[i] >= 'A' && s[i] <= 'Z' {
			b := []byte(s)
			for j := i; j < len(b); j++ {
				if b[j] >= 'A' && b[j] <= 'Z' {
					b[j] += 'a' - 'A'
				}
			}
			return string(b)
		}
	}
	return s
}

// identPart returns the name an identifier token denotes: unquoted words
// folded to lower case, quoted identifiers unquoted.
func (c *ctx) identPart(t token) string {
	s := c.text(t)
	switch t.kind {
	case tkWord:
		return lowerASCII(s)
	case tkQIdent:
		s = s[1 : len(s)-1]
	case tkUQIdent:
		s = s[3 : len(s)-1]
	}
	if strings.Contains(s, `""`) {
		s = strings.ReplaceAll(s, `""`, `"`)
	}
	return s
}

func isIdent(t []token, i int) bool {
	return i >= 0 && i < len(t) && (t[i].kind == tkWord || t[i].kind == tkQIdent || t[i].kind == tkUQIdent)
}

// qname parses a possibly qualified name at t[i] and returns it with the
// index after it, or "" and i.
func (c *ctx) qname(t []token, i int) (string, int) {
	if !isIdent(t, i) {
		return "", i
	}
	name := c.identPart(t[i])
	i++
	for is(t, i, tkDot) && isIdent(t, i+1) {
		name += "." + c.identPart(t[i+1])
		i += 2
	}
	return name, i
}

// skipIfExists skips IF [NOT] EXISTS.
func (c *ctx) skipIfExists(t []token, i int) int {
	if c.kw(t, i, "if") {
		if c.kw(t, i+1, "not") && c.kw(t, i+2, "exists") {
			return i + 3
		}
		if c.kw(t, i+1, "exists") {
			return i + 2
		}
	}
	return i
}

// nameList collects "[ONLY] name [*] [, ...]" starting at t[i].
func (c *ctx) nameList(t []token, i int, r *result) {
	for {
		if c.kw(t, i, "only") && isIdent(t, i+1) {
			i++
		}
		n, j := c.qname(t, i)
		if n == "" {
			return
		}
		r.tables = append(r.tables, n)
		i = j
		if i < len(t) && t[i].kind == tkOp && c.text(t[i]) == "*" {
			i++
		}
		if !is(t, i, tkComma) {
			return
		}
		i++
	}
}

// target appends the table named at t[i] (after an optional ONLY).
func (c *ctx) target(t []token, i int, r *result) {
	if c.kw(t, i, "only") && isIdent(t, i+1) {
		i++
	}
	if n, _ := c.qname(t, i); n != "" {
		r.tables = append(r.tables, n)
	}
}

// topKw returns the index of the first keyword k at the statement's top
// level at or after i, or -1.
func (c *ctx) topKw(t []token, i int, k string) int {
	if len(t) == 0 {
		return -1
	}
	d := t[0].depth
	for ; i < len(t); i++ {
		if t[i].depth == d && c.kw(t, i, k) {
			return i
		}
	}
	return -1
}

func unknown(cmd string) result { return result{class: Unknown, cmd: cmd} }

// firstWord returns the leading word upper-cased, for Command of an
// otherwise unclassified statement.
func (c *ctx) firstWord(t []token) string {
	if len(t) == 0 || t[0].kind != tkWord {
		return ""
	}
	s := c.text(t[0])
	if len(s) > 32 {
		return ""
	}
	return strings.ToUpper(s)
}

// stmt classifies the tokens of one statement.
func (c *ctx) stmt(t []token) result {
	if len(t) == 0 {
		return unknown("")
	}
	c.depth++
	defer func() { c.depth-- }()
	if c.depth > maxNesting {
		return unknown("")
	}
	if t[0].kind == tkLParen {
		// (SELECT ...) UNION (SELECT ...), ((VALUES 1)), (WITH ... SELECT).
		i := 0
		for is(t, i, tkLParen) {
			i++
		}
		switch {
		case c.kw(t, i, "with"):
			return c.with(t[i:])
		case c.kw(t, i, "select"), c.kw(t, i, "values"), c.kw(t, i, "table"):
			r := result{class: Read, cmd: strings.ToUpper(c.text(t[i]))}
			c.scan(t, &r, true)
			return r
		}
		return unknown("")
	}
	if t[0].kind != tkWord {
		return unknown("")
	}
	w := c.text(t[0])
	var buf [16]byte
	if len(w) > len(buf) {
		return unknown("")
	}
	lw := buf[:len(w)]
	for i := 0; i < len(w); i++ {
		b := w[i]
		if b >= 'A' && b <= 'Z' {
			b += 'a' - 'A'
		}
		lw[i] = b
	}
	switch string(lw) {
	case "select":
		r := result{class: Read, cmd: "SELECT"}
		c.scan(t, &r, true)
		return r
	case "values":
		r := result{class: Read, cmd: "VALUES"}
		c.scan(t, &r, true)
		return r
	case "table":
		r := result{class: Read, cmd: "TABLE"}
		c.scan(t, &r, true)
		return r
	case "with":
		return c.with(t)
	case "insert":
		r := result{class: Write, cmd: "INSERT"}
		if c.kw(t, 1, "into") {
			c.target(t, 2, &r)
		}
		c.scan(t[1:], &r, false)
		return r
	case "update":
		r := result{class: Write, cmd: "UPDATE", dml: true}
		c.target(t, 1, &r)
		r.hasWhere = c.topKw(t, 1, "where") >= 0
		c.scan(t[1:], &r, false)
		return r
	case "delete":
		r := result{class: Write, cmd: "DELETE", dml: true}
		if c.kw(t, 1, "from") {
			c.target(t, 2, &r)
		}
		r.hasWhere = c.topKw(t, 1, "where") >= 0
		c.scan(t[1:], &r, false)
		return r
	case "merge":
		return c.mergeStmt(t)
	case "copy":
		return c.copy(t)
	case "truncate":
		r := result{class: DDL, cmd: "TRUNCATE"}
		i := 1
		if c.kw(t, i, "table") {
			i++
		}
		c.nameList(t, i, &r)
		c.scan(t[1:], &r, false)
		return r
	case "lock":
		r := result{class: Lock, cmd: "LOCK"}
		i := 1
		if c.kw(t, i, "table") {
			i++
		}
		c.nameList(t, i, &r)
		return r
	case "create", "alter", "drop":
		return c.ddl(t, string(lw))
	case "comment":
		r := result{class: DDL, cmd: "COMMENT ON"}
		c.scan(t[1:], &r, false)
		return r
	case "security":
		r := result{class: DDL, cmd: "SECURITY LABEL"}
		return r
	case "reindex":
		return c.simpleDDL(t, "REINDEX")
	case "cluster":
		return c.simpleDDL(t, "CLUSTER")
	case "import":
		return c.simpleDDL(t, "IMPORT FOREIGN SCHEMA")
	case "refresh":
		r := result{class: DDL, cmd: "REFRESH MATERIALIZED VIEW"}
		i := 1
		if c.kw(t, i, "materialized") && c.kw(t, i+1, "view") {
			i += 2
		}
		if c.kw(t, i, "concurrently") {
			i++
		}
		c.target(t, i, &r)
		return r
	case "grant":
		return result{class: DCL, cmd: "GRANT"}
	case "revoke":
		return result{class: DCL, cmd: "REVOKE"}
	case "reassign":
		return result{class: DCL, cmd: "REASSIGN OWNED"}
	case "vacuum":
		return result{class: Admin, cmd: "VACUUM"}
	case "analyze", "analyse":
		return result{class: Admin, cmd: "ANALYZE"}
	case "checkpoint":
		return result{class: Admin, cmd: "CHECKPOINT"}
	case "load":
		return result{class: Admin, cmd: "LOAD"}
	case "begin":
		return result{class: c.txModes(t, 1, Transaction), cmd: "BEGIN"}
	case "start":
		if c.kw(t, 1, "transaction") {
			return result{class: c.txModes(t, 2, Transaction), cmd: "START TRANSACTION"}
		}
		return unknown("START")
	case "commit":
		if c.kw(t, 1, "prepared") {
			return result{class: Transaction, cmd: "COMMIT PREPARED"}
		}
		return result{class: Transaction, cmd: "COMMIT"}
	case "end":
		return result{class: Transaction, cmd: "END"}
	case "abort":
		return result{class: Transaction, cmd: "ABORT"}
	case "rollback":
		if c.kw(t, 1, "prepared") {
			return result{class: Transaction, cmd: "ROLLBACK PREPARED"}
		}
		return result{class: Transaction, cmd: "ROLLBACK"}
	case "savepoint":
		return result{class: Transaction, cmd: "SAVEPOINT"}
	case "release":
		return result{class: Transaction, cmd: "RELEASE"}
	case "prepare":
		return c.prepare(t)
	case "set":
		return c.set(t)
	case "reset":
		return c.reset(t)
	case "show":
		return result{class: Session, cmd: "SHOW"}
	case "discard":
		if c.kw(t, 1, "all") {
			// DISCARD ALL includes SET SESSION AUTHORIZATION DEFAULT.
			return result{class: DCL, cmd: "DISCARD ALL"}
		}
		return result{class: Session, cmd: "DISCARD"}
	case "deallocate":
		return result{class: Session, cmd: "DEALLOCATE"}
	case "listen":
		return result{class: Session, cmd: "LISTEN"}
	case "unlisten":
		return result{class: Session, cmd: "UNLISTEN"}
	case "notify":
		return result{class: Session, cmd: "NOTIFY"}
	case "explain":
		return c.explain(t)
	case "declare":
		return c.declare(t)
	case "fetch":
		return result{class: Read, cmd: "FETCH"}
	case "move":
		return result{class: Read, cmd: "MOVE"}
	case "close":
		return result{class: Read, cmd: "CLOSE"}
	case "do":
		return unknown("DO")
	case "execute":
		return unknown("EXECUTE")
	case "call":
		return unknown("CALL")
	}
	return unknown(c.firstWord(t))
}

func (c *ctx) simpleDDL(t []token, cmd string) result {
	r := result{class: DDL, cmd: cmd}
	c.scan(t[1:], &r, false)
	return r
}

// with classifies WITH [RECURSIVE] name [(cols)] AS [[NOT] MATERIALIZED]
// (body) [SEARCH ...] [CYCLE ...], ... main-statement.
func (c *ctx) with(t []token) result {
	i := 1
	if c.kw(t, i, "recursive") {
		i++
	}
	var ctes result
	ctes.class = Read
	for {
		if !isIdent(t, i) {
			return unknown("WITH")
		}
		i++
		if is(t, i, tkLParen) {
			j := match(t, i)
			if j < 0 {
				return unknown("WITH")
			}
			i = j + 1
		}
		if !c.kw(t, i, "as") {
			return unknown("WITH")
		}
		i++
		if c.kw(t, i, "not") {
			i++
		}
		if c.kw(t, i, "materialized") {
			i++
		}
		if !is(t, i, tkLParen) {
			return unknown("WITH")
		}
		j := match(t, i)
		if j < 0 || j == i+1 {
			return unknown("WITH")
		}
		ctes.merge(c.stmt(t[i+1 : j]))
		i = j + 1
		if c.kw(t, i, "search") {
			// SEARCH {BREADTH|DEPTH} FIRST BY col, ... SET col
			k := c.topKw(t, i, "set")
			if k < 0 || !isIdent(t, k+1) {
				return unknown("WITH")
			}
			i = k + 2
		}
		if c.kw(t, i, "cycle") {
			// CYCLE col, ... SET col [TO v DEFAULT v] USING col
			k := c.topKw(t, i, "using")
			if k < 0 || !isIdent(t, k+1) {
				return unknown("WITH")
			}
			i = k + 2
		}
		if !is(t, i, tkComma) {
			break
		}
		i++
	}
	main := t[i:]
	j := 0
	for is(main, j, tkLParen) {
		j++
	}
	switch {
	case c.kw(main, j, "select"), c.kw(main, j, "values"), c.kw(main, j, "table"),
		j == 0 && (c.kw(main, 0, "insert") || c.kw(main, 0, "update") || c.kw(main, 0, "delete") || c.kw(main, 0, "merge")):
	default:
		return unknown("WITH")
	}
	r := c.stmt(main)
	r.merge(ctes)
	return r
}

// mergeStmt classifies MERGE INTO target USING source ON cond WHEN ....
// Its UPDATE and DELETE actions count as bounded (HasWhere) only when each
// WHEN clause that holds one has its own AND condition: ON is a mandatory
// join condition (ON true is valid), and a NOT MATCHED BY SOURCE action
// touches exactly the rows the join did not find.
func (c *ctx) mergeStmt(t []token) result {
	r := result{class: Write, cmd: "MERGE", dml: true}
	if c.kw(t, 1, "into") {
		c.target(t, 2, &r)
	}
	d := t[0].depth
	clauses := 0
	bounded := true
	for i := 1; i < len(t); i++ {
		// Every top-level WHEN [NOT] MATCHED counts, even one of a CASE
		// over a column named "matched": such a phantom clause can only
		// make the answer stricter, and no real clause is missed.
		if t[i].depth != d || !c.kw(t, i, "when") {
			continue
		}
		j := i + 1
		if c.kw(t, j, "not") {
			j++
		}
		if !c.kw(t, j, "matched") {
			continue
		}
		j++
		if c.kw(t, j, "by") && (c.kw(t, j+1, "source") || c.kw(t, j+1, "target")) {
			j += 2
		}
		clauses++
		if c.kw(t, j, "and") {
			continue
		}
		if !c.kw(t, j, "then") || !(c.kw(t, j+1, "insert") || c.kw(t, j+1, "do") && c.kw(t, j+2, "nothing")) {
			bounded = false
		}
	}
	r.hasWhere = clauses > 0 && bounded
	c.scan(t[1:], &r, false)
	return r
}

// txModes returns LiftReadOnly if the transaction modes from t[i] on
// include READ WRITE, else base.
func (c *ctx) txModes(t []token, i int, base Class) Class {
	for ; i+1 < len(t); i++ {
		if c.kw(t, i, "read") && c.kw(t, i+1, "write") {
			return LiftReadOnly
		}
	}
	return base
}

// isReadOnlyVar reports whether a run-time parameter name (any case, as
// the server looks names up) is one of the read-only switches.
func isReadOnlyVar(name string) bool {
	return eqFold(name, "default_transaction_read_only") || eqFold(name, "transaction_read_only")
}

// trueLiteral reports whether t is a constant the server's boolean parser
// reads as true: a prefix of true or yes, on, or 1, bare or in a plain
// string without escapes. Anything else (E'...', DEFAULT, $1) may be false.
func (c *ctx) trueLiteral(t token) bool {
	v := c.text(t)
	switch t.kind {
	case tkString:
		if len(v) < 2 || v[0] != '\'' || strings.IndexByte(v, '\\') >= 0 {
			return false
		}
		v = v[1 : len(v)-1]
	case tkWord, tkNumber:
	default:
		return false
	}
	if v == "" || len(v) > 4 {
		return false
	}
	v = lowerASCII(v)
	return strings.HasPrefix("true", v) || strings.HasPrefix("yes", v) || v == "on" || v == "1"
}

// setConfig classifies set_config(name, value, is_local) called at t[i]:
// with a constant read-only switch as the name, it lifts read-only unless
// the value is a true constant; with any other name it is Admin
// (set_config('role', ...) is SET ROLE).
func (c *ctx) setConfig(t []token, i int) Class {
	if !is(t, i+1, tkLParen) || !is(t, i+2, tkString) || !is(t, i+3, tkComma) {
		return Admin
	}
	n := c.text(t[i+2])
	if n[0] != '\'' || strings.IndexByte(n, '\\') >= 0 || !isReadOnlyVar(n[1:len(n)-1]) {
		return Admin
	}
	if i+5 < len(t) && (is(t, i+5, tkComma) || is(t, i+5, tkRParen)) && c.trueLiteral(t[i+4]) {
		return Session
	}
	return LiftReadOnly
}

// scan looks through a statement's tokens for dangerous function calls and
// parenthesized data-modifying statements; in query context (sel) it also
// finds SELECT ... INTO and row-locking clauses.
func (c *ctx) scan(t []token, r *result, sel bool) {
	for i := 0; i < len(t); i++ {
		switch t[i].kind {
		case tkLParen:
			if c.nestedStmt(t, i+1) {
				j := match(t, i)
				if j < 0 {
					r.raise(Unknown)
					return
				}
				r.merge(c.stmt(t[i+1 : j]))
				i = j
			}
		case tkWord:
			if is(t, i+1, tkLParen) {
				c.call(t, i, r)
				continue
			}
			if !sel {
				continue
			}
			if c.kw(t, i, "into") {
				rr := result{class: DDL, cmd: "SELECT INTO"}
				k := i + 1
				for c.kw(t, k, "temporary") || c.kw(t, k, "temp") || c.kw(t, k, "unlogged") ||
					c.kw(t, k, "local") || c.kw(t, k, "global") || c.kw(t, k, "table") {
					k++
				}
				if n, _ := c.qname(t, k); n != "" {
					rr.tables = append(rr.tables, n)
				}
				r.merge(rr)
			} else if c.kw(t, i, "for") {
				switch {
				case c.kw(t, i+1, "update"), c.kw(t, i+1, "no") && c.kw(t, i+2, "key") && c.kw(t, i+3, "update"):
					r.raiseCmd(Write, "SELECT FOR UPDATE")
				case c.kw(t, i+1, "share"), c.kw(t, i+1, "key") && c.kw(t, i+2, "share"):
					r.raiseCmd(Write, "SELECT FOR SHARE")
				}
			}
		case tkQIdent, tkUQIdent:
			if is(t, i+1, tkLParen) || t[i].kind == tkUQIdent && c.kw(t, i+1, "uescape") {
				c.call(t, i, r)
			}
		}
	}
}

// nestedStmt reports whether t[i] starts a statement that may hide a write
// inside parentheses: a WITH, or INSERT INTO / UPDATE name / DELETE FROM /
// MERGE INTO.
func (c *ctx) nestedStmt(t []token, i int) bool {
	switch {
	case c.kw(t, i, "with"):
		return isIdent(t, i+1)
	case c.kw(t, i, "insert"), c.kw(t, i, "merge"):
		return c.kw(t, i+1, "into")
	case c.kw(t, i, "delete"):
		return c.kw(t, i+1, "from")
	case c.kw(t, i, "update"):
		// UPDATE name ... SET: "(update int)" in a column list is not one.
		if !isIdent(t, i+1) {
			return false
		}
		// Look a few tokens ahead only ("UPDATE ONLY s.t * AS x SET"), so
		// that nested "(update x (update x ..." stays linear.
		d := t[i].depth
		for k := i + 1; k < len(t) && k < i+12 && t[k].depth == d; k++ {
			if c.kw(t, k, "set") {
				return true
			}
		}
	}
	return false
}

// call classifies a call of the function named at t[i].
func (c *ctx) call(t []token, i int, r *result) {
	// Definitions and references by signature are not calls:
	// CREATE FUNCTION nextval(...), GRANT EXECUTE ON FUNCTION dblink(text),
	// DROP FUNCTION IF EXISTS lo_import(text), CREATE TABLE dblink (...).
	k := i
	for k >= 2 && t[k-1].kind == tkDot && isIdent(t, k-2) {
		k -= 2
	}
	if c.kw(t, k-1, "exists") && c.kw(t, k-2, "if") {
		k -= 2
	}
	for _, w := range [...]string{"function", "procedure", "routine", "aggregate", "table", "into", "view", "type"} {
		if c.kw(t, k-1, w) {
			return
		}
	}
	name := c.text(t[i])
	switch t[i].kind {
	case tkQIdent:
		name = name[1 : len(name)-1]
	case tkUQIdent:
		name = name[3 : len(name)-1]
		if strings.IndexByte(name, '\\') >= 0 || c.kw(t, i+1, "uescape") {
			r.raise(Unknown) // U&"..." escapes can spell any name
			return
		}
	default:
		var buf [48]byte
		if len(name) > len(buf) {
			return
		}
		b := buf[:len(name)]
		for j := 0; j < len(name); j++ {
			ch := name[j]
			if ch >= 'A' && ch <= 'Z' {
				ch += 'a' - 'A'
			}
			b[j] = ch
		}
		name = string(b)
	}
	if name == "set_config" {
		r.raise(c.setConfig(t, i))
		return
	}
	r.raise(funcClass(name))
}

// funcClass returns the class a call of the (lower-case) function name
// implies; Read for functions not in the list.
func funcClass(name string) Class {
	if cl, ok := dangerFuncs[name]; ok {
		return cl
	}
	switch {
	case strings.HasPrefix(name, "dblink"):
		return Admin
	case strings.HasPrefix(name, "pg_advisory"), strings.HasPrefix(name, "pg_try_advisory"):
		return Write
	case strings.HasPrefix(name, "pg_stat_reset"), strings.HasPrefix(name, "pg_ls_"),
		strings.HasPrefix(name, "pg_replication_origin_"), strings.HasPrefix(name, "pg_file_"):
		return Admin
	}
	return Read
}

var dangerFuncs = map[string]Class{
	// Signal or control the server.
	"pg_terminate_backend":           Admin,
	"pg_cancel_backend":              Admin,
	"pg_signal_backend":              Admin,
	"pg_reload_conf":                 Admin,
	"pg_rotate_logfile":              Admin,
	"pg_promote":                     Admin,
	"pg_switch_wal":                  Admin,
	"pg_switch_xlog":                 Admin,
	"pg_create_restore_point":        Admin,
	"pg_start_backup":                Admin,
	"pg_stop_backup":                 Admin,
	"pg_backup_start":                Admin,
	"pg_backup_stop":                 Admin,
	"pg_wal_replay_pause":            Admin,
	"pg_wal_replay_resume":           Admin,
	"pg_log_backend_memory_contexts": Admin,
	"pg_import_system_collations":    Admin,
	"pg_truncate_visibility_map":     Admin,
	"set_config":                     Admin, // set_config('role', ...) is SET ROLE
	// Server file system.
	"pg_read_file":        Admin,
	"pg_read_binary_file": Admin,
	"pg_stat_file":        Admin,
	"pg_logdir_ls":        Admin,
	"lo_import":           Admin,
	"lo_export":           Admin,
	// Replication.
	"pg_create_physical_replication_slot": Admin,
	"pg_create_logical_replication_slot":  Admin,
	"pg_drop_replication_slot":            Admin,
	"pg_copy_physical_replication_slot":   Admin,
	"pg_copy_logical_replication_slot":    Admin,
	"pg_replication_slot_advance":         Admin,
	"pg_logical_slot_get_changes":         Admin,
	"pg_logical_slot_get_binary_changes":  Admin,
	"pg_sync_replication_slots":           Admin,
	"pg_background_launch":                Admin,
	// Writes.
	"nextval":                    Write,
	"setval":                     Write,
	"lo_create":                  Write,
	"lo_creat":                   Write,
	"lo_unlink":                  Write,
	"lo_from_bytea":              Write,
	"lo_put":                     Write,
	"lo_open":                    Write,
	"lowrite":                    Write,
	"lo_truncate":                Write,
	"lo_truncate64":              Write,
	"pg_logical_emit_message":    Write,
	"pg_notify":                  Session,
	"query_to_xml":               Unknown, // run a query given as text
	"query_to_xmlschema":         Unknown,
	"query_to_xml_and_xmlschema": Unknown,
	"ts_stat":                    Unknown,
	"ts_rewrite":                 Unknown,
}

// copy classifies COPY name [(cols)] FROM|TO ... and COPY (query) TO ....
func (c *ctx) copy(t []token) result {
	r := result{class: Read, cmd: "COPY"}
	var inner result
	hasInner := false
	i := 1
	if is(t, i, tkLParen) {
		j := match(t, i)
		if j < 0 || j == i+1 {
			return unknown("COPY")
		}
		inner = c.stmt(t[i+1 : j])
		hasInner = true
		i = j + 1
	} else {
		n, j := c.qname(t, i)
		if n == "" {
			return unknown("COPY")
		}
		r.tables = append(r.tables, n)
		i = j
		if is(t, i, tkLParen) {
			if j = match(t, i); j < 0 {
				return unknown("COPY")
			}
			i = j + 1
		}
	}
	from := c.kw(t, i, "from")
	if !from && !c.kw(t, i, "to") {
		return unknown("COPY")
	}
	switch {
	case c.kw(t, i+1, "program"):
		r.class = Admin
	case c.kw(t, i+1, "stdin"), c.kw(t, i+1, "stdout"):
		if from {
			r.class = Write
		}
	default:
		r.class = Admin // a file on the database server
	}
	if from && hasInner {
		return unknown("COPY")
	}
	if !from {
		r.tables = nil
	}
	if hasInner {
		r.merge(inner)
	}
	c.scan(t[i:], &r, false)
	return r
}

// explain classifies EXPLAIN [ANALYZE] [VERBOSE] stmt and
// EXPLAIN (option [value], ...) stmt. Only ANALYZE executes the statement.
func (c *ctx) explain(t []token) result {
	i := 1
	analyze := false
	if is(t, i, tkLParen) {
		j := match(t, i)
		if j < 0 {
			return unknown("EXPLAIN")
		}
		d := t[i].depth + 1
		for k := i + 1; k < j; k++ {
			if t[k].depth != d || !(c.kw(t, k, "analyze") || c.kw(t, k, "analyse")) ||
				!(is(t, k-1, tkLParen) || is(t, k-1, tkComma)) {
				continue
			}
			v := k + 1
			if v >= j || t[v].kind == tkComma {
				analyze = true
				continue
			}
			val := c.text(t[v])
			if t[v].kind == tkString && len(val) >= 2 && val[0] == '\'' {
				val = val[1 : len(val)-1]
			}
			if !(eqFold(val, "false") || eqFold(val, "off") || val == "0") {
				analyze = true
			}
		}
		i = j + 1
	} else {
		for c.kw(t, i, "analyze") || c.kw(t, i, "analyse") || c.kw(t, i, "verbose") {
			if !c.kw(t, i, "verbose") {
				analyze = true
			}
			i++
		}
	}
	if i >= len(t) {
		return unknown("EXPLAIN")
	}
	inner := c.stmt(t[i:])
	if inner.class == Unknown {
		return unknown("EXPLAIN")
	}
	r := result{class: Read, cmd: "EXPLAIN"}
	if analyze {
		r.merge(inner)
	}
	return r
}

// prepare classifies PREPARE TRANSACTION and PREPARE name [(types)] AS stmt.
func (c *ctx) prepare(t []token) result {
	if c.kw(t, 1, "transaction") {
		return result{class: Transaction, cmd: "PREPARE TRANSACTION"}
	}
	i := 1
	if !isIdent(t, i) {
		return unknown("PREPARE")
	}
	i++
	if is(t, i, tkLParen) {
		j := match(t, i)
		if j < 0 {
			return unknown("PREPARE")
		}
		i = j + 1
	}
	if !c.kw(t, i, "as") || i+1 >= len(t) {
		return unknown("PREPARE")
	}
	r := result{class: Read, cmd: "PREPARE"}
	r.merge(c.stmt(t[i+1:]))
	return r
}

// declare classifies DECLARE name [options] CURSOR [WITH[OUT] HOLD] FOR query.
func (c *ctx) declare(t []token) result {
	k := c.topKw(t, 1, "cursor")
	if k < 0 {
		return unknown("DECLARE")
	}
	f := c.topKw(t, k+1, "for")
	if f < 0 || f+1 >= len(t) {
		return unknown("DECLARE")
	}
	r := result{class: Read, cmd: "DECLARE"}
	r.merge(c.stmt(t[f+1:]))
	return r
}

// setVarClass classifies assigning or resetting the run-time parameter
// named at t[i] (a single, unqualified name).
func (c *ctx) setVarClass(t []token, i int) (Class, bool) {
	if !isIdent(t, i) || is(t, i+1, tkDot) {
		return Session, false
	}
	if t[i].kind == tkUQIdent {
		return Unknown, true // U&"..." can spell any parameter name
	}
	name := c.identPart(t[i])
	// Parameter names are case-insensitive, quoted or not.
	switch {
	case eqFold(name, "role"), eqFold(name, "session_authorization"):
		return DCL, true
	case eqFold(name, "session_replication_role"):
		return Admin, true
	case isReadOnlyVar(name):
		return LiftReadOnly, true
	}
	return Session, false
}

func (c *ctx) set(t []token) result {
	i := 1
	for k := 0; k < 2; k++ {
		if c.kw(t, i, "session") && c.kw(t, i+1, "authorization") {
			return result{class: DCL, cmd: "SET SESSION AUTHORIZATION"}
		}
		if c.kw(t, i, "session") && c.kw(t, i+1, "characteristics") {
			return result{class: c.txModes(t, i+2, Session), cmd: "SET"}
		}
		if c.kw(t, i, "session") || c.kw(t, i, "local") {
			i++
		}
	}
	if c.kw(t, i, "role") {
		return result{class: DCL, cmd: "SET ROLE"}
	}
	if c.kw(t, i, "transaction") {
		return result{class: c.txModes(t, i+1, Session), cmd: "SET"}
	}
	if cl, ok := c.setVarClass(t, i); ok {
		// Making a session read-only is an ordinary setting; any other
		// value (off, DEFAULT, E'...') may lift it.
		if cl == LiftReadOnly && i+3 == len(t) && (c.kw(t, i+1, "to") || is(t, i+1, tkOp) && c.text(t[i+1]) == "=") &&
			c.trueLiteral(t[i+2]) {
			cl = Session
		}
		return result{class: cl, cmd: "SET"}
	}
	return result{class: Session, cmd: "SET"}
}

func (c *ctx) reset(t []token) result {
	switch {
	case c.kw(t, 1, "all"):
		// RESET ALL leaves role and session_authorization alone (the
		// server marks them GUC_NO_RESET_ALL) but resets
		// default_transaction_read_only.
		return result{class: LiftReadOnly, cmd: "RESET ALL"}
	case c.kw(t, 1, "session") && c.kw(t, 2, "authorization"):
		return result{class: DCL, cmd: "RESET"}
	}
	if cl, ok := c.setVarClass(t, 1); ok {
		return result{class: cl, cmd: "RESET"}
	}
	return result{class: Session, cmd: "RESET"}
}
