package approval

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/tollgate-dev/tollgate/host/audit"
	"github.com/tollgate-dev/tollgate/host/event"
)

// State is where an approval stands.
type State string

const (
	StatePending   State = "pending"
	StateApproved  State = "approved"
	StateDenied    State = "denied"
	StateExpired   State = "expired"
	StateCancelled State = "cancelled"
)

// Scope is what an approval lets through.
type Scope string

const (
	Once    Scope = "once"    // this request
	Session Scope = "session" // and the same request in this session, for a while
)

// Errors a decider can cause; the admin API maps them to status codes.
var (
	ErrNotFound     = errors.New("approval: no such approval")
	ErrNotPending   = errors.New("approval: already decided")
	ErrSelfApproval = errors.New("approval: the requester cannot decide their own request")
	ErrNotApprover  = errors.New("approval: not in any of the request's approver groups")
	ErrAlreadyVoted = errors.New("approval: already approved by this person; the quorum needs someone else")
	ErrBadScope     = errors.New(`approval: scope must be "once" or "session" (with minutes > 0)`)
	// ErrTaken is Pending.Wait's answer when another request already
	// used this approval (a retry raced the original).
	ErrTaken = errors.New("approval: already used by another request")
)

// Request describes a held request; the protocol fills it from the Event
// and the Verdict.
type Request struct {
	SessionID string
	Protocol  string // "http", "postgres"...
	Kind      string // the event kind, e.g. "pg.query"
	Target    string
	Principal *event.Principal
	Fields    map[string]string // the request as the plugins left it
	// Changed names the fields plugins rewrote before the hold (masking,
	// say); Fields holds their new values. The old ones are not kept:
	// masking exists so that people and the audit trail never see them.
	Changed        []string
	Plugin         string
	Reason         string
	ApproverGroups []string
	// Covered is the canonical request the approval covers, built with
	// HTTPCovered or StatementCovered; nil covers all of Fields. A retry
	// or a session grant runs only if its canonical form is identical.
	Covered map[string]string
	// Body is the request body, which reviewers see (its first KiB).
	Body []byte
	// IdempotencyKey, when the client sent one, identifies a retry.
	IdempotencyKey string
	// RemoteAddr and Listener go to the approval's audit rows.
	RemoteAddr, Listener string
}

// Rewritten is a held request as it will run if approved, which is what
// the reviewer must see: fields with the chain's changes applied (those
// accept lets through; nil accepts all), and the names of the fields that
// changed, sorted.
func Rewritten(fields, changes map[string]string, accept func(field, value string) bool) (map[string]string, []string) {
	f := maps.Clone(fields)
	var changed []string
	for k, v := range changes {
		if (accept != nil && !accept(k, v)) || f[k] == v {
			continue
		}
		if f == nil {
			f = map[string]string{}
		}
		f[k] = v
		changed = append(changed, k)
	}
	sort.Strings(changed)
	return f, changed
}

// Vote is one person's approval towards the quorum.
type Vote struct {
	Approver string    `json:"approver"`
	At       time.Time `json:"at"`
	Reason   string    `json:"reason,omitempty"`
}

// Record is an approval as stored, listed and shown.
type Record struct {
	ID    string `json:"id"`
	State State  `json:"state"`
	URL   string `json:"url"`

	SessionID      string            `json:"session_id"`
	Protocol       string            `json:"protocol"`
	Kind           string            `json:"kind"`
	Target         string            `json:"target"`
	Issuer         string            `json:"issuer,omitempty"`
	Subject        string            `json:"subject"`
	Email          string            `json:"email,omitempty"`
	Groups         []string          `json:"groups,omitempty"`
	Claims         map[string]string `json:"claims,omitempty"` // the issuer's kept claims
	Fields         map[string]string `json:"fields"`
	Changed        []string          `json:"changed,omitempty"` // fields plugins rewrote before the hold
	Plugin         string            `json:"plugin,omitempty"`
	Reason         string            `json:"reason,omitempty"`
	ApproverGroups []string          `json:"approver_groups"`
	Hash           string            `json:"hash"`
	// Covered is the canonical request the approval covers (see
	// Canonical); Body is the request body, or its first KiB.
	Covered        map[string]string `json:"covered,omitempty"`
	Body           string            `json:"body,omitempty"`
	BodyQuoted     bool              `json:"body_quoted,omitempty"` // Body is Go-quoted: the bytes are not UTF-8 text
	IdempotencyKey string            `json:"idempotency_key,omitempty"`
	RemoteAddr     string            `json:"remote_addr,omitempty"`
	Listener       string            `json:"listener,omitempty"`
	Required       int               `json:"approvals_required"`

	Created time.Time `json:"created"`
	Expires time.Time `json:"expires"`

	Votes          []Vote    `json:"votes,omitempty"`
	DecidedAt      time.Time `json:"decided_at,omitzero"`
	DecidedBy      string    `json:"decided_by,omitempty"` // the approvers, comma-separated, or the denier
	DecisionReason string    `json:"decision_reason,omitempty"`
	Scope          Scope     `json:"scope,omitempty"`
	GrantUntil     time.Time `json:"grant_until,omitzero"`
	// Taken is set when a request ran on (or was refused with) this
	// decision: an approval lets exactly one request through.
	Taken bool `json:"taken,omitempty"`

	Holder string `json:"holder"` // the process that holds the request

	// The approval's audit chain: the last row's seq and hash.
	Seq      uint64 `json:"seq"`
	LastHash string `json:"last_hash,omitempty"`
}

