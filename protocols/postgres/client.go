package postgres

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/tollgate-dev/tollgate/host/event"
	"github.com/tollgate-dev/tollgate/host/gate"
)

// run serves the session until either side ends it, then records its
// close row. It owns the upstream connection.
func (s *session) run() {
	s.portals = map[string]*portal{}
	s.parsing = map[string]*op{}
	s.prepared = map[string]*prepared{}
	s.settled = sync.NewCond(&s.mu)
	done := make(chan struct{})
	go func() {
		defer close(done)
		s.relay()
	}()
	s.clientLoop()
	s.awaitAnswers(leftDrain)
	s.mu.Lock()
	s.ended = true
	s.mu.Unlock()
	for name := range s.portals {
		s.dropPortal(name)
	}
	s.up.SetWriteDeadline(time.Now().Add(time.Second))
	s.up.Write([]byte{'X', 0, 0, 0, 4})
	s.up.Close()
	<-done
	s.recordUnanswered()
	s.flushClient()
	s.client.Close()
	s.l.cancels.remove(s.cancelPID, s.cancelSecret)
	s.cancel()
	s.recordClose()
}

// recordUnanswered records the statements still queued once the relay has
// ended. The relay recorded those queued when the upstream connection
// ended; these were read from the client and queued after that (a
// PostgreSQL restart ends sessions while their clients keep sending), and
// the server never answered them. Every statement read has its row.
func (s *session) recordUnanswered() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for o := s.headLocked(); o != nil; o = s.headLocked() {
		if o.st != nil && !o.st.done {
			if o.st.err == "" {
				o.st.err = "not run: the connection to the target was lost before the server read it"
			}
			s.recordStmt(o.st)
		}
		s.popLocked()
	}
}

// leftDrain bounds how long a session whose client left waits for the
// server's answers to what it had already sent.
const leftDrain = 10 * time.Second

