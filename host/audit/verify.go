package audit

import (
	"crypto/ed25519"
	"encoding/hex"
	"fmt"
	"sort"
	"time"
)

// Finding is what Verify concludes about one session, or about one
// gateway run's checkpoint chain (Checkpoints set).
type Finding struct {
	SessionID   string
	Rows        int
	Status      string // one of the Status constants
	Detail      string
	Checkpoints bool   // a run's checkpoint chain, SessionID is the run
	GatewayID   string // for checkpoint chains
	// Minimal counts the session's rows recorded in their minimal form
	// because the spool was full (AnnotationSpoolFull): an outage of the
	// audit store that the trail states, not tampering. Their hashes
	// are checked like any row's.
	Minimal int
}

// Session statuses. "open" is not tampering: the gateway stopped (or
// crashed) before it could close the session, after its last checkpoint.
const (
	StatusComplete  = "complete"
	StatusOpen      = "open"
	StatusGap       = "gap"
	StatusEdited    = "edited"
	StatusReordered = "reordered"
	StatusBadSig    = "bad-signature"
	StatusUnsigned  = "unsigned"
	// StatusTruncated: the session's rows end before the last row a
	// checkpoint saw.
	StatusTruncated = "truncated"
	// StatusDeleted: a checkpoint lists the session; none of its rows
	// are left.
	StatusDeleted = "deleted"
	// StatusUncheckpointed: rows a clean shutdown's final checkpoint
	// should have covered and does not (rows added afterwards).
	StatusUncheckpointed = "uncheckpointed"

	// Checkpoint chain statuses: complete (ended by a clean shutdown's
	// final checkpoint) and open (the run was killed, or still runs) are
	// not tampering.
	StatusCheckpointGap      = "checkpoint-gap"
	StatusCheckpointEdited   = "checkpoint-edited"
	StatusCheckpointMissing  = "checkpoint-missing"
	StatusCheckpointBadSig   = "checkpoint-bad-signature"
	StatusCheckpointUnsigned = "checkpoint-unsigned"
)

// Tampered reports whether status means the trail was changed.
func Tampered(status string) bool {
	switch status {
	case StatusComplete, StatusOpen:
		return false
	}
	return true
}

// VerifyOptions add checks to Verify.
type VerifyOptions struct {
	// PublicKey, when set, requires every closed session's close row and
	// every checkpoint to carry a valid signature by the matching private
	// key.
	PublicKey ed25519.PublicKey
	// InScope, when set, limits the "deleted" check to the sessions it
	// accepts (verify --session and --since read only part of the trail).
	InScope func(sessionID string, listedAt time.Time, interval time.Duration) bool
}

// Verify checks the hash chain of every session in rows, which may come in
// any order and may hold the same event more than once (a replayed batch):
// duplicates of an identical row are ignored.
func Verify(rows []Row) []Finding { return VerifyWith(rows, VerifyOptions{}) }

// VerifyWith is Verify with options.
//
// Checkpoint rows (KindCheckpoint) are checked as chains of their own, one
// per gateway run, and then hold every session to what they saw: a
// session whose rows end before its last checkpointed row is truncated, a
// listed session without rows is deleted, a checkpointed row hash that
// differs from the stored row means the session was rewritten.
func VerifyWith(rows []Row, o VerifyOptions) []Finding {
	bySession := map[string][]Row{}
	byRun := map[string][]Row{}
	var order, runs []string
	for _, r := range rows {
		if r.Kind == KindCheckpoint {
			if _, ok := byRun[r.SessionID]; !ok {
				runs = append(runs, r.SessionID)
			}
			byRun[r.SessionID] = append(byRun[r.SessionID], r)
			continue
		}
		if _, ok := bySession[r.SessionID]; !ok {
			order = append(order, r.SessionID)
		}
		bySession[r.SessionID] = append(bySession[r.SessionID], r)
	}
	cp := verifyCheckpoints(runs, byRun, o)
	out := make([]Finding, 0, len(order)+len(runs))
	for _, sid := range order {
		uniq := dedupe(bySession[sid])
		f := verifySession(sid, uniq, o)
		out = append(out, cp.hold(f, uniq))
	}
	// Runs in ID order: stores give their rows in different orders.
	sort.SliceStable(cp.findings, func(i, j int) bool { return cp.findings[i].SessionID < cp.findings[j].SessionID })
	out = append(out, cp.findings...)
	// Listed sessions with no row left, in a stable order.
	var gone []string
	for sid, l := range cp.listed {
		if _, ok := bySession[sid]; !ok && (o.InScope == nil || o.InScope(sid, l.firstAt, l.interval)) {
			gone = append(gone, sid)
		}
	}
	sort.Strings(gone)
	for _, sid := range gone {
		l := cp.listed[sid]
		out = append(out, Finding{SessionID: sid, Status: StatusDeleted,
			Detail: fmt.Sprintf("checkpoint %d of run %s saw %d rows; none are left", l.cpSeq, l.run, l.seq)})
	}
	return out
}

// dedupe sorts a session's rows by sequence and drops exact replays:
// stored order is not trusted.
func dedupe(rows []Row) []Row {
	sort.SliceStable(rows, func(i, j int) bool { return rows[i].Seq < rows[j].Seq })
	uniq := rows[:0:0]
	for i, r := range rows {
		if i > 0 && r.Seq == rows[i-1].Seq && r.RowHash == rows[i-1].RowHash && r.EventID == rows[i-1].EventID {
			continue
		}
		uniq = append(uniq, r)
	}
	return uniq
}

func verifySession(sid string, uniq []Row, o VerifyOptions) Finding {
	f := Finding{SessionID: sid}
	f.Rows = len(uniq)
	prev := ""
	for i, r := range uniq {
		want := uint64(i + 1)
		switch {
		case r.Seq != want:
			f.Status, f.Detail = StatusGap, fmt.Sprintf("row %d missing (next is seq %d)", want, r.Seq)
			return f
		case Hash(&uniq[i]) != r.RowHash:
			f.Status, f.Detail = StatusEdited, fmt.Sprintf("seq %d does not match its hash", r.Seq)
			return f
		case r.PrevHash != prev:
			// A row whose own hash is intact but that does not follow the
			// row before it was moved, or its predecessor was replaced.
			f.Status, f.Detail = StatusReordered, fmt.Sprintf("seq %d does not follow seq %d", r.Seq, r.Seq-1)
			return f
		}
		prev = r.RowHash
		if _, ok := r.Annotations[AnnotationSpoolFull]; ok {
			f.Minimal++
		}
	}
	if f.Minimal > 0 {
		f.Detail = fmt.Sprintf("%d rows minimal: the audit spool was full (an outage of the audit store, stated in the trail)", f.Minimal)
	}
	if len(uniq) == 0 || !Closes(uniq[len(uniq)-1].Kind) {
		f.Status, f.Detail = StatusOpen, "the session was never closed (the gateway stopped before it could close it)"
		return f
	}
	if o.PublicKey != nil {
		last := uniq[len(uniq)-1]
		sig, err := hex.DecodeString(last.Signature)
		switch {
		case last.Signature == "":
			f.Status, f.Detail = StatusUnsigned, "the close row carries no signature"
			return f
		case err != nil || !ed25519.Verify(o.PublicKey, []byte(last.RowHash), sig):
			f.Status, f.Detail = StatusBadSig, "the close row's signature does not verify with the public key"
			return f
		}
	}
	f.Status = StatusComplete
	return f
}