// Decision is what a waiting protocol learns.
type Decision struct {
	ID       string
	State    State
	Approver string // who approved (comma-separated for a quorum) or denied
	Reason   string // the decider's reason, or why it expired or was cancelled
	Scope    Scope
	Until    time.Time // end of a session grant
}

// Approved reports whether the request may run.
func (d Decision) Approved() bool { return d.State == StateApproved }

// Message is the reason a refused request shows its client.
func (d Decision) Message() string {
	switch d.State {
	case StateDenied:
		s := "approval " + d.ID + " denied by " + d.Approver
		if d.Reason != "" {
			s += ": " + d.Reason
		}
		return s
	case StateExpired, StateCancelled:
		return "approval " + d.ID + " " + string(d.State) + ": " + d.Reason
	}
	return "approval " + d.ID + " " + string(d.State)
}

func (r *Record) decision() Decision {
	return Decision{ID: r.ID, State: r.State, Approver: r.DecidedBy, Reason: r.DecisionReason, Scope: r.Scope, Until: r.GrantUntil}
}

// Options configure a Manager.
type Options struct {
	Timeout           time.Duration // pending → expired; default 10 minutes
	ApprovalsRequired int           // quorum; default 1
	// URL gives an approval's console address from its ID.
	URL       func(id string) string
	Store     Store          // nil: memory only (tests)
	Recorder  audit.Recorder // the approval rows; nil: none (tests)
	GatewayID string
	// Notify is called (without the Manager's lock) for each new pending
	// approval; it must not block (see Notifier).
	Notify func(Record)
	// MaxSessionGrant bounds a session grant's minutes; default 8 hours.
	MaxSessionGrant time.Duration
	// PollInterval is how often a Manager on a Shared store looks for
	// decisions other replicas made on its approvals; default 250ms.
	PollInterval time.Duration
	// MaxPendingPerPrincipal and MaxPendingPerTarget cap the approvals
	// pending at once in this process, so that an agent cannot flood
	// the reviewers; defaults 20 and 100.
	MaxPendingPerPrincipal, MaxPendingPerTarget int
	Log                                         *slog.Logger
	Now                                         func() time.Time
}

// Manager holds requests and records decisions. It is safe for
// concurrent use.
type Manager struct {
	o      Options
	holder string

	shared   Shared        // when the store is shared by replicas
	stopPoll chan struct{} // closed by Shutdown
	polled   chan struct{} // closed when the poller has stopped

	mu     sync.Mutex
	recs   map[string]*entry
	grants map[string][]grant // by session ID
	closed bool
	// unloaded: a shared store did not answer at start; the poller loads
	// it (and cancels what a previous process left pending) once it does.
	unloaded bool
	// decided times each approval from its hold to its end (metrics.go).
	decided *prometheus.HistogramVec
	// unsaved: records whose latest version a shared store did not take
	// (it was down); the poller saves them again until it does, so a
	// decision made during an outage reaches the store afterwards.
	unsaved map[string]bool
}

type entry struct {
	rec   Record
	done  chan struct{} // closed when the state leaves pending
	timer *time.Timer
}

