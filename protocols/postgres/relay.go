package postgres

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/tollgate-dev/tollgate/host/event"
)

// How the two directions share one client stream
//
// The client loop reads client messages, runs statements through the
// chain and forwards them; the relay loop reads the upstream's answers and
// writes them to the client. Every forwarded message that the server
// answers pushes an op onto a queue, in forwarding order, and the relay
// matches each answer to the op at the head. A message the gateway answers
// itself (a deny) is an op too, holding its bytes: it reaches the client
// exactly after the answers to everything forwarded before it.
//
// When the server reports an error in the extended protocol it skips
// every message up to Sync: the relay drops the queued ops up to the
// Sync (the gateway's own answers among them, as PostgreSQL would say
// nothing more), or, if the Sync has not been read yet, drops the ops the
// client loop pushes until it comes.

type opKind uint8

const (
	opParse opKind = iota
	opBind
	opDescribe
	opExecute
	opClose
	opSync
	opQuery
	opFunc
	opSynth
)

type op struct {
	kind    opKind
	st      *stmt   // Query, Bind, Execute: the statement's audit record
	portal  *portal // Describe P, Execute
	swallow bool    // the gateway's own message: answers are not relayed
	synth   []byte  // opSynth: messages to send
	rfq     bool    // opSynth: then ReadyForQuery with the current status
	rows    bool    // Query, Execute: rows go through the batch (a plugin wants pg.rows, or columns are sensitive)
	// chainRows: a plugin wants pg.rows (asked once, when the op is made).
	chainRows bool
	// maskComputed: the statement uses a sensitive column declared
	// derived = "mask" in an expression: every computed column is masked.
	maskComputed bool
	sql          string   // Query, Execute: for pg.rows events
	desc         *rowDesc // Query: the current result's columns
	copyOf       *portal  // Query of COPY TO STDOUT: the columns the server described
	copyFmt      copyFormat

	// Prepared statements (statements.go).
	name       string   // Parse, Close: the statement name
	oids       []uint32 // Parse: the parameter types
	seg, epoch uint64   // Parse: the client's Sync segment and statement epoch when sent
	closesStmt bool     // Close of a statement (not a portal)
	sqlChanges bool     // Parse: running sql may change prepared statements
	answered   bool     // Parse: the server answered it (under mu)
	relayErr   bool     // a swallowed op whose error the client must still see
	changes    bool     // Query, Execute: may create or drop prepared statements
}

// portal is one Bind: its statement record and its columns once described.
type portal struct {
	st        *stmt
	sql       string
	changes   bool     // running sql may change prepared statements
	described bool     // client loop: a Describe P was forwarded since Bind
	executed  bool     // client loop: an Execute was forwarded
	desc      *rowDesc // relay loop: set by the Describe answer
}

// rowDesc is a result's columns, copied out of a RowDescription, or the
// shape of COPY TO STDOUT lines.
type rowDesc struct {
	cols []event.Column
	copy bool       // rows are COPY lines, split into cols in format fmt
	fmt  copyFormat // for copy
	// sens[i] is the sensitive column output column i comes from, as the
	// server named its source (catalog.go); computed[i]: the server named
	// no source (an expression). Both nil when nothing is sensitive.
	sens     []*sensitiveCol
	computed []bool
	types    []uint32
}

// A session's state is split by owner: queueState is shared by both
// loops under mu; clientWriter is whoever holds wmu; rowBatcher and the
// upstream reader belong to the relay loop; clientState to the client
// loop; holdState to a statement's approval wait (hold.go). A field is
// touched only by its owner (or under its lock): the race detector runs
// every test.
type relayState struct {
	queueState
	clientWriter
	rowBatcher
}

