package gate

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	mrand "math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/tollgate-dev/tollgate/host/audit"
	"github.com/tollgate-dev/tollgate/host/event"
)

// A Session is what one client does over one connection as one principal:
// its rows share a session ID, are numbered in the order they are
// recorded, and form one hash chain, from its session.open row to its
// session.close row.
//
// Its methods are safe for concurrent use: a protocol that reads the
// client and the server in two goroutines records from both.
type Session struct {
	deps     *Deps
	id       string
	protocol string
	listener string
	remote   string
	log      *slog.Logger
	synced   bool

	mu        sync.Mutex
	principal *event.Principal
	target    string
	rule      string
	seq       uint64
	chain     audit.SessionChain
	ids       *mrand.ChaCha8 // event IDs: seeded once from crypto/rand, no syscall per row
	ticket    audit.Ticket   // the last row's, when synced
	open      *audit.Row     // the session.open row, which the close row repeats
	closed    bool
	held      map[*Decision]struct{} // decisions not yet Done
	rec       *Recording             // started by Recording
	counters  map[requestKey]prometheus.Counter

	durable atomic.Uint64 // the highest ticket known fsynced
}

// SessionInfo describes a new session.
type SessionInfo struct {
	Protocol string // "http", "postgres", ...: the rows' protocol column
	Listener string // the [[listeners]] name
	Remote   string // the client's address
	// Synced: the target's durability is "synced": rows are recorded with
	// tickets, and Durable waits for them.
	Synced bool
}

// NewSession starts a session with a fresh ID. Nothing is recorded until
// Open.
func (d *Deps) NewSession(info SessionInfo) *Session {
	s := &Session{deps: d, id: audit.NewID(), protocol: info.Protocol, listener: info.Listener, remote: info.Remote, synced: info.Synced}
	s.log = d.Logger().With("session_id", s.id)
	return s
}

// ID is the session's ID, as in its rows.
func (s *Session) ID() string { return s.id }

// Log is a logger that names the session.
func (s *Session) Log() *slog.Logger { return s.log }

// SetPrincipal names who the session's later rows are for.
func (s *Session) SetPrincipal(p *event.Principal) {
	s.mu.Lock()
	s.principal = p
	s.mu.Unlock()
}

// SetTarget names the target (and the access rule that granted it) of
// the session's later rows.
func (s *Session) SetTarget(target, rule string) {
	s.mu.Lock()
	s.target, s.rule = target, rule
	s.mu.Unlock()
}

// SetSynced says whether the session's target is synced; a protocol that
// learns its target after NewSession sets it before Open.
func (s *Session) SetSynced(synced bool) {
	s.mu.Lock()
	s.synced = synced
	s.mu.Unlock()
}

// Row starts an audit row of this session: its IDs, protocol, listener,
// target, client address, access rule and principal.
func (s *Session) Row(kind string) audit.Row {
	s.mu.Lock()
	defer s.mu.Unlock()
	r := audit.Row{
		Time:       time.Now(),
		GatewayID:  s.deps.GatewayID,
		SessionID:  s.id,
		Protocol:   s.protocol,
		Listener:   s.listener,
		Target:     s.target,
		Kind:       kind,
		RemoteAddr: s.remote,
		AccessRule: s.rule,
	}
	r.SetPrincipal(s.principal)
	return r
}

// Open records r, the session.open row (its Kind is set here), and keeps
// it for the close row. A session opens once.
func (s *Session) Open(r audit.Row) error {
	r.Kind = audit.KindSessionOpen
	s.mu.Lock()
	if s.open != nil {
		s.mu.Unlock()
		return fmt.Errorf("gate: session %s opened twice", s.id)
	}
	open := r
	s.open = &open
	s.mu.Unlock()
	_, err := s.Record(r)
	s.deps.Metrics.sessionOpened(s.protocol, open.Target)
	return err
}