type grant struct {
	kind, target, hash string
	until              time.Time
	id, approver       string
}

// keepRecent is how many decided approvals List shows and memory keeps.
const keepRecent = 500

// New loads the store and returns a Manager. Approvals that were pending
// in a process that is gone become cancelled ("gateway restarted"), with
// their audit row.
func New(o Options) (*Manager, error) {
	if o.Timeout <= 0 {
		o.Timeout = 10 * time.Minute
	}
	if o.ApprovalsRequired <= 0 {
		o.ApprovalsRequired = 1
	}
	if o.MaxSessionGrant <= 0 {
		o.MaxSessionGrant = 8 * time.Hour
	}
	if o.Log == nil {
		o.Log = slog.Default()
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.URL == nil {
		o.URL = func(id string) string { return "/ui/approvals/" + id }
	}
	if o.PollInterval <= 0 {
		o.PollInterval = 250 * time.Millisecond
	}
	if o.MaxPendingPerPrincipal <= 0 {
		o.MaxPendingPerPrincipal = 20
	}
	if o.MaxPendingPerTarget <= 0 {
		o.MaxPendingPerTarget = 100
	}
	m := &Manager{o: o, holder: o.GatewayID + "/" + audit.NewID(), recs: map[string]*entry{}, grants: map[string][]grant{},
		decided: newDecisionHistogram()}
	if o.Store == nil {
		return m, nil
	}
	m.shared, _ = o.Store.(Shared)
	m.unsaved = map[string]bool{}
	recs, err := o.Store.Load()
	switch {
	case err != nil && m.shared == nil:
		return nil, fmt.Errorf("approval: load: %w", err)
	case err != nil:
		// A shared store is a server that may be down while the gateway
		// starts: start anyway. Holds fail with ErrStoreUnavailable until
		// it answers (nothing is held that could not be recorded), and
		// the poller loads it then.
		o.Log.Error("approval: the shared approval store is unavailable; requests that need an approval are refused until it answers", "err", err)
		m.unloaded = true
	default:
		m.loadLocked(recs)
	}
	if m.shared != nil {
		m.stopPoll, m.polled = make(chan struct{}), make(chan struct{})
		go m.poll(m.stopPoll)
	}
	return m, nil
}

// loadLocked takes the records a store loaded: this gateway's records that
// were pending in a process that is gone become cancelled. Records this
// process already has (made while a shared store was down) stay as they are.
func (m *Manager) loadLocked(recs []Record) {
	for _, r := range recs {
		if !m.isLocal(r) || m.recs[r.ID] != nil {
			continue // another replica's: read from the shared store when asked
		}
		e := &entry{rec: r, done: make(chan struct{})}
		m.recs[r.ID] = e
		if r.State != StatePending {
			close(e.done)
			continue
		}
		m.finishLocked(e, StateCancelled, "", "gateway restarted while the request was held", "")
	}
	m.trimLocked()
}

// ErrStoreUnavailable is wrapped by Hold's error when the approval store
// did not take the approval (a shared store's server is down): the
// request is refused, because a hold that is not stored could not be
// decided from another replica nor survive a restart.
var ErrStoreUnavailable = errors.New("approval: the approval store is unavailable")

// Hold records a pending approval for req and returns its handle. The
// approval expires after the timeout unless decided first.
//
// # Errors
//
// An error means the approval could not be recorded (the store failed, no
// approver groups, the Manager is shut down); refuse the request. It wraps
// ErrTooManyPending when the principal or the target has reached its cap.
func (m *Manager) Hold(ctx context.Context, req Request) (*Pending, error) {
	if len(req.ApproverGroups) == 0 {
		return nil, errors.New("approval: the hold names no approver groups")
	}
	now := m.o.Now()
	id := audit.NewID()
	r := Record{
		ID: id, State: StatePending, URL: m.o.URL(id),
		SessionID: req.SessionID, Protocol: req.Protocol, Kind: req.Kind, Target: req.Target,
		Fields: maps.Clone(req.Fields), Changed: slices.Clone(req.Changed), Plugin: req.Plugin, Reason: req.Reason,
		ApproverGroups: slices.Clone(req.ApproverGroups), Hash: CanonicalHash(req), Covered: maps.Clone(req.covered()),
		IdempotencyKey: req.IdempotencyKey,
		RemoteAddr:     req.RemoteAddr, Listener: req.Listener, Required: m.o.ApprovalsRequired,
		Created: now, Expires: now.Add(m.o.Timeout), Holder: m.holder,
	}
	if p := req.Principal; p != nil {
		r.Issuer, r.Subject, r.Email, r.Groups, r.Claims = p.Issuer, p.Subject, p.Email, slices.Clone(p.Groups), maps.Clone(p.Kept)
	}
	if req.Body != nil {
		r.Body, r.BodyQuoted = BodyPreview(req.Body)
	}
	e := &entry{rec: r, done: make(chan struct{})}
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		return nil, errors.New("approval: the gateway is stopping")
	}
	if err := m.capLocked(&r); err != nil {
		m.mu.Unlock()
		return nil, err
	}
	m.record(e, audit.KindApprovalRequest, "hold", "", req.Reason, string(StatePending))
	if err := m.save(e); err != nil {
		// The request row is in the audit trail: close the approval's
		// chain there, so it does not read as a gateway that stopped.
		m.record(e, audit.KindApprovalDecision, "deny", "", "the approval could not be stored: "+err.Error(), string(StateCancelled))
		delete(m.unsaved, id)
		m.mu.Unlock()
		return nil, fmt.Errorf("%w: %w", ErrStoreUnavailable, err)
	}
	m.recs[id] = e
	e.timer = time.AfterFunc(m.o.Timeout, func() { m.expire(id) })
	m.mu.Unlock()
	if m.o.Notify != nil {
		m.o.Notify(r)
	}
	return &Pending{m: m, e: e, ID: id, URL: r.URL}, nil
}