// queueState is the statements in flight and what the server said of
// them, shared by the client loop (which queues) and the relay loop
// (which answers), under mu.
type queueState struct {
	mu         sync.Mutex
	ops        []*op
	head       int
	serverSkip bool   // the server is discarding messages until Sync
	txStatus   byte   // from the last ReadyForQuery
	wbuf       []byte // bytes for the client, flushed by flushClient
	swallowRFQ bool   // a rows deny: drop answers until ReadyForQuery
	ended      bool   // Terminate or client gone: upstream errors are not news
	upGone     bool   // the upstream connection ended
	copyIn     bool   // the server waits for COPY data from the client
	// settled wakes the client loop waiting for the queue to empty (settle).
	settled *sync.Cond
	// prepared are the statement names the server confirmed; stmtChanging
	// counts queued ops that may change them (statements.go).
	prepared     map[string]*prepared
	stmtChanging int

	// killed is why the relay ends the session: the server reported a
	// setting the gateway cannot judge statements under (settings.go).
	// Written under mu by the relay.
	killed string

	// endHeld, endAt: on a synced target, the end of a simple Query's
	// (or a FunctionCall's) answer, from its first CommandComplete or
	// error on, stays in wbuf until ReadyForQuery, when its row is
	// recorded (durable.go).
	endHeld bool
	endAt   int

	// fatalSent: the gateway sent the client a FATAL; nothing reaches the
	// client after it (the server's answers to the session's end, while
	// the rest of a refused message is drained, would read as news).
	fatalSent bool
}

// clientWriter writes to the client, one writer at a time (wmu).
type clientWriter struct {
	wmu       sync.Mutex
	spare     []byte
	clientErr error
}

// rowBatcher is the relay loop's: result rows on their way through the
// chain, and the column descriptions they are read with.
type rowBatcher struct {
	batch batch
	drow  pgproto3.DataRow
	// The last RowDescription decoded, and its bytes (rowDescLocked).
	lastDesc     *rowDesc
	lastDescBody []byte
	lastDescCat  *catalog
}

// clientState is the client loop's.
type clientState struct {
	be         *pgproto3.Backend
	ubuf       []byte
	clientSkip bool // after a deny in the extended protocol: until Sync
	// readDeadline is the client connection's read deadline as last set.
	readDeadline time.Time
	portals      map[string]*portal
	// parsing is the last Parse sent per statement name; seg counts the
	// client's Syncs and stmtEpoch the ops sent that may change prepared
	// statements (statements.go). execInSeg: an Execute was sent since
	// the last Sync.
	parsing   map[string]*op
	seg       uint64
	stmtEpoch uint64
	execInSeg bool
	// stash holds what the client sent while a statement waited for
	// approval, handled after the wait; stashErr is the read error that
	// ended that wait (the client went away).
	stash    []pgproto3.FrontendMessage
	stashErr error
}

// push queues o, unless the server is skipping to Sync (then only a Sync
// is queued, and it ends the skipping).
func (s *session) pushLocked(o *op) {
	if s.serverSkip {
		if o.kind != opSync {
			return
		}
		s.serverSkip = false
	}
	if o.changes {
		s.stmtChanging++
	}
	s.ops = append(s.ops, o)
}

func (s *session) headLocked() *op {
	if s.head < len(s.ops) {
		return s.ops[s.head]
	}
	return nil
}

func (s *session) popLocked() {
	if s.ops[s.head].changes {
		s.stmtChanging--
	}
	s.ops[s.head] = nil
	s.head++
	if s.head == len(s.ops) {
		s.ops, s.head = s.ops[:0], 0
		s.settled.Broadcast()
	}
}

// drainLocked writes the gateway's own answers that are now at the head.
func (s *session) drainLocked() bool {
	wrote := false
	for o := s.headLocked(); o != nil && o.kind == opSynth; o = s.headLocked() {
		s.wbuf = append(s.wbuf, o.synth...)
		if o.rfq {
			s.wbuf = append(s.wbuf, 'Z', 0, 0, 0, 5, s.txStatus)
		}
		s.popLocked()
		wrote = true
	}
	return wrote
}