// awaitAnswers waits, up to d, for the server to answer everything
// forwarded: a client that leaves mid-statement does not stop the server,
// and the statement's row must say what the server reported (its command
// tag, its rows, its error), not only that the client left.
func (s *session) awaitAnswers(d time.Duration) {
	s.mu.Lock()
	busy := s.headLocked() != nil && !s.upGone && !s.copyIn
	s.mu.Unlock()
	if !busy {
		return
	}
	s.forward(&pgproto3.Flush{}) // answers before a Sync the client never sent
	if !s.flushUp() {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	s.waitAnswered(ctx)
}

// clientLoop reads client messages until Terminate or an error.
func (s *session) clientLoop() {
	for {
		s.setIdleDeadline()
		msg, err := s.be.Receive()
		if err != nil {
			if s.idleTimeout(err) {
				continue // a statement is running: the client waits on it
			}
			s.clientError(err)
			return
		}
		if !s.handle(msg) {
			return
		}
		// Messages read while a statement waited for approval run now,
		// in order (hold.go).
		for len(s.stash) > 0 {
			m := s.stash[0]
			s.stash = s.stash[1:]
			if !s.handle(m) {
				return
			}
		}
		if s.stashErr != nil {
			s.clientError(s.stashErr)
			return
		}
		if len(s.ubuf) > 64<<10 {
			if !s.flushUp() {
				return
			}
		}
	}
}

// clientReader is what the Backend reads the client through. The Backend
// reads only when it has no whole message left, so a read is the moment
// the client's input is drained: what was decided and queued for the
// upstream goes out then, not at the client's Sync. A client that times
// its messages (a statement_timeout between Parse and Describe) sees the
// server act on them as they come.
type clientReader struct {
	r io.Reader
	s *session // nil during startup
}

func (c *clientReader) Read(p []byte) (int, error) {
	if s := c.s; s != nil && len(s.ubuf) > 0 && !s.flushUp() {
		s.up.Close() // the relay sees the upstream end and says so
	}
	return c.r.Read(p)
}

// clientError ends the session for a read error: a message over the cap
// or malformed gets a FATAL the client can read; a disconnect is noted.
func (s *session) clientError(err error) {
	var tooBig *pgproto3.ExceededMaxBodyLenErr
	switch {
	case errors.As(err, &tooBig):
		s.setCloseErr(fmt.Sprintf("client message of %d bytes over the limit of %d", tooBig.ActualBodyLen, tooBig.MaxExpectedBodyLen))
		s.fatal(codeProgramLimitExceeded, fmt.Sprintf("message of %d bytes is over this gateway's limit of %d bytes (max_message_bytes)", tooBig.ActualBodyLen, tooBig.MaxExpectedBodyLen))
		s.drainClient(int64(tooBig.ActualBodyLen))
	case errors.Is(err, io.ErrUnexpectedEOF):
		s.setCloseErr("client disconnected mid-message")
	case errors.Is(err, io.EOF), errors.Is(err, net.ErrClosed):
		s.setCloseErr("client disconnected without Terminate")
	default:
		var ne net.Error
		if errors.As(err, &ne) {
			s.setCloseErr("client connection: " + err.Error())
			return
		}
		s.setCloseErr("protocol violation: " + err.Error())
		s.fatal(codeProtocolViolation, "malformed or unknown message: "+err.Error())
	}
}

// Draining a refused message: at most its announced length and what a
// client pipelines behind it, for at most drainFor, ending once the
// client has been quiet for drainQuiet.
const (
	drainFor   = 5 * time.Second
	drainQuiet = 200 * time.Millisecond
	drainExtra = 64 << 10
)

// drainClient reads and drops what the client is still sending (the rest
// of a message refused for its size) before the session closes the
// connection: a close with unread bytes makes the kernel reset the
// connection, and a client still writing its message (pgx writes all of
// it before it reads) would lose the FATAL that says why with the reset.
func (s *session) drainClient(announced int64) {
	end := time.Now().Add(drainFor)
	buf := make([]byte, 32<<10)
	for left := announced + drainExtra; left > 0; {
		d := time.Now().Add(drainQuiet)
		if d.After(end) {
			d = end
		}
		s.client.SetReadDeadline(d)
		n, err := s.client.Read(buf[:min(int64(len(buf)), left)])
		left -= int64(n)
		if err != nil {
			return
		}
	}
}

// setIdleDeadline bounds the wait for the client's next message by the
// listener's idle_timeout and by the token's expiry, so that an idle
// session neither holds its upstream connection forever nor outlives the
// identity that opened it.
func (s *session) setIdleDeadline() {
	var d time.Time
	t := s.l.cfg.IdleTimeout.Duration
	if t > 0 {
		d = time.Now().Add(t)
	}
	if !s.expires.IsZero() && (d.IsZero() || s.expires.Before(d)) {
		d = s.expires
	}
	// Moving the deadline is a runtime timer update: a busy session moves
	// it only when it would fall more than a tenth of the timeout (at most
	// a second) short. Earlier deadlines always apply.
	slack := min(time.Second, t/10)
	if d.IsZero() != s.readDeadline.IsZero() || d.Before(s.readDeadline) || d.Sub(s.readDeadline) > slack {
		s.setReadDeadline(d)
	}
}

// setReadDeadline sets the client connection's read deadline and
// remembers it (setIdleDeadline). The client loop's goroutine only.
func (s *session) setReadDeadline(d time.Time) {
	s.client.SetReadDeadline(d)
	s.readDeadline = d
}

// idleTimeout handles a read that hit the idle deadline. While a
// statement runs (answers are still due) the client is waiting on the
// server, not idle: true means read on (the Backend keeps a partly read
// message). Otherwise the session ends with a FATAL that says why, and
// false is returned, as for any read error.
func (s *session) idleTimeout(err error) bool {
	var ne net.Error
	if !errors.As(err, &ne) || !ne.Timeout() {
		return false
	}
	s.mu.Lock()
	busy := s.headLocked() != nil
	s.mu.Unlock()
	if busy {
		return true
	}
	if s.expired() {
		return false
	}
	s.setCloseErr("idle for longer than idle_timeout")
	s.fatal(codeIdleSessionTimeout, "terminating the session: idle for longer than "+s.l.cfg.IdleTimeout.Duration.String()+" (the listener's idle_timeout)")
	return false
}

// expired ends a session whose token has expired: a session never
// outlives the identity that opened it.
func (s *session) expired() bool {
	if s.expires.IsZero() || time.Now().Before(s.expires) {
		return false
	}
	s.setCloseErr("the token expired")
	s.fatal(codeInvalidPassword, "the OIDC token expired at "+s.expires.UTC().Format(time.RFC3339)+"; connect again with a fresh token")
	return true
}

// fatal sends a FATAL error right away; the session is ending.
func (s *session) fatal(code, msg string) {
	s.mu.Lock()
	s.wbuf = errorMsg(s.wbuf, "FATAL", code, msg, s.id)
	s.mu.Unlock()
	s.flushClient()
	s.mu.Lock()
	s.fatalSent = true
	s.mu.Unlock()
}

// forward encodes m towards the upstream.
func (s *session) forward(m pgproto3.FrontendMessage) {
	b, err := m.Encode(s.ubuf)
	if err == nil {
		s.ubuf = b
	}
}

func (s *session) flushUp() bool {
	if len(s.ubuf) == 0 {
		return true
	}
	if !s.durable("server") {
		return false
	}
	_, err := s.up.Write(s.ubuf)
	if cap(s.ubuf) > 1<<20 {
		s.ubuf = nil
	} else {
		s.ubuf = s.ubuf[:0]
	}
	return err == nil
}

// push queues an op; answers of the gateway's own at the head are written.
func (s *session) push(o *op) {
	s.mu.Lock()
	s.pushLocked(o)
	wrote := s.drainLocked()
	s.mu.Unlock()
	if wrote {
		s.flushClient()
	}
}

// handle processes one client message; false ends the session.
func (s *session) handle(msg pgproto3.FrontendMessage) bool {
	switch msg.(type) {
	case *pgproto3.Query, *pgproto3.Parse, *pgproto3.Bind, *pgproto3.FunctionCall:
		if s.expired() {
			return false
		}
	}
	switch m := msg.(type) {
	case *pgproto3.Query:
		if s.clientSkip {
			return true
		}
		if !s.onQuery(m) {
			return false
		}
		return s.flushUp()
	case *pgproto3.Parse:
		if s.clientSkip {
			return true
		}
		return s.onParse(m)
	case *pgproto3.Bind:
		if s.clientSkip {
			return true
		}
		return s.onBind(m)
	case *pgproto3.Describe:
		if s.clientSkip {
			return true
		}
		o := &op{kind: opDescribe}
		if m.ObjectType == 'P' {
			if p := s.portals[m.Name]; p != nil {
				p.described = true
				o.portal = p
			}
		}
		s.forward(m)
		s.push(o)
	case *pgproto3.Execute:
		if s.clientSkip {
			return true
		}
		s.onExecute(m)
	case *pgproto3.Close:
		if s.clientSkip {
			return true
		}
		if m.ObjectType == 'S' {
			s.onCloseStatement(m)
			return true
		}
		s.dropPortal(m.Name)
		s.forward(m)
		s.push(&op{kind: opClose})
	case *pgproto3.Sync:
		s.clientSkip = false
		s.seg++
		s.execInSeg = false
		s.forward(m)
		s.push(&op{kind: opSync})
		return s.flushUp()
	case *pgproto3.Flush:
		if s.clientSkip {
			return true
		}
		s.forward(m)
		return s.flushUp()
	case *pgproto3.CopyData:
		s.forward(m)
	case *pgproto3.CopyDone, *pgproto3.CopyFail:
		s.forward(m)
		return s.flushUp()
	case *pgproto3.FunctionCall:
		if s.clientSkip {
			return true
		}
		s.onFunctionCall(m)
		return s.flushUp()
	case *pgproto3.Terminate:
		s.mu.Lock()
		s.ended = true
		s.mu.Unlock()
		return false
	default:
		s.setCloseErr(fmt.Sprintf("protocol violation: unexpected %T", msg))
		s.fatal(codeProtocolViolation, fmt.Sprintf("unexpected message %T after startup", msg))
		return false
	}
	return true
}

// statement event and verdict

// decide runs the statement's pg.query event through the chain. A hold
// waits for a person's decision (hold.go); approved, the statement runs
// with the verdict still "hold" and the approval on its row.
func (s *session) decide(st *stmt) (event.Verdict, bool) {
	size := int64(len(st.fields["sql"]))
	if _, bind := st.fields["params"]; bind {
		size += st.reqSize
	}
	if max := s.maxStatement(); size > max {
		st.oversize, st.code = true, codeProgramLimitExceeded
		return event.Verdict{Action: event.Deny, Reason: fmt.Sprintf("the statement and its parameters are %d bytes, over this gateway's max_statement_bytes of %d: it would not be recorded whole", size, max)}, false
	}
	if why := s.checkSensitive(st, st.fields["sql"]); why != "" {
		return event.Verdict{Action: event.Deny, Reason: why}, false
	}
	st.ev = event.Event{Phase: event.Request, Protocol: "postgres", Kind: "pg.query", SessionID: s.id,
		Target: s.targetName, Principal: s.principal, Fields: st.fields}
	ev := &st.ev
	// The context ends with the session's client: nothing a plugin does
	// for this statement outlives it.
	st.dec = s.gs.Decide(s.ctx, ev, func(_ context.Context, ev *event.Event, v event.Verdict) (event.Verdict, bool) {
		return s.hold(st, ev, v)
	})
	if st.dec.Refusal == gate.RefusedAuditFull {
		st.code = codeInsufficientResources
	}
	v := st.dec.Verdict
	v.Reason = st.dec.Reason
	return v, st.dec.Allowed
}

// rewrites reports whether v's Changes apply to the statement: a rewrite,
// or a hold (the reviewer approved the statement as rewritten).
func rewrites(v event.Verdict) bool {
	return v.Action == event.Rewrite || v.Action == event.Hold
}

func (s *session) onQuery(m *pgproto3.Query) bool {
	// The Backend decodes the next Query into the same struct, and the
	// client is read while a statement waits (settle, hold): keep the text.
	text := m.String
	if ok, alive := s.textSafe(text, false); !ok {
		return alive
	}
	s.statements++
	st := &stmt{start: time.Now(), fields: map[string]string{"sql": text}, reqSize: int64(len(text))}
	v, ok := s.decide(st)
	st.verdict = v
	if !ok {
		st.err = "denied: " + v.Reason
		s.recordStmt(st)
		s.push(&op{kind: opSynth, synth: errorMsg(nil, "ERROR", st.denyCode(), denyText(v), s.id), rfq: true})
		return true
	}
	sql := text
	if nv, ok := v.Changes["sql"]; ok && rewrites(v) {
		sql = nv
		st.fields["sql"] = nv
	}
	s.recordForward(st)
	qo := &op{kind: opQuery, st: st, sql: sql, maskComputed: st.maskComputed}
	qo.rows, qo.chainRows = s.rowsPass(st)
	if qo.rows {
		if q, f, ok := copyOut(sql); ok && f != copyBinary {
			// Learn the columns of COPY TO STDOUT (copy.go); every answer
			// to these three messages stays in the gateway.
			qo.copyOf, qo.copyFmt = &portal{}, f
			s.forward(&pgproto3.Parse{Query: q})
			s.forward(&pgproto3.Describe{ObjectType: 'S'})
			s.forward(&pgproto3.Sync{})
			s.push(&op{kind: opParse, swallow: true})
			s.push(&op{kind: opDescribe, portal: qo.copyOf, swallow: true})
			s.push(&op{kind: opSync, swallow: true})
		}
	}
	if mayChangeStatements(sql) {
		qo.changes = true
		s.stmtEpoch++
	}
	s.forward(&pgproto3.Query{String: sql})
	s.push(qo)
	return true
}

// denyCode is the SQLSTATE of the gateway's refusal of st.
func (st *stmt) denyCode() string {
	if st.code != "" {
		return st.code
	}
	return codeInsufficientPriv
}

// maxStatement is the listener's max_statement_bytes.
func (s *session) maxStatement() int64 {
	if n := s.l.cfg.MaxStatementBytes; n > 0 {
		return int64(n)
	}
	return 1 << 20
}

func denyText(v event.Verdict) string {
	r := v.Reason
	if r == "" {
		r = "denied by policy"
	}
	if v.Plugin != "" {
		return r + " (plugin " + v.Plugin + ")"
	}
	return r
}

// onBind is the extended protocol's statement: the SQL of the prepared
// statement and the parameters, through the chain on every Bind.
func (s *session) onBind(m *pgproto3.Bind) bool {
	// The Backend decodes the next Bind into the same struct, over the
	// same read buffer, and the client is read while a statement waits
	// (settle, hold): what is judged and sent must be a copy of its own.
	m = cloneBind(m)
	s.statements++
	s.dropPortal(m.DestinationPortal) // a Bind replaces the portal of its name
	sql, changes, known := s.statementSQL(m.PreparedStatement)
	s.mu.Lock()
	gone := s.upGone || s.killed != ""
	s.mu.Unlock()
	if gone {
		return false
	}
	st := &stmt{start: time.Now(), fields: bindFields(sql, m)}
	if !known {
		st.fields["statement"] = m.PreparedStatement
		st.verdict = event.Verdict{Action: event.Deny, Reason: "prepared statement " + strconv.Quote(m.PreparedStatement) + " was not prepared through this gateway"}
		st.err = "denied: " + st.verdict.Reason
		s.recordStmt(st)
		s.clientSkip = true
		s.push(&op{kind: opSynth, synth: errorMsg(nil, "ERROR", codeInvalidStatementName, st.verdict.Reason, s.id)})
		return true
	}
	for _, p := range m.Parameters {
		st.reqSize += int64(len(p))
	}
	v, ok := s.decide(st)
	st.verdict = v
	if !ok {
		st.err = "denied: " + v.Reason
		s.recordStmt(st)
		s.clientSkip = true
		s.push(&op{kind: opSynth, synth: errorMsg(nil, "ERROR", st.denyCode(), denyText(v), s.id)})
		return true
	}
	if rewrites(v) {
		for k, val := range v.Changes {
			i, isParam := paramIndex(k)
			if !isParam || i >= len(m.Parameters) || paramFormat(m, i) != pgproto3.TextFormat {
				continue
			}
			m.Parameters[i] = []byte(val)
			st.fields[k] = val
		}
	}
	s.portals[m.DestinationPortal] = &portal{st: st, sql: sql, changes: changes}
	s.recordForward(st)
	s.forward(m)
	s.push(&op{kind: opBind, st: st})
	return true
}

// cloneBind copies m and its values into memory of its own.
func cloneBind(m *pgproto3.Bind) *pgproto3.Bind {
	n := 0
	for _, p := range m.Parameters {
		n += len(p)
	}
	arena := make([]byte, 0, n)
	c := &pgproto3.Bind{DestinationPortal: m.DestinationPortal, PreparedStatement: m.PreparedStatement,
		ParameterFormatCodes: append([]int16(nil), m.ParameterFormatCodes...),
		ResultFormatCodes:    append([]int16(nil), m.ResultFormatCodes...)}
	if m.Parameters != nil {
		c.Parameters = make([][]byte, len(m.Parameters))
	}
	for i, p := range m.Parameters {
		if p == nil {
			continue
		}
		arena = append(arena, p...)
		c.Parameters[i] = arena[len(arena)-len(p) : len(arena) : len(arena)]
	}
	return c
}

// dropPortal forgets a portal the client closed, rebound or left behind.
// A portal that was bound (its statement passed the chain) but never
// executed still gets its row, saying so: every statement the chain saw
// is in the trail.
func (s *session) dropPortal(name string) {
	p := s.portals[name]
	if p == nil {
		return
	}
	delete(s.portals, name)
	if p.executed {
		return
	}
	// Under mu: the relay may be recording the server's answer to the
	// Bind (an error) into the same statement.
	s.mu.Lock()
	if p.st.err == "" {
		p.st.err = "bound but never executed"
	}
	s.recordStmt(p.st)
	s.mu.Unlock()
}

func (s *session) onExecute(m *pgproto3.Execute) {
	p := s.portals[m.Portal]
	if p == nil {
		// Not bound through this gateway (its Bind failed or was never
		// sent): the server answers with an error; record it.
		p = &portal{st: &stmt{start: time.Now(), fields: map[string]string{"portal": m.Portal}}}
	}
	p.executed = true
	s.execInSeg = true
	rows, chainRows := s.rowsPass(p.st)
	if rows && !p.described {
		// Masking needs the columns: ask for them, and keep the answer.
		s.forward(&pgproto3.Describe{ObjectType: 'P', Name: m.Portal})
		s.push(&op{kind: opDescribe, portal: p, swallow: true})
		p.described = true
	}
	eo := &op{kind: opExecute, st: p.st, portal: p, sql: p.sql, rows: rows, chainRows: chainRows, maskComputed: p.st.maskComputed}
	if p.changes {
		eo.changes = true
		s.stmtEpoch++
	}
	s.forward(m)
	s.push(eo)
}

func (s *session) onFunctionCall(m *pgproto3.FunctionCall) {
	s.statements++
	st := &stmt{start: time.Now(), fields: map[string]string{"function_oid": strconv.FormatUint(uint64(m.Function), 10)}}
	if !s.l.cfg.AllowFunctionCall {
		st.verdict = event.Verdict{Action: event.Deny, Reason: "the FunctionCall message is refused by this gateway (allow_function_call)"}
		st.err = "denied: " + st.verdict.Reason
		s.recordStmt(st)
		s.push(&op{kind: opSynth, synth: errorMsg(nil, "ERROR", codeInsufficientPriv, st.verdict.Reason, s.id), rfq: true})
		return
	}
	st.verdict = event.Verdict{Action: event.Allow}
	s.recordForward(st)
	s.forward(m)
	s.push(&op{kind: opFunc, st: st})
}

// bindFields are a Bind's event fields: sql, statement and portal names
// when not empty, params (the count) and param.N (1-based): text-format
// values as sent, binary ones as \x followed by hex with param.N.format =
// binary; NULLs are absent.
func bindFields(sql string, m *pgproto3.Bind) map[string]string {
	f := make(map[string]string, 2+len(m.Parameters))
	f["sql"] = sql
	if m.PreparedStatement != "" {
		f["statement"] = m.PreparedStatement
	}
	if m.DestinationPortal != "" {
		f["portal"] = m.DestinationPortal
	}
	if len(m.Parameters) > 0 {
		f["params"] = strconv.Itoa(len(m.Parameters))
	}
	for i, p := range m.Parameters {
		if p == nil {
			continue
		}
		k := "param." + strconv.Itoa(i+1)
		if paramFormat(m, i) == pgproto3.BinaryFormat {
			// Marked, so that a text value reading \x41 is not the
			// binary 'A': an approval and a row must tell them apart.
			f[k] = `\x` + hex.EncodeToString(p)
			f[k+".format"] = "binary"
		} else {
			f[k] = string(p)
		}
	}
	return f
}

func paramFormat(m *pgproto3.Bind, i int) int16 {
	switch len(m.ParameterFormatCodes) {
	case 0:
		return pgproto3.TextFormat
	case 1:
		return m.ParameterFormatCodes[0]
	}
	if i < len(m.ParameterFormatCodes) {
		return m.ParameterFormatCodes[i]
	}
	return pgproto3.TextFormat
}

// paramIndex parses "param.N" into the 0-based N-1.
func paramIndex(k string) (int, bool) {
	n, ok := strings.CutPrefix(k, "param.")
	if !ok {
		return 0, false
	}
	i, err := strconv.Atoi(n)
	if err != nil || i < 1 {
		return 0, false
	}
	return i - 1, true
}