// capLocked refuses a new approval past the pending caps. Replicas on a
// shared store count their own pending approvals only.
func (m *Manager) capLocked(r *Record) error {
	byPrincipal, byTarget := 0, 0
	for _, e := range m.recs {
		o := &e.rec
		if o.State != StatePending {
			continue
		}
		if o.Issuer == r.Issuer && o.Subject == r.Subject {
			byPrincipal++
		}
		if o.Target == r.Target {
			byTarget++
		}
	}
	switch {
	case byPrincipal >= m.o.MaxPendingPerPrincipal:
		return fmt.Errorf("%w: %s already has %d pending (max_pending_per_principal); wait for decisions", ErrTooManyPending, r.Subject, byPrincipal)
	case byTarget >= m.o.MaxPendingPerTarget:
		return fmt.Errorf("%w: target %s already has %d pending (max_pending_per_target); wait for decisions", ErrTooManyPending, r.Target, byTarget)
	}
	return nil
}

func (m *Manager) expire(id string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if e := m.recs[id]; e != nil && e.rec.State == StatePending {
		m.finishLocked(e, StateExpired, "", "no decision within "+m.o.Timeout.String(), "")
	}
}

// Pending is a held request's handle on its approval.
type Pending struct {
	m   *Manager
	e   *entry
	ID  string
	URL string
}

// Done is closed when the approval is decided, expires or is cancelled.
func (p *Pending) Done() <-chan struct{} { return p.e.done }

// Decision is the approval's state now (Pending until Done is closed).
func (p *Pending) Decision() Decision {
	p.m.mu.Lock()
	defer p.m.mu.Unlock()
	return p.e.rec.decision()
}

// Wait blocks until the approval ends or ctx is done, then takes the
// decision (see Take). If ctx ends first the approval is cancelled ("the
// client went away") and Wait returns ctx's error with that decision.
func (p *Pending) Wait(ctx context.Context) (Decision, error) {
	select {
	case <-p.e.done:
	case <-ctx.Done():
		p.Cancel("the client went away while the request was held")
		d, _ := p.Take()
		if d.State == StatePending || d.State == StateApproved {
			// Approved at the same instant: nobody runs it now.
			d.State = StateCancelled
		}
		return d, ctx.Err()
	}
	d, ok := p.Take()
	if !ok {
		return d, ErrTaken
	}
	return d, nil
}

// Take hands the decision to the caller once: the first call after the
// approval ended returns it with true; later calls (a second retry of the
// same request) get false. Call it right before acting on the decision.
// Before the approval ends it returns the pending decision and false.
func (p *Pending) Take() (Decision, bool) {
	m := p.m
	m.mu.Lock()
	defer m.mu.Unlock()
	r := &p.e.rec
	if r.State == StatePending || r.Taken {
		return r.decision(), false
	}
	r.Taken = true
	if err := m.save(p.e); err != nil {
		m.o.Log.Error("approval: not saved", "approval_id", r.ID, "err", err)
	}
	return r.decision(), true
}