// flushClient writes what is buffered for the client.
func (s *session) flushClient() error {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	s.mu.Lock()
	if s.fatalSent {
		s.wbuf = s.wbuf[:0]
		s.mu.Unlock()
		return s.clientErr
	}
	buf := s.wbuf
	if s.endHeld && !s.upGone && s.killed == "" {
		// What precedes the held end goes out; the end stays.
		s.wbuf = append(s.spare[:0], buf[s.endAt:]...)
		buf = buf[:s.endAt]
		s.endAt = 0
	} else {
		s.wbuf = s.spare[:0]
	}
	s.mu.Unlock()
	// The rows of what buf answers were recorded before it was taken
	// (under mu, with the message that ends it): wait for them.
	if len(buf) > 0 && s.clientErr == nil && !s.durable("client") {
		s.clientErr = errNotDurable
		s.client.Close()
	}
	if len(buf) > 0 && s.clientErr == nil {
		if _, err := s.client.Write(buf); err != nil {
			s.clientErr = err
		}
	}
	if cap(buf) <= 1<<20 {
		s.spare = buf[:0]
	} else {
		s.spare = nil
	}
	return s.clientErr
}

// errorMsg encodes an ErrorResponse from the gateway.
func errorMsg(dst []byte, severity, code, msg, sessionID string) []byte {
	b, _ := (&pgproto3.ErrorResponse{Severity: severity, SeverityUnlocalized: severity, Code: code,
		Message: msg, Detail: "tollgate session " + sessionID}).Encode(dst)
	return b
}

// msgReader reads whole messages from the upstream into one buffer that
// is reused: a message is valid until the next call.
type msgReader struct {
	r      io.Reader
	buf    []byte
	rp, wp int
	max    int
}

// maxServerMessage bounds one upstream message (PostgreSQL's own limit
// for a field is 1 GB).
const maxServerMessage = 1<<30 + 1<<20

// whole reports whether a complete message is buffered, so that the
// next call returns without reading.
func (m *msgReader) whole() bool {
	if m.wp-m.rp < 5 {
		return false
	}
	n := int(int32(binary.BigEndian.Uint32(m.buf[m.rp+1:])))
	return n >= 4 && m.wp-m.rp >= 1+n
}

func (m *msgReader) fill(n int) error {
	for m.wp-m.rp < n {
		if m.wp == len(m.buf) {
			if m.rp > 0 {
				m.wp = copy(m.buf, m.buf[m.rp:m.wp])
				m.rp = 0
			} else {
				// Grow with what arrives, not with what the length
				// prefix claims: a lying peer costs what it sends.
				nb := make([]byte, min(n, max(2*len(m.buf), 32<<10)))
				m.wp = copy(nb, m.buf[:m.wp])
				m.buf = nb
			}
		}
		k, err := m.r.Read(m.buf[m.wp:])
		m.wp += k
		if err != nil {
			if m.wp-m.rp >= n {
				return nil
			}
			if err == io.EOF && m.wp > m.rp {
				return io.ErrUnexpectedEOF
			}
			return err
		}
	}
	return nil
}

// next returns the next message, type byte and length included.
func (m *msgReader) next() ([]byte, error) {
	if m.rp == m.wp {
		m.rp, m.wp = 0, 0
		if len(m.buf) > 1<<20 {
			m.buf = make([]byte, 32<<10)
		}
	}
	if err := m.fill(5); err != nil {
		return nil, err
	}
	n := int(int32(binary.BigEndian.Uint32(m.buf[m.rp+1:])))
	if n < 4 || n > m.max {
		return nil, fmt.Errorf("upstream message %q with invalid length %d", m.buf[m.rp], n)
	}
	if err := m.fill(1 + n); err != nil {
		return nil, err
	}
	msg := m.buf[m.rp : m.rp+1+n]
	m.rp += 1 + n
	return msg, nil
}

// relay is the upstream → client loop. It returns when the upstream
// connection ends.
func (s *session) relay() {
	r := &msgReader{r: s.up, buf: make([]byte, 32<<10), max: maxServerMessage}
	for {
		if !r.whole() {
			// About to wait for the upstream: the client gets what is
			// ready first (results, a Flush's answers, notifications).
			if s.flushClient() != nil {
				s.up.Close()
			}
		}
		msg, err := r.next()
		if err == nil && msg[0] == 'Z' && len(msg) != 6 {
			err = errors.New("malformed ReadyForQuery from the upstream")
		}
		if err != nil {
			s.upstreamEnded(err)
			return
		}
		if s.onServer(msg) {
			if s.flushClient() != nil {
				s.up.Close()
			}
		}
		if s.killed != "" {
			// The server's session is in a state the gateway cannot
			// judge statements in: end it before anything else runs.
			s.setCloseErr(s.killed)
			s.flushClient()
			s.client.Close()
			s.up.Close()
		}
	}
}

