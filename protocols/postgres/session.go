package postgres

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net"
	"strconv"
	"strings"
	"time"
	"unsafe"

	"github.com/tollgate-dev/tollgate/host/event"
	"github.com/tollgate-dev/tollgate/host/gate"
)

// session is one client connection after startup: one principal, one
// target, one upstream connection. Its rows form one hash chain.
type session struct {
	l          *Listener
	gs         *gate.Session // the session's rows: IDs, numbering, hash chain
	id         string        // gs.ID()
	principal  *event.Principal
	remote     string
	tls        bool
	pgUser     string
	database   string
	targetName string
	rule       string
	settings   *startupSettings // from the StartupMessage; nil before it
	target     *target
	cat        *catalog      // the target database's sensitive columns; nil: none declared
	catEntry   *catalogEntry // where cat is cached; client loop only
	opened     time.Time
	expires    time.Time // the token's exp; zero if it had none
	closeErr   string
	statements int64 // client loop only; read at close

	// ctx ends when the session does: the chain's calls get it.
	ctx    context.Context
	cancel context.CancelFunc

	client                  net.Conn
	up                      net.Conn
	cancelPID, cancelSecret uint32

	relayState
	clientState
	holding holdState // the approval a statement waits on (hold.go)
}

// opStmt is o's statement; nil for none.
func opStmt(o *op) *stmt {
	if o == nil {
		return nil
	}
	return o.st
}

// wants reports whether the chain that decided st acts on kind; for an
// event outside a decided statement, the current chain.
func (s *session) wants(st *stmt, kind string) bool {
	if st != nil && st.dec != nil {
		return st.dec.Wants(kind)
	}
	return s.gs.Wants(kind)
}

// process runs a response event through the chain that decided st (the
// current chain outside a decided statement); a failing chain is a deny.
func (s *session) process(st *stmt, ev *event.Event) event.Verdict {
	if st != nil && st.dec != nil {
		return st.dec.Process(s.ctx, ev)
	}
	return s.gs.Process(s.ctx, ev)
}

// callPluginsLocked is process for the relay loop, which holds mu while
// it handles a server message: mu is released for the chain's call, so
// that a slow plugin never stops the client loop (which queues the
// client's next messages under mu). What the relay works on meanwhile
// is its own: the batch, the op at the head of the queue (only the relay
// pops it) and its statement (the client loop is done with it once the
// op is queued); the client loop only appends to the queue, and wbuf
// gets the batch's rows after the call, in order.
func (s *session) callPluginsLocked(st *stmt, ev *event.Event) event.Verdict {
	s.mu.Unlock()
	defer s.mu.Lock()
	return s.process(st, ev)
}

// row starts an audit row for this session.
func (s *session) row(kind string) gate.Row { return s.gs.Row(kind) }

// record seals r into the session's rows and hands it to the recorder,
// which does not block (gate.Session.Record says what happens when the
// spool is full).
func (s *session) record(r gate.Row) { s.gs.Record(r) }

// recordOpen writes the session.open row; refusal is why the session was
// refused, if it was.
func (s *session) recordOpen(refusal string) {
	s.gs.SetPrincipal(s.principal)
	s.gs.SetTarget(s.targetName, s.rule)
	s.gs.SetSynced(s.target != nil && s.target.synced)
	r := s.row(gate.KindSessionOpen)
	r.Time = s.opened
	r.Request = map[string]string{"user": s.pgUser, "database": s.database, "tls": strconv.FormatBool(s.tls)}
	if s.settings != nil {
		// What the agent set on its session, and what it asked for and
		// did not get: a setting name may be anything, so it is bounded.
		for k, v := range s.settings.pass {
			r.Request["set."+k] = v
		}
		if len(s.settings.dropped) > 0 {
			r.Request["dropped_params"] = s.settings.droppedList(true)
		}
	}
	if refusal != "" {
		r.Verdict, r.Error = "deny", refusal
	}
	s.gs.Open(r)
}