// Cancel ends a pending approval as cancelled with reason; it does nothing
// when the approval has already ended.
func (p *Pending) Cancel(reason string) {
	m := p.m
	m.mu.Lock()
	defer m.mu.Unlock()
	if p.e.rec.State == StatePending {
		m.finishLocked(p.e, StateCancelled, "", reason, "")
	}
}

// Resume finds the approval an earlier attempt of req started: same
// principal (issuer and subject), kind and target, and the same
// IdempotencyKey when req has one, else the same canonical form; newest
// first, and only one not taken yet and not cancelled. The caller waits on
// it or takes its decision instead of holding again.
//
// # Errors
//
// A *MismatchError (ErrMismatch) when the key names an approval whose
// canonical form differs from req's: refuse the request, do not hold it.
func (m *Manager) Resume(req Request) (*Pending, bool, error) {
	if req.Principal == nil {
		return nil, false, nil
	}
	hash := CanonicalHash(req)
	m.mu.Lock()
	defer m.mu.Unlock()
	var best *entry
	for _, e := range m.recs {
		r := &e.rec
		if r.Taken || r.Issuer != req.Principal.Issuer || r.Subject != req.Principal.Subject ||
			r.Kind != req.Kind || r.Target != req.Target {
			continue
		}
		if req.IdempotencyKey != "" {
			if r.IdempotencyKey != req.IdempotencyKey {
				continue
			}
		} else if r.Hash != hash {
			continue
		}
		// Cancelled (the client went away, or the gateway stopped): a new
		// attempt holds again rather than failing on its predecessor.
		if r.State == StateCancelled {
			continue
		}
		if best == nil || r.Created.After(best.rec.Created) {
			best = e
		}
	}
	if best == nil {
		return nil, false, nil
	}
	if best.rec.Hash != hash {
		d := Differs(best.rec.Covered, req.covered())
		if len(d) == 0 {
			d = []string{"protocol"} // same fields, so the hash's other inputs
		}
		return nil, false, &MismatchError{ID: best.rec.ID, Fields: d}
	}
	return &Pending{m: m, e: best, ID: best.rec.ID, URL: best.rec.URL}, true, nil
}

// Granted reports whether a session grant covers req (same session, and
// the same canonical form, not yet past its end); the Decision names the
// approval and the approver for the request's audit row.
func (m *Manager) Granted(req Request) (Decision, bool) {
	hash := CanonicalHash(req)
	now := m.o.Now()
	m.mu.Lock()
	defer m.mu.Unlock()
	gs := m.grants[req.SessionID]
	live := gs[:0]
	var found *grant
	for i := range gs {
		if now.After(gs[i].until) {
			continue
		}
		live = append(live, gs[i])
		g := &live[len(live)-1]
		if g.kind == req.Kind && g.target == req.Target && g.hash == hash {
			found = g
		}
	}
	if len(live) == 0 {
		delete(m.grants, req.SessionID)
	} else {
		m.grants[req.SessionID] = live
	}
	if found == nil {
		return Decision{}, false
	}
	return Decision{ID: found.id, State: StateApproved, Approver: found.approver, Scope: Session, Until: found.until}, true
}

// DecideOptions are a decider's inputs.
type DecideOptions struct {
	Reason  string
	Scope   Scope // default Once
	Minutes int   // for Session
}