// upstreamEnded tells the client, unless it is the one that left, and
// closes its connection so that the client loop ends too.
func (s *session) upstreamEnded(err error) {
	s.mu.Lock()
	s.upGone = true
	s.settled.Broadcast()
	ended := s.ended || s.killed != ""
	why := "upstream connection lost"
	switch {
	case s.killed != "":
		why = s.killed
	case ended:
		why = "the client left before the result"
	}
	// Statements still waiting for their results end here, with a row.
	for o := s.headLocked(); o != nil; o = s.headLocked() {
		if o.st != nil && !o.st.done {
			if o.st.err == "" {
				o.st.err = why
			}
			s.recordStmt(o.st)
		}
		s.popLocked()
	}
	if !ended {
		s.wbuf = errorMsg(s.wbuf, "FATAL", codeConnectionFailure, "the connection to target "+s.targetName+" was lost", s.id)
	}
	s.mu.Unlock()
	if !ended {
		s.setCloseErr("upstream: " + scrub(err.Error(), s.target.password))
		s.flushClient()
		s.client.Close()
	}
}

// onServer handles one upstream message; true means flush now (the
// buffer for the client is large).
func (s *session) onServer(msg []byte) bool {
	typ, body := msg[0], msg[5:]
	s.mu.Lock()
	defer s.mu.Unlock()
	o := s.headLocked()
	switch typ {
	case 'S': // ParameterStatus: any time
		if why := unsafeSetting(body); why != "" {
			// Closed here, under mu: nothing the client loop sends
			// from now on can reach the server.
			s.up.Close()
			s.wbuf = errorMsg(s.wbuf, "FATAL", codeFeatureNotSupported, why, s.id)
			s.killed = why
			// The close row's reason, now: once the FATAL is out the
			// client loop may end the session first, and a reason set
			// after that would be lost.
			if s.closeErr == "" && !s.ended {
				s.closeErr = why
			}
			return true
		}
		s.wbuf = append(s.wbuf, msg...)
		return len(s.wbuf) > 64<<10
	case 'N', 'A': // Notice, Notification: any time
		s.wbuf = append(s.wbuf, s.passMessageLocked(o, typ, msg)...)
		return len(s.wbuf) > 64<<10
	}
	if s.swallowRFQ {
		if typ != 'Z' {
			s.completeLocked(o, typ, body)
			return false
		}
		s.swallowRFQ = false
	}
	if o == nil {
		// Nothing asked for this: relay it (a FATAL before the server
		// closes, say).
		if typ == 'E' {
			msg = s.passMessageLocked(nil, typ, msg)
		}
		s.wbuf = append(s.wbuf, msg...)
		return len(s.wbuf) > 64<<10
	}
	if typ == 'E' && !o.swallow {
		// What the client and the audit row see of an error: masked.
		if msg = s.passMessageLocked(o, typ, msg); len(msg) < 5 {
			msg = errorMsg(nil, "ERROR", codeInsufficientPriv, "the server's error is withheld by policy", s.id)
		}
		body = msg[5:]
	}
	switch typ {
	case 'D': // DataRow
		if o.st != nil {
			o.st.rows++
			o.st.bytes += int64(len(msg))
		}
		if o.rows && (o.kind == opQuery || o.kind == opExecute) {
			s.addRowLocked(o, body)
			return len(s.wbuf) > 64<<10
		}
	case 'T': // RowDescription: decoded only when rows go to the chain
		switch {
		case o.kind == opQuery && o.rows:
			s.flushBatchLocked(o)
			o.desc = s.rowDescLocked(body)
		case o.kind == opDescribe && o.portal != nil:
			o.portal.desc = s.rowDescLocked(body)
		}
	case 'H': // CopyOutResponse
		if o.rows && (o.kind == opQuery || o.kind == opExecute) {
			s.flushBatchLocked(o)
			o.desc = copyDesc(body, o)
			if o.desc == nil {
				s.withholdLocked(o, "this COPY TO STDOUT cannot pass the masking plugins (binary format, or columns the gateway cannot name); "+
					"use COPY table or (query) TO STDOUT in text or csv format without DELIMITER, NULL, QUOTE or ESCAPE options")
				return false
			}
		}
	case 'd': // CopyData from the server
		if o.rows && o.desc != nil && o.desc.copy {
			if o.st != nil {
				o.st.rows++
				o.st.bytes += int64(len(msg))
			}
			s.addRowLocked(o, body)
			return len(s.wbuf) > 64<<10
		}
	case 'C', 'I', 's', 'E', 'c': // results end (or a copy's data does)
		if o.kind == opQuery || o.kind == opExecute {
			s.flushBatchLocked(o)
		}
	}
	switch typ {
	case 'G':
		s.copyIn = true
	case 'C', 'E', 'Z':
		s.copyIn = false
	}
	if !(o.swallow || s.swallowRFQ) || (typ == 'E' && o.relayErr && !s.swallowRFQ) {
		s.holdEndLocked(o, typ)
		s.wbuf = append(s.wbuf, msg...)
	}
	s.completeLocked(o, typ, body)
	return typ == 'Z' || len(s.wbuf) > 64<<10
}

