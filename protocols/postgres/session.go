package postgres

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	mrand "math/rand/v2"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tollgate-dev/tollgate/host/audit"
	"github.com/tollgate-dev/tollgate/host/event"
)

// session is one client connection after startup: one principal, one
// target, one upstream connection. Its rows form one hash chain.
type session struct {
	l          *Listener
	id         string
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

	client                  net.Conn
	up                      net.Conn
	cancelPID, cancelSecret uint32

	amu    sync.Mutex
	seq    uint64
	chain  audit.SessionChain
	ids    *mrand.ChaCha8 // event IDs: seeded once from crypto/rand, no syscall per row
	ticket audit.Ticket   // the last row's, on a synced target (durable.go)
	synced atomic.Uint64  // the highest ticket known durable

	relayState
	clientState
	holding holdState // the approval a statement waits on (hold.go)
}

// row starts an audit row for this session.
func (s *session) row(kind string) audit.Row {
	r := audit.Row{
		Time:       time.Now(),
		GatewayID:  s.l.deps.GatewayID,
		SessionID:  s.id,
		Protocol:   "postgres",
		Listener:   s.l.cfg.Name,
		Target:     s.targetName,
		Kind:       kind,
		RemoteAddr: s.remote,
		AccessRule: s.rule,
	}
	r.SetPrincipal(s.principal)
	return r
}

// record seals r into the session's chain and hands it to the recorder,
// which does not block. When the spool has no room for r, its minimal
// form takes r's place in the chain (the spool's reserve holds it), so
// the trail states the outage instead of showing a gap; when even that
// finds no room, the chain is rolled back and nothing refers to the
// missing row.
func (s *session) record(r audit.Row) {
	s.amu.Lock()
	defer s.amu.Unlock()
	seq, chain := s.seq, s.chain
	s.seq++
	r.Seq = s.seq
	if s.ids == nil {
		var seed [32]byte
		rand.Read(seed[:])
		s.ids = mrand.NewChaCha8(seed)
	}
	var b [16]byte
	s.ids.Read(b[:])
	r.EventID = audit.FormatID(b)
	s.chain.Seal(&r)
	synced := s.target != nil && s.target.synced
	t, err := audit.RecordTicket(s.l.deps.Recorder, r, synced)
	if errors.Is(err, audit.ErrFull) && !audit.Reserved(&r) {
		m := audit.Minimal(r)
		s.chain = chain
		s.chain.Seal(&m)
		t, err = audit.RecordTicket(s.l.deps.Recorder, m, synced)
	}
	if t != 0 {
		s.ticket = t
	}
	if err != nil {
		s.seq, s.chain = seq, chain
		s.l.deps.Log.Error("audit row not recorded", "session_id", r.SessionID, "kind", r.Kind, "err", err)
	}
}

// recordOpen writes the session.open row; refusal is why the session was
// refused, if it was.
func (s *session) recordOpen(refusal string) {
	r := s.row(audit.KindSessionOpen)
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
	s.record(r)
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
	r := s.row(audit.KindSessionClose)
	// Exact to the microsecond: the sessions table takes the opening time
	// as the close row's time minus its duration (audit.CloseRow).
	r.Time = r.Time.Truncate(time.Microsecond)
	r.DurationMicro = r.Time.Sub(s.opened.Truncate(time.Microsecond)).Microseconds()
	r.Status = fmt.Sprintf("%d statements", s.statements)
	s.mu.Lock()
	r.Error = s.closeErr
	s.mu.Unlock()
	s.record(r)
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
		sum := sha256.Sum256([]byte(sql))
		st.fields["sql_sha256"] = hex.EncodeToString(sum[:])
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
	if st.rows > 0 {
		if r.Annotations == nil {
			r.Annotations = make(map[string]string, 1)
		}
		r.Annotations["pg.rows"] = strconv.FormatInt(st.rows, 10)
	}
	s.record(r)
}

// scrub removes secret from s: a driver error must never carry the
// credential into a log line or an audit row.
func scrub(s, secret string) string {
	if secret == "" {
		return s
	}
	return strings.ReplaceAll(s, secret, "[credential]")
}