// Approve records p's approval of id. With the quorum reached the approval
// is approved and the held request resumes.
//
// # Errors
//
// ErrNotFound, ErrNotPending, ErrSelfApproval, ErrNotApprover,
// ErrAlreadyVoted, ErrBadScope, or the store's error.
func (m *Manager) Approve(id string, p *event.Principal, o DecideOptions) (Record, error) {
	if o.Scope == "" {
		o.Scope = Once
	}
	if o.Scope != Once && (o.Scope != Session || o.Minutes <= 0) {
		return Record{}, ErrBadScope
	}
	m.mu.Lock()
	if _, ok := m.recs[id]; !ok && m.shared != nil {
		m.mu.Unlock()
		return m.decideRemote(id, "approve", p, o)
	}
	defer m.mu.Unlock()
	e, err := m.decidable(id, p)
	if err != nil {
		return Record{}, err
	}
	r := &e.rec
	who := decider(p)
	for _, v := range r.Votes {
		if v.Approver == who {
			return r.clone(), ErrAlreadyVoted
		}
	}
	r.Votes = append(r.Votes, Vote{Approver: who, At: m.o.Now(), Reason: o.Reason})
	if len(r.Votes) < r.Required {
		m.record(e, audit.KindApprovalVote, "hold", who, o.Reason, fmt.Sprintf("%d of %d approvals", len(r.Votes), r.Required))
		if err := m.save(e); err != nil {
			return Record{}, err
		}
		return r.clone(), nil
	}
	names := make([]string, len(r.Votes))
	for i, v := range r.Votes {
		names[i] = v.Approver
	}
	r.Scope = o.Scope
	if o.Scope == Session {
		d := min(time.Duration(o.Minutes)*time.Minute, m.o.MaxSessionGrant)
		r.GrantUntil = m.o.Now().Add(d)
		m.grants[r.SessionID] = append(m.grants[r.SessionID], grant{
			kind: r.Kind, target: r.Target, hash: r.Hash, until: r.GrantUntil, id: r.ID, approver: strings.Join(names, ","),
		})
	}
	m.finishLocked(e, StateApproved, strings.Join(names, ","), o.Reason, o.Scope)
	return r.clone(), nil
}

// Deny records p's denial of id: the held request fails with reason.
func (m *Manager) Deny(id string, p *event.Principal, reason string) (Record, error) {
	m.mu.Lock()
	if _, ok := m.recs[id]; !ok && m.shared != nil {
		m.mu.Unlock()
		return m.decideRemote(id, "deny", p, DecideOptions{Reason: reason})
	}
	defer m.mu.Unlock()
	e, err := m.decidable(id, p)
	if err != nil {
		return Record{}, err
	}
	m.finishLocked(e, StateDenied, decider(p), reason, "")
	return e.rec.clone(), nil
}

func (m *Manager) decidable(id string, p *event.Principal) (*entry, error) {
	e := m.recs[id]
	switch {
	case e == nil:
		return nil, ErrNotFound
	case e.rec.State != StatePending:
		return e, ErrNotPending
	case p == nil:
		return nil, ErrNotApprover
	case p.Issuer == e.rec.Issuer && p.Subject == e.rec.Subject:
		return nil, ErrSelfApproval
	}
	for _, g := range e.rec.ApproverGroups {
		if p.InGroup(g) {
			return e, nil
		}
	}
	return nil, ErrNotApprover
}

// CanDecide reports whether p may approve or deny r (ignoring its state).
func CanDecide(r Record, p *event.Principal) bool {
	if p == nil || (p.Issuer == r.Issuer && p.Subject == r.Subject) {
		return false
	}
	for _, g := range r.ApproverGroups {
		if p.InGroup(g) {
			return true
		}
	}
	return false
}

// decider names a person in records and audit rows.
func decider(p *event.Principal) string {
	if p.Email != "" {
		return p.Email
	}
	return p.Subject
}

// finishLocked ends e in state, wakes its waiters and records the decision.
func (m *Manager) finishLocked(e *entry, st State, by, reason string, scope Scope) {
	r := &e.rec
	r.State, r.DecidedBy, r.DecisionReason, r.DecidedAt, r.Scope = st, by, reason, m.o.Now(), scope
	m.decided.WithLabelValues(string(st)).Observe(max(r.DecidedAt.Sub(r.Created).Seconds(), 0))
	if e.timer != nil {
		e.timer.Stop()
	}
	verdict := "deny"
	if st == StateApproved {
		verdict = "allow"
	}
	m.record(e, audit.KindApprovalDecision, verdict, by, reason, string(st))
	if err := m.save(e); err != nil {
		// The waiter still learns the decision; the audit row has it.
		m.o.Log.Error("approval: decision not saved", "approval_id", r.ID, "err", err)
	}
	close(e.done)
}

// Get returns the approval id.
func (m *Manager) Get(id string) (Record, bool) {
	m.mu.Lock()
	e, ok := m.recs[id]
	var r Record
	if ok {
		r = e.rec.clone()
	}
	m.mu.Unlock()
	if !ok {
		return m.sharedGet(id)
	}
	return r, true
}