// withholdLocked answers the rest of o's result with an error: the
// server's messages are dropped until its next ReadyForQuery.
func (s *session) withholdLocked(o *op, reason string) {
	s.wbuf = errorMsg(s.wbuf, "ERROR", codeInsufficientPriv, reason, s.id)
	s.swallowRFQ = true
	if o.st != nil && o.st.err == "" {
		o.st.err = "result withheld: " + reason
	}
	s.batch.reset()
}

// completeLocked advances the queue for a message that answers o.
func (s *session) completeLocked(o *op, typ byte, body []byte) {
	if o == nil {
		if typ == 'Z' {
			s.swallowRFQ = false
		}
		return
	}
	switch typ {
	case 'Z':
		s.txStatus = body[0]
		s.swallowRFQ = false
		if o.kind == opQuery || o.kind == opFunc {
			s.recordStmt(o.st) // recording never takes mu
			s.endHeld = false  // flushClient waits for that row
		}
		s.popLocked()
		s.drainLocked()
	case 'E':
		if o.st != nil && o.st.err == "" {
			o.st.err = errorText(body)
		}
		if o.kind == opParse {
			s.refuseParseLocked(o)
		}
		if o.kind == opQuery || o.kind == opFunc || o.kind == opSync {
			return // ReadyForQuery follows
		}
		// Extended protocol: the server skips to Sync.
		for o := s.headLocked(); o != nil && o.kind != opSync; o = s.headLocked() {
			if o.kind == opExecute && o.st != nil {
				if o.st.err == "" {
					o.st.err = "not executed: an earlier message in the pipeline failed"
				}
				s.recordStmt(o.st)
			}
			s.popLocked()
		}
		if s.headLocked() == nil {
			s.serverSkip = true
		}
	case 'C', 'I', 's':
		if typ == 'C' {
			tag := cstring(body)
			if o.st != nil {
				o.st.tag = tag
			}
			if taintsStatements(tag) {
				s.taintLocked()
			}
			s.schemaChangedLocked(o, tag)
		}
		if o.kind == opExecute {
			if typ != 's' {
				s.recordStmt(o.st)
			}
			s.popLocked()
			s.drainLocked()
		}
	case '1', '2', '3', 'n':
		switch {
		case typ == 'n' && o.kind == opDescribe && o.portal != nil:
			o.portal.desc = &rowDesc{}
		case typ == '1' && o.kind == opParse:
			s.commitParseLocked(o)
		case typ == '3' && o.closesStmt:
			delete(s.prepared, o.name)
		}
		s.popLocked()
		s.drainLocked()
	case 'T':
		if o.kind == opDescribe {
			s.popLocked()
			s.drainLocked()
		}
	}
}

