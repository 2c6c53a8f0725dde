package approval

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/tollgate-dev/tollgate/host/audit"
	"github.com/tollgate-dev/tollgate/host/event"
)

// Shared is a Store that every replica reads (chstore is one, on the
// ClickHouse audit server). Only the replica that holds a request writes
// its record; a decision made on another replica is submitted as a Ruling,
// which the holder reads by polling, applies under its own rules, and
// records. The delay from a decision to the resumed request is therefore
// at most Options.PollInterval plus two round trips to the store.
type Shared interface {
	Store
	// Get reads the latest version of a record, whoever holds it.
	Get(ctx context.Context, id string) (Record, bool, error)
	// Recent reads up to limit records, newest first.
	Recent(ctx context.Context, limit int) ([]Record, error)
	// Submit stores a decision for the replica that holds the approval.
	Submit(ctx context.Context, r Ruling) error
	// Rulings reads the decisions submitted for these approvals.
	Rulings(ctx context.Context, approvalIDs []string) ([]Ruling, error)
}

// Ruling is a decision made on a replica that does not hold the request.
type Ruling struct {
	ID         string          `json:"id"`
	ApprovalID string          `json:"approval_id"`
	Verb       string          `json:"verb"` // "approve" or "deny"
	Options    DecideOptions   `json:"options"`
	Decider    event.Principal `json:"decider"`
	At         time.Time       `json:"at"`
	GatewayID  string          `json:"gateway_id"` // where it was made
}

// remoteWait bounds how long a decision made on this replica waits for the
// holding replica to apply it before answering with the record as it is.
const remoteWait = 5 * time.Second

// isLocal reports whether this process handles r: every record of a
// single-node store, and a shared store's records of this gateway ID.
func (m *Manager) isLocal(r Record) bool {
	return m.shared == nil || strings.HasPrefix(r.Holder, m.o.GatewayID+"/")
}

// decideRemote submits a decision on an approval another replica holds and
// waits (up to remoteWait) until that replica has applied it.
func (m *Manager) decideRemote(id, verb string, p *event.Principal, o DecideOptions) (Record, error) {
	if m.shared == nil {
		return Record{}, ErrNotFound
	}
	ctx, cancel := context.WithTimeout(context.Background(), remoteWait)
	defer cancel()
	rec, ok, err := m.shared.Get(ctx, id)
	switch {
	case err != nil:
		return Record{}, fmt.Errorf("approval: shared store: %w", err)
	case !ok:
		return Record{}, ErrNotFound
	case rec.State != StatePending:
		return rec, ErrNotPending
	case p == nil || !CanDecide(rec, p):
		if p != nil && p.Issuer == rec.Issuer && p.Subject == rec.Subject {
			return Record{}, ErrSelfApproval
		}
		return Record{}, ErrNotApprover
	}
	who := decider(p)
	for _, v := range rec.Votes {
		if v.Approver == who {
			return rec, ErrAlreadyVoted
		}
	}
	votes := len(rec.Votes)
	r := Ruling{ID: audit.NewID(), ApprovalID: id, Verb: verb, Options: o, Decider: *p, At: m.o.Now(), GatewayID: m.o.GatewayID}
	if err := m.shared.Submit(ctx, r); err != nil {
		return Record{}, fmt.Errorf("approval: shared store: %w", err)
	}
	for {
		select {
		case <-ctx.Done():
			return rec, nil // submitted; the holder applies it when it polls
		case <-time.After(m.o.PollInterval / 4):
		}
		if cur, ok, err := m.shared.Get(ctx, id); err == nil && ok {
			rec = cur
			if cur.State != StatePending || len(cur.Votes) > votes {
				return cur, nil
			}
		}
	}
}

// poll applies the rulings other replicas submitted for the approvals this
// one holds. One goroutine per Manager, querying only while something is
// pending here.
func (m *Manager) poll(stop <-chan struct{}) {
	defer close(m.polled)
	t := time.NewTicker(m.o.PollInterval)
	defer t.Stop()
	applied := map[string]bool{}
	for {
		select {
		case <-stop:
			return
		case <-t.C:
		}
		m.catchUp()
		m.mu.Lock()
		var ids []string
		for id, e := range m.recs {
			if e.rec.State == StatePending {
				ids = append(ids, id)
			}
		}
		m.mu.Unlock()
		if len(ids) == 0 {
			continue
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		rs, err := m.shared.Rulings(ctx, ids)
		cancel()
		if err != nil {
			m.o.Log.Warn("approval: shared store: rulings not read", "err", err)
			continue
		}
		slices.SortFunc(rs, func(a, b Ruling) int { return a.At.Compare(b.At) })
		for _, r := range rs {
			if applied[r.ID] {
				continue
			}
			applied[r.ID] = true
			var err error
			if r.Verb == "deny" {
				_, err = m.Deny(r.ApprovalID, &r.Decider, r.Options.Reason)
			} else {
				_, err = m.Approve(r.ApprovalID, &r.Decider, r.Options)
			}
			if err != nil {
				m.o.Log.Warn("approval: a ruling from another replica was refused", "approval_id", r.ApprovalID,
					"gateway_id", r.GatewayID, "verb", r.Verb, "err", err)
			}
		}
	}
}

// catchUp does what an outage of the shared store left undone: the load
// at start, and the saves of records changed meanwhile (decisions, expiries).
func (m *Manager) catchUp() {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return
	}
	if m.unloaded {
		recs, err := m.o.Store.Load()
		if err != nil {
			return // logged at start; Hold says so to every caller meanwhile
		}
		m.unloaded = false
		m.loadLocked(recs)
		m.o.Log.Warn("approval: the shared approval store answers again; approvals are recorded", "records", len(recs))
	}
	for id := range m.unsaved {
		e := m.recs[id]
		if e == nil {
			delete(m.unsaved, id)
			continue
		}
		if m.save(e) != nil {
			return // still down: the next tick tries again
		}
	}
}

// sharedGet reads a record another replica holds.
func (m *Manager) sharedGet(id string) (Record, bool) {
	if m.shared == nil {
		return Record{}, false
	}
	ctx, cancel := context.WithTimeout(context.Background(), remoteWait)
	defer cancel()
	r, ok, err := m.shared.Get(ctx, id)
	if err != nil {
		m.o.Log.Warn("approval: shared store: record not read", "approval_id", id, "err", err)
	}
	return r, ok
}

// sharedRecent adds other replicas' records to list.
func (m *Manager) sharedRecent(list []Record) []Record {
	if m.shared == nil {
		return list
	}
	ctx, cancel := context.WithTimeout(context.Background(), remoteWait)
	defer cancel()
	rs, err := m.shared.Recent(ctx, keepRecent)
	if err != nil {
		m.o.Log.Warn("approval: shared store: records not read", "err", err)
		return list
	}
	have := make(map[string]bool, len(list))
	for _, r := range list {
		have[r.ID] = true
	}
	for _, r := range rs {
		if !have[r.ID] {
			list = append(list, r)
		}
	}
	return list
}