// List returns the pending approvals, oldest first, then the decided ones,
// newest decision first (at most keepRecent).
func (m *Manager) List() []Record {
	m.mu.Lock()
	out := make([]Record, 0, len(m.recs))
	for _, e := range m.recs {
		out = append(out, e.rec.clone())
	}
	m.mu.Unlock()
	out = m.sharedRecent(out)
	sort.Slice(out, func(i, j int) bool {
		a, b := out[i], out[j]
		if (a.State == StatePending) != (b.State == StatePending) {
			return a.State == StatePending
		}
		if a.State == StatePending {
			return a.Created.Before(b.Created)
		}
		return a.DecidedAt.After(b.DecidedAt)
	})
	return out
}

// Shutdown cancels every pending approval ("gateway stopped"), so held
// requests fail now instead of holding the shutdown, and closes the store.
func (m *Manager) Shutdown(ctx context.Context) error {
	if m.stopPoll != nil {
		select {
		case <-m.stopPoll:
		default:
			close(m.stopPoll)
		}
		<-m.polled
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return nil
	}
	m.closed = true
	for _, e := range m.recs {
		if e.rec.State == StatePending {
			m.finishLocked(e, StateCancelled, "", "gateway stopped while the request was held", "")
		}
	}
	if m.o.Store != nil {
		return m.o.Store.Close()
	}
	return nil
}

// trimLocked drops the oldest decided approvals past keepRecent from
// memory (the store and the audit trail keep them).
func (m *Manager) trimLocked() {
	var done []*entry
	for _, e := range m.recs {
		if e.rec.State != StatePending {
			done = append(done, e)
		}
	}
	if len(done) <= keepRecent {
		return
	}
	sort.Slice(done, func(i, j int) bool { return done[i].rec.DecidedAt.After(done[j].rec.DecidedAt) })
	for _, e := range done[keepRecent:] {
		delete(m.recs, e.rec.ID)
	}
}

func (m *Manager) save(e *entry) error {
	if m.o.Store == nil {
		return nil
	}
	if err := m.o.Store.Save(e.rec); err != nil {
		if m.shared != nil {
			m.unsaved[e.rec.ID] = true
		}
		return fmt.Errorf("approval: save: %w", err)
	}
	delete(m.unsaved, e.rec.ID)
	if e.rec.State != StatePending && len(m.recs) > keepRecent*2 {
		m.trimLocked()
	}
	return nil
}

// record writes one row of the approval's audit chain.
func (m *Manager) record(e *entry, kind, verdict, approver, reason, status string) {
	r := &e.rec
	now := m.o.Now()
	row := audit.Row{
		EventID: audit.NewID(), Time: now, GatewayID: m.o.GatewayID, SessionID: r.ID,
		Protocol: r.Protocol, Listener: r.Listener, Target: r.Target, Kind: kind, RemoteAddr: r.RemoteAddr,
		Issuer: r.Issuer, Subject: r.Subject, Email: r.Email, Groups: r.Groups, Claims: r.Claims,
		Request: r.Fields, Verdict: verdict, Plugin: r.Plugin, Reason: reason, Status: status,
		DurationMicro: now.Sub(r.Created).Microseconds(),
		ApprovalID:    r.ID, Approver: approver,
		Annotations: map[string]string{
			"approval.session_id": r.SessionID,
			"approval.groups":     strings.Join(r.ApproverGroups, ","),
		},
	}
	if kind == audit.KindApprovalRequest {
		row.Reason = r.Reason
	}
	if r.Scope != "" {
		row.Annotations["approval.scope"] = string(r.Scope)
	}
	if !r.GrantUntil.IsZero() {
		row.Annotations["approval.grant_until"] = r.GrantUntil.UTC().Format(time.RFC3339)
	}
	r.Seq++
	row.Seq = r.Seq
	row.PrevHash = r.LastHash
	row.RowHash = audit.Hash(&row)
	r.LastHash = row.RowHash
	if m.o.Recorder == nil {
		return
	}
	if err := m.o.Recorder.Record(row); err != nil {
		m.o.Log.Error("audit row not recorded", "approval_id", r.ID, "kind", kind, "err", err)
	}
}

func (r *Record) clone() Record {
	c := *r
	c.Votes = slices.Clone(r.Votes)
	return c
}