// setCloseErr keeps the first reason the session ended abnormally; a
// Terminate from the client makes later errors moot.
func (s *session) setCloseErr(msg string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closeErr == "" && !s.ended {
		s.closeErr = msg
	}
}

func (s *session) recordClose() {
	s.mu.Lock()
	why := s.closeErr
	s.mu.Unlock()
	s.gs.Close(fmt.Sprintf("%d statements", s.statements), why)
}

// stmt is one statement's audit record, filled in as its results pass.
type stmt struct {
	start   time.Time
	fields  map[string]string
	verdict event.Verdict
	tag     string
	rows    int64
	bytes   int64
	reqSize int64
	err     string
	annot   []event.Annotation
	done    bool
	// oversize: over max_statement_bytes, refused; the row keeps a prefix.
	oversize bool
	// code is the SQLSTATE of the gateway's refusal; "" is 42501.
	code string
	// maskedNoted: the row says which sensitive columns were masked.
	maskedNoted bool
	// sensitive: the statement reads a sensitive column; its errors and
	// notices are withheld.
	sensitive bool
	// maskComputed: it uses a column declared derived = "mask" in an
	// expression, so every computed output column is masked.
	maskComputed bool
	// approvalID and approver are set when the statement was held for a
	// person's decision (hold.go).
	approvalID, approver string
	// ev is the statement's pg.query event, allocated with it.
	ev event.Event
	// dec is the chain's decision on the statement: its generation masks
	// the statement's rows and judges its messages, and is released once
	// the row is recorded. nil when the statement was refused before the
	// chain, or when it is not a statement the chain decides.
	dec *gate.Decision
}

// refusedPrefix is how much of a statement over max_statement_bytes its
// row keeps, beside its length and SHA-256: it did not run.
const refusedPrefix = 4 << 10

// recordStmt writes the statement's row once.
func (s *session) recordStmt(st *stmt) {
	if st == nil || st.done {
		return
	}
	st.done = true
	r := s.row("pg.query")
	r.Time = st.start
	// The statement is done with its fields: the row takes them whole
	// (the statement was under max_statement_bytes, or it was refused).
	r.Request = st.fields
	if sql, ok := st.fields["sql"]; ok {
		st.fields["sql_sha256"] = sha256Hex(sql)
		st.fields["sql_bytes"] = strconv.Itoa(len(sql))
		if st.oversize {
			st.fields["sql"] = sql[:min(len(sql), refusedPrefix)]
			for k, v := range st.fields {
				if strings.HasPrefix(k, "param.") && len(v) > refusedPrefix {
					st.fields[k] = v[:refusedPrefix]
				}
			}
		}
	}
	r.SetVerdict(st.verdict, st.annot...)
	r.Status = st.tag
	r.ResponseBytes = st.bytes
	r.RequestBytes = st.reqSize
	r.DurationMicro = time.Since(st.start).Microseconds()
	r.Error = st.err
	r.ApprovalID, r.Approver = st.approvalID, st.approver
	if st.dec != nil {
		// Recorded: its rows and messages have passed.
		defer st.dec.Done()
	}
	if st.rows > 0 {
		if r.Annotations == nil {
			r.Annotations = make(map[string]string, 1)
		}
		r.Annotations["pg.rows"] = strconv.FormatInt(st.rows, 10)
	}
	s.record(r)
}

// sha256Hex is the hex SHA-256 of s in one allocation: the text is
// hashed where it lies (Sum256 only reads it), not copied to a []byte
// first, and encoded on the stack.
func sha256Hex(s string) string {
	sum := sha256.Sum256(unsafe.Slice(unsafe.StringData(s), len(s)))
	var h [2 * sha256.Size]byte
	hex.Encode(h[:], sum[:])
	return string(h[:])
}

// scrub removes secret from s: a driver error must never carry the
// credential into a log line or an audit row.
func scrub(s, secret string) string {
	if secret == "" {
		return s
	}
	return strings.ReplaceAll(s, secret, "[credential]")
}