func cstring(b []byte) string {
	for i, c := range b {
		if c == 0 {
			return string(b[:i])
		}
	}
	return string(b)
}

// errorText is "SQLSTATE: message" of an ErrorResponse body.
func errorText(body []byte) string {
	var e pgproto3.ErrorResponse
	if err := e.Decode(body); err != nil {
		return "malformed error response"
	}
	return e.Code + ": " + e.Message
}

// rowDescLocked decodes a RowDescription, or returns the last one when
// the server sent the same bytes again: a session repeating its queries
// (an ORM, pgbench) gets the same columns each time, and a rowDesc is
// never changed once made.
func (s *session) rowDescLocked(body []byte) *rowDesc {
	if s.lastDesc != nil && s.lastDescCat == s.cat && string(body) == string(s.lastDescBody) {
		return s.lastDesc
	}
	d := decodeRowDesc(body, s.cat)
	s.lastDesc, s.lastDescBody, s.lastDescCat = d, append(s.lastDescBody[:0], body...), s.cat
	return d
}

func decodeRowDesc(body []byte, cat *catalog) *rowDesc {
	var rd pgproto3.RowDescription
	if err := rd.Decode(body); err != nil {
		return &rowDesc{}
	}
	d := &rowDesc{cols: make([]event.Column, len(rd.Fields))}
	for i, f := range rd.Fields {
		d.cols[i] = event.Column{Name: string(f.Name), Type: typeName(f.DataTypeOID), Binary: f.Format == pgproto3.BinaryFormat}
	}
	if cat != nil && len(cat.list) > 0 {
		d.sens = make([]*sensitiveCol, len(rd.Fields))
		d.computed = make([]bool, len(rd.Fields))
		d.types = make([]uint32, len(rd.Fields))
		for i, f := range rd.Fields {
			d.sens[i] = cat.sensitive(f.TableOID, int16(f.TableAttributeNumber))
			// No source, or the whole row (attribute 0): an expression.
			d.computed[i] = f.TableOID == 0 || f.TableAttributeNumber == 0
			d.types[i] = f.DataTypeOID
		}
	}
	return d
}

// copyDesc describes COPY TO STDOUT data: the described columns when the
// gateway learned them and the line format is one it splits. Binary COPY,
// or columns it could not learn: nil, and the data is withheld.
func copyDesc(body []byte, o *op) *rowDesc {
	var cr pgproto3.CopyOutResponse
	if err := cr.Decode(body); err != nil || cr.OverallFormat != 0 {
		return nil
	}
	if o.copyOf != nil && o.copyOf.desc != nil && len(o.copyOf.desc.cols) == len(cr.ColumnFormatCodes) && o.copyFmt != copyBinary {
		src := o.copyOf.desc
		cols := make([]event.Column, len(src.cols))
		for i, c := range src.cols {
			cols[i] = event.Column{Name: c.Name, Type: c.Type}
		}
		return &rowDesc{cols: cols, copy: true, fmt: o.copyFmt, sens: src.sens, computed: src.computed, types: src.types}
	}
	// Columns it could not name: masking by column name would be
	// bypassed, so the data is withheld (fail closed).
	return nil
}

// typeName names the common built-in types for plugins; others are
// "oid:<n>".
func typeName(oid uint32) string {
	switch oid {
	case 16:
		return "bool"
	case 17:
		return "bytea"
	case 20:
		return "int8"
	case 21:
		return "int2"
	case 23:
		return "int4"
	case 25:
		return "text"
	case 114:
		return "json"
	case 700:
		return "float4"
	case 701:
		return "float8"
	case 1042:
		return "bpchar"
	case 1043:
		return "varchar"
	case 1082:
		return "date"
	case 1114:
		return "timestamp"
	case 1184:
		return "timestamptz"
	case 1700:
		return "numeric"
	case 2950:
		return "uuid"
	case 3802:
		return "jsonb"
	}
	return fmt.Sprintf("oid:%d", oid)
}