// Close records the session.close row: the open row's identity (audit.CloseRow),
// with status and, when the session ended abnormally, errMsg. The
// recording, if any, records its last chunk first and ends. Decisions
// still held are released. Later calls do nothing; a session that never
// opened closes without a row.
func (s *Session) Close(status, errMsg string) {
	// The recording's last chunk goes before the close row, which ends
	// the chain.
	s.mu.Lock()
	rec := s.rec
	s.mu.Unlock()
	if rec != nil {
		rec.end()
	}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return
	}
	s.closed = true
	open := s.open
	held := s.held
	s.held = nil
	s.mu.Unlock()
	for d := range held {
		d.Done()
	}
	if open == nil {
		return
	}
	s.deps.Metrics.sessionClosed(s.protocol, open.Target)
	r := audit.CloseRow(*open, time.Now(), status)
	r.Error = errMsg
	s.Record(r)
}

// Record numbers r as the session's next row, links it into the session's
// hash chain and hands it to the recorder, which does not block. When the
// spool has no room for r, its minimal form takes r's place in the chain
// (the spool's reserve holds it), so the trail states the outage instead
// of showing a gap; when even that finds no room, the chain is rolled back
// so that nothing refers to the missing row, and the error is logged and
// returned.
//
// On a synced session the row's ticket is kept for Durable.
func (s *Session) Record(r audit.Row) (audit.Ticket, error) {
	return s.record(r, nil)
}

// RecordSynced is Record with the durability of this one row, for a
// protocol whose session spans targets of both kinds (HTTP keep-alive).
func (s *Session) RecordSynced(r audit.Row, synced bool) (audit.Ticket, error) {
	return s.record(r, &synced)
}

func (s *Session) record(r audit.Row, syncedRow *bool) (audit.Ticket, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	synced := s.synced
	if syncedRow != nil {
		synced = *syncedRow
	}
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
	t, err := audit.RecordTicket(s.deps.Recorder, r, synced)
	// A recording chunk does not take the reserve (it is for the rows
	// that state what happened; a long outage would fill it with
	// terminal output): it is left out, and its missing chunk number is
	// the gap replay reports.
	if errors.Is(err, audit.ErrFull) && !audit.Reserved(&r) && r.Kind != audit.KindRecording {
		m := audit.Minimal(r)
		s.chain = chain
		s.chain.Seal(&m)
		t, err = audit.RecordTicket(s.deps.Recorder, m, synced)
	}
	if err != nil {
		s.seq, s.chain = seq, chain
		s.log.Error("audit row not recorded", "kind", r.Kind, "err", err)
		return 0, err
	}
	if t != 0 {
		s.ticket = t
	}
	return t, nil
}

// Durable waits until every row the session recorded so far is fsynced
// in the spool (synced sessions; others return at once). A protocol calls
// it before a request goes out and before an answer is released; rows
// recorded meanwhile by concurrent sessions share the fsync.
func (s *Session) Durable(ctx context.Context) error {
	s.mu.Lock()
	t, synced := s.ticket, s.synced
	s.mu.Unlock()
	if !synced || uint64(t) <= s.durable.Load() {
		return nil
	}
	return s.WaitDurable(ctx, t)
}

// Unsynced reports whether a row of the session is recorded and not yet
// known to be fsynced: the cheap test before Durable.
func (s *Session) Unsynced() bool {
	s.mu.Lock()
	t, synced := s.ticket, s.synced
	s.mu.Unlock()
	return synced && uint64(t) > s.durable.Load()
}

// WaitDurable waits until the row of ticket t is fsynced.
func (s *Session) WaitDurable(ctx context.Context, t audit.Ticket) error {
	if t == 0 || uint64(t) <= s.durable.Load() {
		return nil
	}
	if err := audit.WaitDurable(ctx, s.deps.Recorder, t); err != nil {
		return err
	}
	for {
		cur := s.durable.Load()
		if uint64(t) <= cur || s.durable.CompareAndSwap(cur, uint64(t)) {
			return nil
		}
	}
}

// hold keeps d until Done or Close.
func (s *Session) hold(d *Decision) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return false
	}
	if s.held == nil {
		s.held = make(map[*Decision]struct{})
	}
	s.held[d] = struct{}{}
	return true
}

func (s *Session) unhold(d *Decision) {
	s.mu.Lock()
	delete(s.held, d)
	s.mu.Unlock()
}
